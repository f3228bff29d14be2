"""Issue 34 N1: what a caller without a token can hold, on a real server on loopback with a tokens
file (so health is the only token-less service).

Token-less health Watch calls stay open: unbounded, they filled the process's
``maximum_concurrent_rpcs`` and a new client's Check, ListLanguages and StreamingTranslate got
RESOURCE_EXHAUSTED; on the health port they took every slot a probe's Check needed. Now Watch is
bounded per port (``limits.max_health_watches``) and has its own slots on top of the others', and
refused streams draining their client's sends are bounded the same way
(``limits.max_refusal_drains``). Each test floods past the bound, then a new client is served.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.waiting import eventually
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc
from translate_svc.client_cli.decode import load_pcm16k
from translate_svc.settings import Settings
from translate_svc.transport.grpc.door import GrpcDoor
from translate_svc.transport.host import HEALTH_CALLS_PER_CONNECTION, HEALTH_MAX_CALLS

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(15)]

TOKEN = "health-bounds-token-7c2e9a41"
MAX_CALLS = 24  # limits.max_calls here: small, so a flood passes it with few calls
WATCHES = 4  # limits.max_health_watches here
DRAINS = 4  # limits.max_refusal_drains here
DEADLINE_S = 30.0
OWN = [("grpc.use_local_subchannel_pool", 1)]  # each channel its own connection (gRPC shares them by default)
SERVING = health_pb2.HealthCheckResponse.SERVING


def guarded(model_dir: Path, tmp_path: Path) -> Settings:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{TOKEN}\n")
    settings = make_settings(model_dir)
    settings.auth.tokens_file = tokens
    settings.server.health_port = 0
    settings.limits.max_calls = MAX_CALLS
    settings.limits.max_health_watches = WATCHES
    settings.limits.max_refusal_drains = DRAINS
    return settings


@contextlib.asynccontextmanager
async def channels(address: str, count: int) -> AsyncIterator[list[grpc.aio.Channel]]:
    opened = [grpc.aio.insecure_channel(address, options=OWN) for _ in range(count)]
    try:
        yield opened
    finally:
        for ch in opened:
            await ch.close()


async def first_answer(call: Any) -> tuple[grpc.StatusCode, str]:
    """OK once a Watch sent its first status, else the code (and message) it ended with."""
    try:
        await call.read()
        return grpc.StatusCode.OK, ""
    except grpc.aio.AioRpcError as e:
        return e.code(), e.details() or ""


@contextlib.asynccontextmanager
async def watch_flood(
    address: str, count: int, per_connection: int
) -> AsyncIterator[tuple[Counter[grpc.StatusCode], list[str]]]:
    """Open ``count`` token-less Watch calls (at most ``per_connection`` on one connection, so the
    client queues none) and hold them open while the block runs: the codes of their first answers
    (OK: the first status came), and the messages of the refusals."""
    async with channels(address, math.ceil(count / per_connection)) as chs:
        calls = [
            health_pb2_grpc.HealthStub(chs[i // per_connection]).Watch(health_pb2.HealthCheckRequest(service=""))
            for i in range(count)
        ]
        try:
            async with asyncio.timeout(DEADLINE_S):
                answers = await asyncio.gather(*(first_answer(c) for c in calls))
            yield Counter(code for code, _ in answers), [m for _, m in answers if m]
        finally:
            for c in calls:
                c.cancel()


async def served_stream(stub: pb_grpc.TranslatorStub, speech: bytes) -> list[str]:
    """A StreamingTranslate with a token: config, the speech, half-close; the kinds of what came."""

    async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
        fmt = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000)
        yield pb.StreamingTranslateRequest(config=pb.StreamingConfig(format=fmt, target_languages=["spa"]))
        for at in range(0, len(speech), 32000):
            yield pb.StreamingTranslateRequest(audio=speech[at : at + 32000])

    kinds = []
    call = stub.StreamingTranslate(requests(), metadata=(("authorization", f"Bearer {TOKEN}"),), timeout=DEADLINE_S)
    async for r in call:
        kinds.append(r.WhichOneof("response"))
    return kinds


async def a_new_client_is_served(live: LiveServer, speech: bytes) -> None:
    """A new client (its own connection): a token-less Check, ListLanguages and a whole stream."""
    async with channels(f"127.0.0.1:{live.port}", 1) as (ch,):
        status = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert status.status == SERVING
        stub = pb_grpc.TranslatorStub(ch)
        langs = await stub.ListLanguages(
            pb.ListLanguagesRequest(), metadata=(("authorization", f"Bearer {TOKEN}"),), timeout=10
        )
        assert langs.limits.max_calls == MAX_CALLS
        kinds = await served_stream(stub, speech)
    assert kinds[0] == "started" and kinds[-1] == "ended", kinds


@pytest.fixture
def speech(shared_audio: Path) -> bytes:
    return bytes(load_pcm16k(shared_audio / "jfk.flac")[: 16000 * 3].tobytes())


async def test_watch_calls_past_the_bound_leave_the_main_port_to_others(
    test_model_dir: Path, tmp_path: Path, speech: bytes
) -> None:
    async with serving(guarded(test_model_dir, tmp_path)) as live:
        # more Watch calls than max_calls (before the bound they took every slot of the process), and
        # no more than the process's calls, watches and drains together
        async with watch_flood(f"127.0.0.1:{live.port}", MAX_CALLS + 2 * WATCHES, 320) as (codes, messages):
            await a_new_client_is_served(live, speech)
    assert codes == {grpc.StatusCode.OK: WATCHES, grpc.StatusCode.RESOURCE_EXHAUSTED: MAX_CALLS + WATCHES}, codes
    assert all("max_health_watches" in m and "poll with Check" in m for m in messages), messages[:1]


async def test_watch_calls_on_the_health_port_never_keep_a_probe_out(
    test_model_dir: Path, tmp_path: Path, speech: bytes
) -> None:
    async with serving(guarded(test_model_dir, tmp_path)) as live:
        health_port = live.server.health_port
        assert health_port is not None
        # more Watch calls than the health port's calls (before the bound they took every slot), and
        # no more than its calls and watches together (so none is refused for the process's limit)
        flood = HEALTH_MAX_CALLS + WATCHES
        async with watch_flood(f"127.0.0.1:{health_port}", flood, HEALTH_CALLS_PER_CONNECTION) as (codes, messages):
            for _ in range(3):  # as a kubelet probes: a new connection, one Check; three times
                async with channels(f"127.0.0.1:{health_port}", 1) as (ch,):
                    got = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
                assert got.status == SERVING
            # the main port's Watch bound is its own: the health port's flood takes nothing there
            async with watch_flood(f"127.0.0.1:{live.port}", WATCHES, 320) as (main_codes, _):
                assert main_codes == {grpc.StatusCode.OK: WATCHES}, main_codes
            await a_new_client_is_served(live, speech)
    assert codes == {grpc.StatusCode.OK: WATCHES, grpc.StatusCode.RESOURCE_EXHAUSTED: flood - WATCHES}, codes
    assert all("max_health_watches" in m for m in messages), messages[:1]


async def silent(release: asyncio.Event) -> AsyncIterator[pb.StreamingTranslateRequest]:
    """A client that sends nothing until ``release``, then half-closes."""
    await release.wait()
    return
    yield


async def test_refused_streams_that_never_half_close_leave_the_main_port_to_others(
    test_model_dir: Path, tmp_path: Path, speech: bytes
) -> None:
    """Token-less streams are refused, but a refused stream reads what its client still sends for
    up to error_drain_s (here longer than the test) before its status: only DRAINS at once."""
    settings = guarded(test_model_dir, tmp_path)
    settings.server.error_drain_s = 60
    flood = MAX_CALLS + 2 * DRAINS
    release = asyncio.Event()
    async with serving(settings) as live, channels(f"127.0.0.1:{live.port}", 1) as (ch,):
        stub = pb_grpc.TranslatorStub(ch)
        calls = [stub.StreamingTranslate(silent(release)) for _ in range(flood)]
        ended: list[grpc.StatusCode] = []

        async def outcome(call: Any) -> None:
            try:
                async for _ in call:
                    pass
            except grpc.aio.AioRpcError as e:
                ended.append(e.code())

        waiting = [asyncio.ensure_future(outcome(c)) for c in calls]
        try:
            loop = asyncio.get_running_loop()
            end = loop.time() + DEADLINE_S
            while len(ended) < flood - DRAINS and loop.time() < end:
                await asyncio.wait(waiting, timeout=end - loop.time(), return_when=asyncio.FIRST_COMPLETED)
                waiting = [w for w in waiting if not w.done()]
            assert len(ended) == flood - DRAINS, f"{len(ended)} of {flood} refused streams ended; the rest hold slots"
            # DRAINS refused streams still drain; everyone else is served meanwhile
            assert len(waiting) == DRAINS
            await a_new_client_is_served(live, speech)
        finally:
            release.set()
            for c in calls:
                c.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)
    assert ended[: flood - DRAINS] == [grpc.StatusCode.UNAUTHENTICATED] * (flood - DRAINS), Counter(ended)


async def held_calls(calls: list[Any], refused: int) -> tuple[int, Counter[str]]:
    """Once ``refused`` of ``calls`` have ended (DEADLINE_S at most: a busy machine answers late): how
    many are still open, and the codes of those that ended."""

    async def answered() -> bool:
        return sum(c.done() for c in calls) >= refused

    await eventually(answered, f"{refused} calls answered", DEADLINE_S, 0.05)
    codes: Counter[str] = Counter()
    for c in calls:
        if c.done():
            codes[(await c.code()).name] += 1
    return sum(not c.done() for c in calls), codes


async def slots_given_back(live: LiveServer) -> None:
    """Until the server has ended every cancelled call's handler (its own count of ordinary calls in
    progress back to 0). A cancel reaches the server later than the client's ``cancel()`` returns,
    the later the busier the machine: a new client sent at once can still find every slot held."""
    door = live.server.door(GrpcDoor)
    assert door is not None

    async def none_held() -> bool:
        return door.slots.held == 0

    await eventually(none_held, "every cancelled call's slot given back (ordinary calls counted: 0)", DEADLINE_S, 0.05)


async def test_a_probe_is_answered_while_every_ordinary_call_slot_is_taken(
    test_model_dir: Path, tmp_path: Path, speech: bytes
) -> None:
    """Issue 52 F1: the main port's ordinary calls are counted by the server and refused at
    max_calls, below gRPC's own limit, which keeps max_health_checks slots for Check. Silent
    ListLanguages calls (a token whose unary bounds are raised past max_calls) more than gRPC's
    whole limit: MAX_CALLS are held, the rest refused at once naming max_calls, and a new client's
    Check is answered (before: every slot held, the Check refused)."""
    settings = guarded(test_model_dir, tmp_path)
    settings.limits.max_unary_calls_per_token = settings.limits.max_unary_calls_per_tenant = 1000
    settings.limits.max_health_checks = 8
    settings.limits.request_read_timeout_s = 600  # the held calls stay held however slow the machine
    flood = MAX_CALLS + WATCHES + DRAINS + 8 + 8  # more than the process's every slot
    release = asyncio.Event()
    async with serving(settings) as live, channels(f"127.0.0.1:{live.port}", 1) as (ch,):
        listing = ch.stream_unary("/translate_svc.api.v1.Translator/ListLanguages")
        calls = [listing(silent(release), metadata=(("authorization", f"Bearer {TOKEN}"),)) for _ in range(flood)]
        try:
            held, codes = await held_calls(calls, flood - MAX_CALLS)
            async with channels(f"127.0.0.1:{live.port}", 1) as (probe,):
                status = await health_pb2_grpc.HealthStub(probe).Check(health_pb2.HealthCheckRequest(), timeout=5)
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await pb_grpc.TranslatorStub(probe).ListLanguages(
                        pb.ListLanguagesRequest(), metadata=(("authorization", f"Bearer {TOKEN}"),), timeout=5
                    )
        finally:
            for c in calls:
                c.cancel()
            release.set()
        await slots_given_back(live)
        await a_new_client_is_served(live, speech)
    assert status.status == SERVING
    assert held == MAX_CALLS and codes.get("RESOURCE_EXHAUSTED", 0) + codes.get("CANCELLED", 0) == flood - MAX_CALLS
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "limits.max_calls" in (refused.value.details() or ""), refused.value.details()


async def ended(call: Any) -> tuple[str, float]:
    """The code ``call`` ended with, and when (the loop's clock, read when this task runs again: never
    before the call ended)."""
    try:
        await call
        code = "OK"
    except grpc.aio.AioRpcError as e:
        code = e.code().name
    return code, asyncio.get_running_loop().time()


async def test_health_checks_that_never_send_their_request_are_bounded_and_end_at_the_deadline(
    test_model_dir: Path, tmp_path: Path
) -> None:
    """Health needs no token: silent Check calls (HEADERS, never the request) held a call slot each
    until their client left, on either port. Now at most max_health_checks at once on the main
    port (HEALTH_MAX_CALLS on the health port), each ended at request_read_timeout_s
    (DEADLINE_EXCEEDED), the rest refused. The client never leaves, so without the deadline none of
    the held calls would end: the test waits for them all (DEADLINE_S at most), whenever a busy
    machine lets the server start each call's clock, and checks none ended before its deadline."""
    read_s = 2.0
    settings = guarded(test_model_dir, tmp_path)
    settings.limits.max_health_checks = 8
    settings.limits.request_read_timeout_s = read_s
    release = asyncio.Event()
    loop = asyncio.get_running_loop()
    async with serving(settings) as live:
        health_port = live.server.health_port
        assert health_port is not None
        for port, bound in [(live.port, 8), (health_port, HEALTH_MAX_CALLS)]:
            async with channels(f"127.0.0.1:{port}", math.ceil((bound + 8) / HEALTH_CALLS_PER_CONNECTION)) as chs:
                sent = loop.time()  # before any call: the server's clock for each starts later
                checks = [
                    chs[i // HEALTH_CALLS_PER_CONNECTION].stream_unary("/grpc.health.v1.Health/Check")(silent(release))
                    for i in range(bound + 8)
                ]
                try:
                    async with asyncio.timeout(DEADLINE_S):
                        endings = await asyncio.gather(*(ended(c) for c in checks))
                finally:
                    for c in checks:
                        c.cancel()
                async with channels(f"127.0.0.1:{port}", 1) as (probe,):
                    status = await health_pb2_grpc.HealthStub(probe).Check(health_pb2.HealthCheckRequest(), timeout=5)
            codes = Counter(code for code, _ in endings)
            assert codes.get("RESOURCE_EXHAUSTED", 0) + codes.get("CANCELLED", 0) == 8, codes
            assert codes.get("DEADLINE_EXCEEDED", 0) == bound, codes
            early = [at - sent for code, at in endings if code == "DEADLINE_EXCEEDED" and at - sent < read_s - 0.05]
            assert not early, f"held calls ended before request_read_timeout_s ({read_s} s): {early}"
            assert status.status == SERVING
        release.set()


async def test_silent_reflection_streams_are_held_to_their_tokens_unary_bound(
    test_model_dir: Path, tmp_path: Path
) -> None:
    """Reflection (on here, with tokens) is a stream a client may hold open without a word: its
    calls count as their caller's unary calls, so one token holds at most max_unary_calls_per_token
    of them, not every call slot of the process."""
    settings = guarded(test_model_dir, tmp_path)
    settings.server.reflection = "on"
    settings.limits.max_unary_calls_per_token = 4
    other = "health-bounds-other-token-52c1"
    with (tmp_path / "tokens").open("a") as f:
        f.write(f"{other} tenant=other\n")
    release = asyncio.Event()
    async with serving(settings) as live, channels(f"127.0.0.1:{live.port}", 1) as (ch,):
        info = ch.stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
        calls = [info(silent(release), metadata=(("authorization", f"Bearer {TOKEN}"),)) for _ in range(MAX_CALLS)]
        refused: list[str] = []

        async def first(call: Any) -> None:
            with contextlib.suppress(grpc.aio.AioRpcError):
                await call.read()
            if call.done():
                refused.append(await call.details() or "")

        readers = [asyncio.ensure_future(first(c)) for c in calls]
        try:
            held, _ = await held_calls(calls, MAX_CALLS - 4)
            async with channels(f"127.0.0.1:{live.port}", 1) as (probe,):  # another token, meanwhile
                status = await health_pb2_grpc.HealthStub(probe).Check(health_pb2.HealthCheckRequest(), timeout=5)
                langs = await pb_grpc.TranslatorStub(probe).ListLanguages(
                    pb.ListLanguagesRequest(), metadata=(("authorization", f"Bearer {other}"),), timeout=5
                )
        finally:
            release.set()
            for c in calls:
                c.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
    assert held == 4, held
    assert sum("limits.max_unary_calls_per_token" in m for m in refused) == MAX_CALLS - 4, refused[:2]
    assert status.status == SERVING and langs.limits.max_unary_calls_per_token == 4
