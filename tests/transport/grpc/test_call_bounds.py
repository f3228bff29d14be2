"""Issue 52 F1, F2 and silent Translate callers: no one caller starves the others from a call's first
byte, on a real ``translate-svc serve`` process (its memory read from /proc) with a tokens file of
a capped tenant, an uncapped one and a ``languages``-only token, the Riva door on.

Each attack runs as a separate client process (``python -m tests.support.attacks.grpc_calls ...``: its
connections and memory are not the test's); while it runs, another tenant's calls and a health
Check are made from here and must be answered, on time.

- F1: unary calls that never send their message held the process's call slots (1,056 of 4
  connections x 300 ListLanguages, until the client let go) and a new client's Check,
  ListLanguages and StreamingTranslate got RESOURCE_EXHAUSTED. Now each is admitted (per token,
  per tenant) before its request is read, and must send it within limits.request_read_timeout_s.
- F2: 8 x 60 MiB ListLanguages (TranslateText, Riva TranslateText, Translate) were each buffered
  whole before their 64-96 KiB limit was checked: +898 MB. Now the port's receive limit is 4 MiB,
  enforced by gRPC as the bytes arrive.
- Silent Translate callers: an uncapped tenant that reopens Translate calls that never send their
  clip held every one of max_translate_calls; now at most limits.max_clip_reads_per_tenant.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.attacks.client import OWN
from tests.support.attacks.process import AttackProcess
from tests.support.calls import timed
from tests.support.proc import memory_kb, reset_peak
from tests.support.server_process import ServerProcess
from tests.support.tokens import bearer
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(60)]

UNCAPPED = "bounds-uncapped-token-1c7e"
CAPPED = "bounds-capped-token-8d2a"
LANGUAGES = "bounds-languages-token-4b90"
OTHER = "bounds-other-tenant-token-e5f3"
TOKENS = (
    f"{UNCAPPED} * tenant=acme\n"
    f"{CAPPED} stream,translate tenant=capped translate_calls=1\n"
    f"{LANGUAGES} languages\n"
    f"{OTHER} * tenant=other\n"
)
PER_TOKEN = 16  # limits.max_unary_calls_per_token's default
READ_S = 5.0  # limits.request_read_timeout_s's default
CLIP_READ_S = 3  # limits.clip_read_timeout_s here: silent Translate calls are freed, and reopened, in the test
CLIP_READS = 2  # limits.max_clip_reads_per_tenant's default
ON_TIME_S = 2.0  # the other tenant's calls and Check, while an attack runs
HOLD_S = 30  # how long the silent-unary attack holds its calls open
# the other tenant's client deadlines in others_served: past the attack's hold, so that whether a
# call was on time is judged by assert_on_time from the server's last refusal, not by a client timer
# that a starved machine outlasts while it refuses the flood (10 s expired so under extra load)
CALL_DEADLINE_S = HOLD_S + 15


@pytest.fixture(scope="module")
def served(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tokens = tmp_path_factory.mktemp("bounds") / "tokens"
    tokens.write_text(TOKENS)
    args = ["--model", str(test_model_dir), "--host", "127.0.0.1", "--port", "0", "--tokens-file", str(tokens)]
    server = ServerProcess([*args, "--riva"], env={"TRANSLATE_SVC_LIMITS__CLIP_READ_TIMEOUT_S": str(CLIP_READ_S)})
    try:
        yield server
    finally:
        server.stop()


async def others_served(address: str) -> dict[str, tuple[str, float, float]]:
    """Another tenant, on a new connection, while the attack runs: a token-less health Check,
    ListLanguages, a short StreamingTranslate and a Riva ListSupportedLanguagePairs, one after
    another; each one's status, and when it started and ended (``time.monotonic()``)."""
    from riva.client.proto import riva_nmt_pb2 as nmt
    from riva.client.proto import riva_nmt_pb2_grpc as nmt_grpc

    async def stream(stub: pb_grpc.TranslatorStub) -> None:
        async def requests() -> Any:
            fmt = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000)
            yield pb.StreamingTranslateRequest(config=pb.StreamingConfig(format=fmt, target_languages=["spa"]))
            yield pb.StreamingTranslateRequest(audio=bytes(16000))

        kinds = [r.WhichOneof("response") async for r in stub.StreamingTranslate(requests(), metadata=bearer(OTHER))]
        assert kinds[0] == "started" and kinds[-1] == "ended", kinds

    async def at(call: Any) -> tuple[str, float, float]:
        start = time.monotonic()
        code, seconds = await timed(call)
        return code, start, start + seconds

    async with grpc.aio.insecure_channel(address, options=OWN) as ch:
        stub = pb_grpc.TranslatorStub(ch)
        return {
            "health Check": await at(
                health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=CALL_DEADLINE_S)
            ),
            "ListLanguages": await at(
                stub.ListLanguages(pb.ListLanguagesRequest(), metadata=bearer(OTHER), timeout=CALL_DEADLINE_S)
            ),
            "StreamingTranslate": await at(stream(stub)),
            "riva ListSupportedLanguagePairs": await at(
                nmt_grpc.RivaTranslationStub(ch).ListSupportedLanguagePairs(
                    nmt.AvailableLanguageRequest(), metadata=bearer(OTHER), timeout=CALL_DEADLINE_S
                )
            ),
        }


def assert_on_time(seen: dict[str, tuple[str, float, float]], refused_by: float) -> None:
    """Each of the other tenant's calls answered, within ON_TIME_S of its start or of the moment the
    server was through refusing the flood (``refused_by``), whichever came later: on a starved
    machine the server's refusals of 1,200 calls take seconds of its CPU, which every call waits
    behind; what must not happen is a wait for the attack's held calls (read deadlines, 5 s)."""
    for what, (code, start, end) in seen.items():
        assert code == "OK", f"the other tenant's {what} got {code} while the attack ran: {seen}"
        waited = end - max(start, refused_by)
        assert waited < ON_TIME_S, (
            f"the other tenant's {what} took {end - start:.2f} s, {waited:.2f} s after the server's last "
            f"refusal of the attack's calls ({refused_by - start:+.2f} s from its start): {seen}"
        )


@pytest.mark.parametrize(
    ("method", "token"),
    [("ListLanguages", LANGUAGES), ("riva.TranslateText", CAPPED)],
    ids=["languages-token-ListLanguages", "capped-tenant-riva-TranslateText"],
)
async def test_unary_calls_that_never_send_their_message_leave_the_others_served(
    served: ServerProcess, method: str, token: str
) -> None:
    """F1: 4 connections x 300 silent unary calls. At most max_unary_calls_per_token are admitted,
    each ended at request_read_timeout_s; the rest are refused at once; the other tenant's calls
    and a health Check are answered meanwhile, and the server's memory stays put."""
    pid = served.proc.pid
    reset_peak(pid)
    before = memory_kb(pid)["VmRSS"]
    attack = AttackProcess(
        "grpc_calls",
        "silent-unary",
        "--address",
        served.address,
        "--token",
        token,
        "--method",
        method,
        "--hold-s",
        str(HOLD_S),
    )
    try:
        await attack.started()
        seen = await others_served(served.address)
        got = await attack.result()
    finally:
        attack.stop()
    grown_mb = (memory_kb(pid)["VmHWM"] - before) / 1024
    print(f"{method}: {got}; the other tenant: {seen}; server peak RSS +{grown_mb:.1f} MB")
    assert_on_time(seen, got["refused_by"])
    codes = got["codes"]
    # refused at once as they opened (RESOURCE_EXHAUSTED; a client that never half-closes may see a
    # refusal as CANCELLED), or admitted and ended at the read deadline: none held beyond it (a call
    # admitted as a slot freed, seconds into the flood on a starved machine, ends a deadline later:
    # the attack waits up to 30 s for every call's end, a bound no admitted call comes near)
    assert set(codes) <= {"RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED", "CANCELLED"}, codes
    # at most PER_TOKEN at once: a slot an admitted call frees at its read deadline admits another
    # while the server is still reading the flood, so PER_TOKEN more for each READ_S that took
    rounds = 1 + int((got["refused_by"] - got["begun_at"]) // READ_S)
    assert codes.get("DEADLINE_EXCEEDED", 0) <= PER_TOKEN * rounds and codes.get("RESOURCE_EXHAUSTED", 0) >= 1000, (
        codes,
        rounds,
    )
    assert got["held_at_end"] == 0, got
    # once the refusals are answered (they settle), only admitted ones are open, never more than
    # PER_TOKEN at once: the flood opened every call at its start, so none comes later. How soon
    # they settle is the benchmark's to say, not a test's: over a second on this 2-core machine when
    # other work shared it, three under four busy loops beside the suite, six with more beside them
    opened = got["open_each_second"]
    settled = next((i for i, n in enumerate(opened) if n <= PER_TOKEN), None)
    assert settled is not None and max(opened[settled:]) <= PER_TOKEN, got
    assert grown_mb <= 64, f"the server's peak memory grew {grown_mb:.0f} MB"


async def test_60_mib_unary_messages_are_refused_as_they_arrive_on_every_method(served: ServerProcess) -> None:
    """F2: 8 concurrent 60 MiB messages to each unary method (ListLanguages with the languages
    token, TranslateText, Riva TranslateText and Translate with the uncapped one): gRPC refuses
    each at the port's 4 MiB receive limit as it arrives; the server's peak memory grows by at most
    8 x that limit (measured: a few MB; before: +898 MB for ListLanguages alone)."""
    pid = served.proc.pid
    for method, token in [
        ("ListLanguages", LANGUAGES),
        ("TranslateText", UNCAPPED),
        ("riva.TranslateText", UNCAPPED),
        ("Translate", UNCAPPED),
    ]:
        reset_peak(pid)
        before = memory_kb(pid)["VmRSS"]
        attack = AttackProcess(
            "grpc_calls", "large-unary", "--address", served.address, "--token", token, "--method", method
        )
        try:
            await attack.started()
            async with grpc.aio.insecure_channel(served.address, options=OWN) as ch:
                check = await timed(health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10))
            got = await attack.result()
        finally:
            attack.stop()
        grown_mb = (memory_kb(pid)["VmHWM"] - before) / 1024
        print(f"{method}: {got['codes']} {got['details']}; server peak RSS +{grown_mb:.1f} MB; Check {check}")
        assert grown_mb <= 8 * 4, f"{method}: the server's peak memory grew {grown_mb:.0f} MB"
        assert got["codes"] == {"RESOURCE_EXHAUSTED": 8}, got
        assert all("larger than max" in d and "4194304" in d for d in got["details"]), got
        assert check[0] == "OK" and check[1] < ON_TIME_S, check


async def test_a_tenant_reopening_silent_translate_calls_leaves_translate_to_others(served: ServerProcess) -> None:
    """An uncapped tenant keeps 8 Translate calls open that never send their clip, reopening each
    as the server ends it (at the clip read deadline, here 3 s): it holds at most
    max_clip_reads_per_tenant of max_translate_calls, and another tenant's Translate (capped at 1)
    and a health Check are answered meanwhile."""
    request = pb.TranslateRequest(
        audio=pb.AudioInput(content=bytes(32000), format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000)),
        target_languages=["spa"],
    )
    pid = served.proc.pid
    reset_peak(pid)
    before = memory_kb(pid)["VmRSS"]
    attack = AttackProcess(
        "grpc_calls", "silent-translate", "--address", served.address, "--token", UNCAPPED, "--seconds", "10"
    )
    seen: list[tuple[str, float]] = []
    try:
        await attack.started()
        async with grpc.aio.insecure_channel(served.address, options=OWN) as ch:
            stub = pb_grpc.TranslatorStub(ch)
            for _ in range(6):  # across the attacker's reopenings (every 3 s)
                seen.append(await timed(stub.Translate(request, metadata=bearer(CAPPED), timeout=30)))
                seen.append(await timed(health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest())))
                await asyncio.sleep(1)
        got = await attack.result()
    finally:
        attack.stop()
    grown_mb = (memory_kb(pid)["VmHWM"] - before) / 1024
    print(f"silent Translate: {got}; the other tenant's Translate and Check: {seen}; peak RSS +{grown_mb:.1f} MB")
    assert all(code == "OK" and seconds < ON_TIME_S for code, seconds in seen), seen
    assert 1 <= got["held_most"] <= CLIP_READS, got
    assert got["codes"].get("OUT_OF_RANGE", 0) >= 2, got  # held ones ended at the deadline, and reopened
    assert grown_mb <= 64, f"the server's peak memory grew {grown_mb:.0f} MB"
