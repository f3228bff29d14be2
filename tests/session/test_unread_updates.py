"""Issue 52 F4: a client that sends updates and never reads is answered a few times, not without
bound, on the gRPC door and the OpenAI-compatible WebSocket; a real ``translate-svc serve``
process (its memory read from /proc), a tokens file with the attacker's tenant and another.

Each attack runs for ``ATTACK_S`` while another tenant's calls and health ``Check`` are timed. The
server stops reading the stream once ``max_unread_results`` answers are unread (as it does for
results), so the updates its client manages to write are those the transport's buffers hold
(windows, socket buffers: computed from their sizes below) and the server's memory stays where it
was. Afterwards the attacker reads: every update it sent is answered, in order, none coalesced.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import code_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.metrics import Metrics
from tests.support.proc import memory_kb
from tests.support.server_process import ServerProcess
from tests.support.speech import speech_pcm16
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(45)]

ATTACKER = "unread-updates-attacker-2c9e4b"  # tenant a
VICTIM = "unread-updates-victim-7f1d3a"  # tenant b
ATTACK_S = 8.0
#: the server's memory may grow this much while an attack runs (docs/security.md: a few answers
#: and a window per stream; the unbounded queue grew 2 MB a second here)
RSS_BOUND_MB = 24
#: the fixed windows and buffers (settings' defaults; Linux doubles a socket buffer it is given)
MAX_UNREAD = 4  # limits.max_unread_results
STREAM_WINDOW = 256 * 1024  # limits.stream_window_bytes: the server's HTTP/2 receive window, its SO_RCVBUF
WS_SEND_BUFFER = 64 * 1024  # limits.ws_send_buffer_bytes: the server's SO_SNDBUF on a realtime socket
CLIENT_WINDOW = 64 * 1024  # the attacker's HTTP/2 receive window (the SDK's)
#: gRPC core's write buffer (``grpc.http2.write_buffer_size``, 64 KiB): a message written is done
#: while this much waits in its sender's own transport, on either side
GRPC_WRITE_BUFFER = 64 * 1024
CLIENT_SOCKET_BUFFER = 4096  # the WebSocket attacker's SO_RCVBUF and SO_SNDBUF
ASYNCIO_WRITE_HIGH = 64 * 1024  # an asyncio transport's write buffer before its writer waits
#: aiohttp 3.14's WebSocket reader: the messages it queues before it pauses reading (2 x 256 KiB),
#: and one read of the socket beyond
AIOHTTP_READ_AHEAD = 2 * 256 * 1024 + 256 * 1024
#: what pads each of the attacker's messages: an unknown protobuf field, an unknown JSON key
PAD = 1024


HELD = "translate_svc_streams_held_unread_total"  # the server's count of streams it stopped reading


@pytest.fixture(scope="module")
def served(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Metrics]]:
    tokens = tmp_path_factory.mktemp("tokens") / "tokens"
    tokens.write_text(f"{ATTACKER} * tenant=a\n{VICTIM} * tenant=b\n")
    srv = ServerProcess(
        [
            *("--model", str(test_model_dir), "--host", "127.0.0.1", "--port", "0", "--http-port", "0"),
            *("--tokens-file", str(tokens)),
        ],
        env={"TRANSLATE_SVC_SERVER__METRICS_PORT": "0"},  # it picks, and says in its ready file
    )
    try:
        yield srv, Metrics(srv.metrics_port)
    finally:
        srv.stop()


def rss_mb(srv: ServerProcess) -> float:
    return memory_kb(srv.info.pid)["VmRSS"] / 1024


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


class OtherTenant:
    """Tenant b's health ``Check`` and ``ListLanguages`` every 0.2 s, and one stream of real speech,
    while an attack runs: each must be served, the calls within ``ON_TIME_S``."""

    ON_TIME_S = 3.0

    def __init__(self, port: int, speech: bytes) -> None:
        self.port, self.speech = port, speech
        self.worst = 0.0
        self.results = 0
        self._tasks: list[asyncio.Task[None]] = []

    async def _calls(self, ch: grpc.aio.Channel) -> None:
        health, stub = health_pb2_grpc.HealthStub(ch), pb_grpc.TranslatorStub(ch)
        while True:
            t0 = time.perf_counter()
            status = await health.Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert status.status == health_pb2.HealthCheckResponse.SERVING
            await stub.ListLanguages(pb.ListLanguagesRequest(), metadata=bearer(VICTIM), timeout=10)
            self.worst = max(self.worst, time.perf_counter() - t0)
            await asyncio.sleep(0.2)

    async def _stream(self, ch: grpc.aio.Channel) -> None:
        async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
            fmt = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000, channels=1)
            config = pb.StreamingConfig(format=fmt, target_languages=["spa"], output=pb.OutputOptions(speech=False))
            yield pb.StreamingTranslateRequest(config=config)
            for at in range(0, len(self.speech), 3200):
                yield pb.StreamingTranslateRequest(audio=self.speech[at : at + 3200])
                await asyncio.sleep(0.05)  # twice real time

        stub = pb_grpc.TranslatorStub(ch)
        async for r in stub.StreamingTranslate(requests(), metadata=bearer(VICTIM), timeout=60):
            self.results += r.HasField("segment")

    async def __aenter__(self) -> OtherTenant:
        self._channel = grpc.aio.insecure_channel(f"127.0.0.1:{self.port}")
        ch = self._channel
        self._tasks = [asyncio.create_task(self._calls(ch)), asyncio.create_task(self._stream(ch))]
        return self

    async def __aexit__(self, *exc: object) -> None:
        calls, stream = self._tasks
        async with asyncio.timeout(60):
            await stream  # its results all came (raises if the stream failed)
        assert not calls.done(), calls  # no call failed (a failure would have ended the loop)
        calls.cancel()
        await asyncio.gather(calls, return_exceptions=True)
        await self._channel.close()
        assert self.results >= 1, "the other tenant's stream got no result"
        assert self.worst < self.ON_TIME_S, f"the other tenant's Check + ListLanguages took {self.worst:.2f} s"


@pytest.fixture(scope="module")
def other_speech(shared_audio: Path) -> bytes:
    return bytes(speech_pcm16(shared_audio / "silero_test.wav", 12.0, 16000).tobytes())


def _unknown_field(size: int) -> bytes:
    """A length-delimited field numbered 1000, which the server's messages do not have (kept
    aside by protobuf, unused): what makes each of the attacker's messages ``size`` bytes more."""
    tag = (1000 << 3) | 2
    out = bytearray()
    for value in (tag, size):
        while value >= 0x80:
            out.append(value & 0x7F | 0x80)
            value >>= 7
        out.append(value)
    return bytes(out) + b"x" * size


async def test_a_grpc_stream_sending_updates_and_never_reading_is_answered_a_few_times(
    served: tuple[ServerProcess, Metrics], other_speech: bytes
) -> None:
    server, metrics = served
    config = pb.StreamingConfig(
        format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000, channels=1),
        source_language="eng",
        target_languages=["spa"],
        output=pb.OutputOptions(speech=False),
    )
    # an update the server refuses (the model lacks the language): answered, the stream goes on
    update = (
        pb.StreamingTranslateRequest(update=pb.StreamUpdate(targets=pb.TargetLanguages(languages=["zzz"])))
    ).SerializeToString() + _unknown_field(PAD)
    # a client whose HTTP/2 window takes in 64 KiB and no more (BDP probing off)
    options = [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", CLIENT_WINDOW)]
    before, held_before = rss_mb(server), await metrics.value(HELD)
    written = 0
    async with grpc.aio.insecure_channel(server.address, options=options) as ch:
        method = ch.stream_stream(
            "/translate_svc.api.v1.Translator/StreamingTranslate",
            request_serializer=None,
            response_deserializer=pb.StreamingTranslateResponse.FromString,
        )
        call = method(metadata=bearer(ATTACKER), timeout=120)
        attacking = True

        async def attack() -> None:  # (a write is not cancelled: that would cancel the call)
            nonlocal written
            await call.write(pb.StreamingTranslateRequest(config=config).SerializeToString())
            while attacking:
                await call.write(update)  # waits while the server's window is full
                written += 1

        async with OtherTenant(server.port, other_speech):
            writing = asyncio.create_task(attack())
            await asyncio.sleep(ATTACK_S)
            attacking, taken = False, written
            held_mb = rss_mb(server) - before
            held = await metrics.value(HELD) - held_before  # the server says it stopped reading
        # now the attacker reads: every update it wrote is answered, in order, none coalesced
        reading = asyncio.create_task(_updated(call))
        async with asyncio.timeout(60):
            await writing  # its last write goes once the server reads again
            await call.done_writing()
            answers = await reading
        assert await call.code() == grpc.StatusCode.OK
    answer = answers[0].updated.ByteSize()
    # what the buffers hold: its updates in its write buffer and the server's window, answers in
    # the server's write buffer and its own window (without the bound: tens of thousands)
    into = (GRPC_WRITE_BUFFER + STREAM_WINDOW) // len(update)
    bound = into + (GRPC_WRITE_BUFFER + CLIENT_WINDOW) // answer + MAX_UNREAD + 4
    assert taken <= bound, f"{taken} updates taken in {ATTACK_S} s, more than the buffers hold ({bound})"
    assert held_mb < RSS_BOUND_MB, f"the server's memory grew {held_mb:.1f} MB"
    assert held >= 1, "the server did not say it stopped reading the stream"
    assert len(answers) == written
    assert {(a.updated.status.code, a.updated.first_segment_id) for a in answers} == {(code_pb2.INVALID_ARGUMENT, 0)}


async def _updated(call: Any) -> list[pb.StreamingTranslateResponse]:
    return [r async for r in call if r.HasField("updated")]


# -- the OpenAI-compatible WebSocket ------------------------------------------------------------


def _frame(text: str) -> bytes:
    """One masked WebSocket text frame, as a client sends it (RFC 6455)."""
    data = text.encode()
    mask = os.urandom(4)
    n = len(data)
    if n < 126:
        head = bytes([0x81, 0x80 | n])
    else:
        assert n < 1 << 16
        head = bytes([0x81, 0x80 | 126]) + n.to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


async def _frames(reader: asyncio.StreamReader) -> AsyncIterator[tuple[dict[str, Any], int]]:
    """The server's text frames (unmasked) as JSON, and each frame's size, until it closes."""
    while True:
        try:
            b0, b1 = await reader.readexactly(2)
        except asyncio.IncompleteReadError:
            return
        n, head = b1 & 0x7F, 2
        if n == 126:
            n, head = int.from_bytes(await reader.readexactly(2), "big"), 4
        elif n == 127:
            n, head = int.from_bytes(await reader.readexactly(8), "big"), 10
        data = await reader.readexactly(n)
        if b0 & 0x0F == 0x8:  # close
            return
        if b0 & 0x0F == 0x1:
            yield json.loads(data), head + n


async def test_a_websocket_sending_session_updates_and_never_reading_is_answered_a_few_times(
    served: tuple[ServerProcess, Metrics], other_speech: bytes
) -> None:
    server, metrics = served
    port = server.info.http_port
    assert port is not None
    # a raw socket that reads nothing after the upgrade, its buffers small
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CLIENT_SOCKET_BUFFER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, CLIENT_SOCKET_BUFFER)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET /v1/realtime/translations?model=m&source_language=en HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Authorization: Bearer {ATTACKER}\r\n\r\n".encode()
    )
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101 ")

    def session_update(language: str) -> bytes:
        event = {"type": "session.update", "session": {"audio": {"output": {"language": language}}}}
        return _frame(json.dumps({**event, "x_pad": "x" * PAD}))

    # the config (Spanish), then changes to a language the model lacks: each an update of the
    # stream, refused by it (the session stays Spanish: the next one is a change again)
    config, update = session_update("es"), session_update("zz")
    before, held_before = rss_mb(server), await metrics.value(HELD)
    written = 0
    async with OtherTenant(server.port, other_speech):
        writer.write(config)
        end = time.monotonic() + ATTACK_S
        try:
            while (left := end - time.monotonic()) > 0:
                writer.write(update)
                written += 1
                await asyncio.wait_for(writer.drain(), left)
        except TimeoutError:
            pass  # the server stopped reading: TCP holds the writes
        held_mb = rss_mb(server) - before
        held = await metrics.value(HELD) - held_before
    # now the attacker reads: every update answered (an error each), in order
    writer.write(_frame(json.dumps({"type": "session.close"})))
    events: list[tuple[dict[str, Any], int]] = []
    async with asyncio.timeout(60):
        async for ev, size in _frames(reader):
            events.append((ev, size))
            if ev["type"] == "session.closed":
                break
    writer.close()
    errors = [(e, size) for e, size in events if e["type"] == "error"]
    answer = min(size for _, size in errors)
    # what the buffers hold on the way in (ours, the server's socket, aiohttp's read-ahead) and on
    # the way out (aiohttp's writer and the transport's buffer, the server's socket, ours), twice
    # for slack (without the bound: tens of thousands)
    into = ASYNCIO_WRITE_HIGH + 2 * CLIENT_SOCKET_BUFFER + 2 * STREAM_WINDOW + AIOHTTP_READ_AHEAD
    out = WS_SEND_BUFFER + ASYNCIO_WRITE_HIGH + 2 * WS_SEND_BUFFER + 2 * CLIENT_SOCKET_BUFFER
    bound = 2 * (into // len(update) + out // answer + MAX_UNREAD)
    assert written <= bound, f"{written} session.updates taken in {ATTACK_S} s, more than the buffers hold ({bound})"
    assert held_mb < RSS_BOUND_MB, f"the server's memory grew {held_mb:.1f} MB"
    assert held >= 1, "the server did not say it stopped reading the session"
    assert len(errors) == written  # one per update (the config's extra key is ignored)
    assert {e["error"]["code"] for e, _ in errors} == {"invalid_value"}
