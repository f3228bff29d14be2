"""Issue 57 (medium): ``Listen`` brought back silent-call and big-message exhaustion for any token.
It was in no permission list and its request was read outside the per-token unary caps: a
``languages``-only token held all 1,024 call slots (another tenant's StreamingTranslate refused 18
of 18), and 512 requests of 3.9 MiB raised RSS by 2.3 GB. Now a token without rights to listen to
any room is refused as the call opens (PERMISSION_DENIED, unread), and a ListenRequest is read
under the unary admission (per token and per tenant, ``limits.request_read_timeout_s``, at most
1 KiB).

The attacks, scaled down (``limits.max_calls`` 64 instead of 1,024), on a real ``translate-svc
serve`` process; the attacker is a separate client process (``python -m tests.support.attacks.rooms``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.support.attacks.client import OWN
from tests.support.attacks.process import AttackProcess
from tests.support.calls import timed
from tests.support.proc import memory_kb, reset_peak
from tests.support.server_process import ServerProcess
from tests.support.tokens import bearer
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(60)]

LANGUAGES = "listen-bounds-languages-7c1d"
LISTENER = "listen-bounds-listener-3f9a"
OTHER = "listen-bounds-other-b24e"
TOKENS = f"{LANGUAGES} languages\n{LISTENER} listen=* tenant=ears\n{OTHER} * tenant=other\n"
MAX_CALLS = 64  # limits.max_calls here (1,024 by default): the attack scaled down
PER_TOKEN = 16  # limits.max_unary_calls_per_token's default
SLOTS = 96  # silent Listen calls the attacker keeps open: more than MAX_CALLS
LISTEN_METHOD = "/translate_svc.api.v1.Translator/Listen"
#: the made-up stable translator (model/testing/stable.py; no torch, a server starts in about 2 CPU
#: seconds, not 8): what is tested is how Listen calls are admitted and read, and the other
#: tenant's streams are silent: no model call takes part
STABLE = {"TRANSLATE_SVC_MODEL__TEST_TRANSLATOR": "stable"}
MB = 1024 * 1024


@pytest.fixture(scope="module")
def served(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tokens = tmp_path_factory.mktemp("listen-bounds") / "tokens"
    tokens.write_text(TOKENS)
    args = ["--model", str(test_model_dir), "--host", "127.0.0.1", "--port", "0", "--tokens-file", str(tokens)]
    server = ServerProcess(args, env={"TRANSLATE_SVC_LIMITS__MAX_CALLS": str(MAX_CALLS), **STABLE})
    try:
        yield server
    finally:
        server.stop()


async def other_streams(address: str, tries: int = 5) -> list[tuple[str, float]]:
    """Another tenant's short StreamingTranslate (a config and half a second of silence), ``tries``
    times 1.5 s apart, on a connection of its own: each one's status and seconds."""

    async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
        fmt = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000)
        yield pb.StreamingTranslateRequest(config=pb.StreamingConfig(format=fmt, target_languages=["spa"]))
        yield pb.StreamingTranslateRequest(audio=bytes(16000))

    async def one(stub: pb_grpc.TranslatorStub) -> None:
        async for _ in stub.StreamingTranslate(requests(), metadata=bearer(OTHER), timeout=30):
            pass

    seen = []
    async with grpc.aio.insecure_channel(address, options=OWN) as ch:
        stub = pb_grpc.TranslatorStub(ch)
        for _ in range(tries):
            seen.append(await timed(one(stub)))
            await asyncio.sleep(1.5)
    return seen


async def test_a_token_that_may_listen_to_no_room_is_refused_as_the_call_opens(served: ServerProcess) -> None:
    async with grpc.aio.insecure_channel(served.address) as ch:
        call = pb_grpc.TranslatorStub(ch).Listen(
            pb.ListenRequest(room="hall", language="spa"), metadata=bearer(LANGUAGES), timeout=10
        )
        with pytest.raises(grpc.aio.AioRpcError) as e:
            async for _ in call:
                pass
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED, e.value
    assert "may listen to no room" in (e.value.details() or "") and "listen=" in (e.value.details() or "")


@pytest.mark.parametrize("token", [LANGUAGES, LISTENER], ids=["languages-only-token", "listen-token"])
async def test_silent_listen_calls_leave_the_other_tenants_streams_served(served: ServerProcess, token: str) -> None:
    """96 Listen calls that never send their request, each reopened 0.5 s after it ends, for 12 s,
    with the server's call slots at 64. A token that may listen to no room is refused at once (none
    held); one that may listen holds at most its unary calls, each until the read deadline (5 s).
    Another tenant's streams are served meanwhile (before: refused, every slot held)."""
    attack = AttackProcess(
        "rooms",
        "silent-listen",
        *("--address", served.address, "--token", token, "--slots", str(SLOTS), "--connections", "2"),
        *("--seconds", "12", "--reopen-s", "0.5"),
        result_s=120,
    )
    try:
        await attack.started()
        seen = await other_streams(served.address)
        got = await attack.result()
    finally:
        attack.stop()
    print(f"silent Listen ({token}): {got}; the other tenant's streams: {seen}")
    assert all(code == "OK" for code, _ in seen), f"the other tenant's streams while the attack ran: {seen}"
    codes: dict[str, Any] = got["codes"]
    if token == LANGUAGES:
        assert got["held_most"] == 0 and set(codes) <= {"PERMISSION_DENIED", "CANCELLED"}, got
    else:
        assert got["held_most"] <= PER_TOKEN, got
        assert codes.get("DEADLINE_EXCEEDED", 0) >= PER_TOKEN and codes.get("RESOURCE_EXHAUSTED", 0) >= SLOTS, got


async def test_large_listen_requests_of_a_token_that_may_listen_to_no_room_are_never_read(
    served: ServerProcess,
) -> None:
    """96 concurrent Listen calls of one 3.9 MiB request each (just under the port's 4 MiB receive
    limit) with a languages-only token: each refused as it opens, unread, so the server's memory
    stays put (before: each admitted and read, +250 MB and more here, 2.3 GB for 512)."""
    got, grown_mb = await large_listen(served, LANGUAGES)
    assert got["codes"] == {"PERMISSION_DENIED": 96}, got
    assert grown_mb <= 32, f"the server's peak memory grew {grown_mb:.0f} MB"


@pytest.fixture(scope="module")
def patient(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """As ``served``, with a read deadline long enough that calls held unread stay held for the
    whole test, however slow the machine."""
    tokens = tmp_path_factory.mktemp("listen-patient") / "tokens"
    tokens.write_text(TOKENS)
    args = ["--model", str(test_model_dir), "--host", "127.0.0.1", "--port", "0", "--tokens-file", str(tokens)]
    server = ServerProcess(args, env={"TRANSLATE_SVC_LIMITS__REQUEST_READ_TIMEOUT_S": "60", **STABLE})
    try:
        yield server
    finally:
        server.stop()


async def test_large_listen_requests_are_read_under_the_unary_caps(patient: ServerProcess) -> None:
    """A token that may listen: its Listen requests are read under its unary calls (16). With 16
    of its Listen calls held unread, the 17th is refused unread with the unary cap's message, a
    3.9 MiB request too (before: every one read, whatever the token); once they are gone, a large
    request is read and refused over the request's 1 KiB. (Checked in that order, so the test
    needs no race between concurrent senders; what the reads leave is the allocator's, as for
    ListLanguages: docs/security.md.)"""
    release = asyncio.Event()
    payload = bytes(int(3.9 * MB))
    options = [*OWN, ("grpc.max_send_message_length", -1)]

    async def silent() -> AsyncIterator[bytes]:  # the call's HEADERS, then nothing until released
        await release.wait()
        return
        yield

    async def status(call: Any) -> tuple[str, str]:
        try:
            async for _ in call:
                pass
            return "OK", ""
        except grpc.aio.AioRpcError as e:
            return e.code().name, e.details() or ""

    async with grpc.aio.insecure_channel(patient.address, options=options) as ch:
        raw = ch.stream_stream(LISTEN_METHOD)
        # 17 silent calls for 16 unary slots: exactly one is refused, at once, the others held
        calls = [asyncio.ensure_future(status(raw(silent(), metadata=bearer(LISTENER)))) for _ in range(PER_TOKEN + 1)]
        try:
            done, held = await asyncio.wait(calls, timeout=30, return_when=asyncio.FIRST_COMPLETED)
            assert len(done) == 1 and len(held) == PER_TOKEN, (len(done), [d.result() for d in done])
            code, message = done.pop().result()
            assert code == "RESOURCE_EXHAUSTED" and "limits.max_unary_calls_per_token" in message, (code, message)
            big = ch.unary_stream(LISTEN_METHOD)
            code, message = await asyncio.wait_for(status(big(payload, metadata=bearer(LISTENER))), 30)
            assert code == "RESOURCE_EXHAUSTED" and "limits.max_unary_calls_per_token" in message, (code, message)
            assert not any(h.done() for h in held), [h.result() for h in held if h.done()]
        finally:
            release.set()
            for c in calls:
                c.cancel()
            await asyncio.gather(*calls, return_exceptions=True)
        big = ch.unary_stream(LISTEN_METHOD)
        code, message = await asyncio.wait_for(status(big(payload, metadata=bearer(LISTENER))), 30)
    assert code == "INVALID_ARGUMENT" and "1024-byte limit" in message, (code, message)


async def large_listen(served: ServerProcess, token: str) -> tuple[dict[str, Any], float]:
    """The attack in its own process: what it saw, and the server's peak RSS growth (MB)."""
    pid = served.proc.pid
    reset_peak(pid)
    before = memory_kb(pid)["VmRSS"]
    attack = AttackProcess(
        "rooms", "large-listen", "--address", served.address, "--token", token, "--calls", "96", result_s=120
    )
    try:
        await attack.started()
        got = await attack.result()
    finally:
        attack.stop()
    grown_mb = (memory_kb(pid)["VmHWM"] - before) / 1024
    print(f"large Listen ({token}): {got}; server peak RSS +{grown_mb:.1f} MB")
    return got, grown_mb
