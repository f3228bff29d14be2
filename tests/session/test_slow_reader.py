"""Issue 34: streams whose client sends fast and never reads a result, against a real
``translate-svc serve`` process on loopback, with the default limits.

What such a stream makes the server compute and hold is bounded by settings: the segments it has
in the engine or computed and not handed to gRPC (``limits.max_unread_results``, 4: then its
session stops reading audio), and the audio gRPC takes in beyond what the session read (the call's
fixed HTTP/2 receive window, ``limits.stream_window_bytes``; before, BDP probing grew it past
4 MiB: two minutes of 16 kHz audio a stream). What the *client's* transport takes in is computed
too (the server cannot tell it from a read): the raw clients here take in nothing (their receive
window is a few bytes), the server's worst case; the SDK's clients, with their defaults, take in a
64 KiB window and a few events. Meanwhile another client's stream is served.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import soundfile as sf
import soxr

from tests.support.metrics import BYTES_PER_S, Metrics
from tests.support.server_process import ServerProcess
from tests.support.waiting import eventually
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc
from translate_svc.client import AsyncTranslateClient
from translate_svc.client.aio import DEFAULT_BUFFERED_EVENTS, DEFAULT_RECEIVE_WINDOW_BYTES
from translate_svc.client_cli.decode import load_pcm16k
from translate_svc.settings import LimitsSettings
from translate_svc.wire.pcm import float_to_pcm16

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(25)]

STREAMS = 4
UNREAD = LimitsSettings().max_unread_results  # the defaults: the server below sets neither
WINDOW = LimitsSettings().stream_window_bytes
CHUNK = 3200  # 100 ms of 16 kHz LINEAR16 a message
DEADLINE_S = 30.0
#: a client whose streams take in (almost) nothing: their receive window is a few bytes, fixed
NEVER_READS = [("grpc.use_local_subchannel_pool", 1), ("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 8)]


def requests(audio: bytes, sent: list[int], k: int) -> AsyncIterator[pb.StreamingTranslateRequest]:
    """Config, then ``audio`` as fast as gRPC takes it; ``sent[k]``: the audio bytes it took (a
    write completes once the server's window let its bytes through)."""

    async def gen() -> AsyncIterator[pb.StreamingTranslateRequest]:
        fmt = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000)
        yield pb.StreamingTranslateRequest(config=pb.StreamingConfig(format=fmt, target_languages=["spa"]))
        for at in range(0, len(audio), CHUNK):
            yield pb.StreamingTranslateRequest(audio=audio[at : at + CHUNK])
            sent[k] = at + CHUNK

    return gen()


@pytest.fixture(scope="module")
def served(test_model_dir: Path) -> Any:
    """One server for the module's tests (a server process costs the suite about 8 CPU s): each
    test counts what it made the server do from its own start (``server``)."""
    env = {"TRANSLATE_SVC_SERVER__METRICS_PORT": "0"}  # it picks, and says in its ready file
    args = ["--model", str(test_model_dir), "--host", "127.0.0.1", "--port", "0", "--http-port", "0"]
    proc = ServerProcess(args, env=env)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
async def server(served: ServerProcess) -> tuple[ServerProcess, Metrics]:
    """The module's server once an earlier test's streams are gone: no stream open, and no segment
    computed nor audio counted for a second, so every count a test takes from its start is its own
    streams'."""
    metrics = Metrics(served.metrics_port)
    last: list[tuple[float, float]] = []

    async def settled() -> bool:
        last.append((await metrics.computed(), await metrics.audio_read_bytes()))
        if await metrics.value("translate_svc_streams_active") != 0:
            last.clear()
        await asyncio.sleep(0.2)
        return len(last) > 5 and len(set(last[-6:])) == 1

    await eventually(settled, "the earlier test's streams ended and their segments settled", 3 * DEADLINE_S, 0.05)
    return served, metrics


async def serve_another(address: str, speech: bytes) -> int:
    """Another client's stream, read to its end; its segments."""
    segments = 0
    kinds = []
    async with grpc.aio.insecure_channel(address) as ch:
        async for r in pb_grpc.TranslatorStub(ch).StreamingTranslate(requests(speech, [0], 0), timeout=DEADLINE_S):
            kinds.append(r.WhichOneof("response"))
            segments += r.HasField("segment")
    assert kinds[0] == "started" and kinds[-1] == "ended" and segments, kinds
    return segments


async def test_streams_that_never_read_hold_a_few_segments_of_work_and_a_window_of_audio(
    server: tuple[ServerProcess, Metrics], shared_audio: Path
) -> None:
    proc, metrics = server
    pcm, rate = sf.read(shared_audio / "silero_test.wav", dtype="int16")
    assert rate == 16000
    audio = pcm.astype("<i2").tobytes() * 3  # 3 minutes a stream: far more than BDP's 4 MiB window
    speech = bytes(load_pcm16k(shared_audio / "jfk.flac")[: 16000 * 4].tobytes())
    sent = [0] * STREAMS
    warmup = await metrics.computed()
    read_before = await metrics.audio_read_bytes()  # by an earlier test's streams

    async def in_flight() -> float:  # taken by gRPC for the slow streams, not read by their sessions
        return sum(sent) - (await metrics.audio_read_bytes() - read_before)

    # per stream: the window, and as much again for what gRPC core took off the connection for the
    # stream and has not handed on (a frame, messages it framed: 10-25 KiB seen); plus the second
    # the read audio is counted by
    bound = STREAMS * (2 * WINDOW + BYTES_PER_S)
    async with grpc.aio.insecure_channel(proc.address, options=NEVER_READS) as slow_ch:
        calls = [pb_grpc.TranslatorStub(slow_ch).StreamingTranslate(requests(audio, sent, k)) for k in range(STREAMS)]
        try:

            async def at_bound() -> bool:
                return await metrics.computed() - warmup >= STREAMS * UNREAD

            await eventually(at_bound, f"{UNREAD} segments computed for each stream", DEADLINE_S, 0.05)
            assert await in_flight() <= bound, (await in_flight(), bound)
            # another client is served meanwhile (and time passes: a window that grows would fill)
            segments = await serve_another(proc.address, speech)
            assert await in_flight() <= bound, (await in_flight(), bound)
            # computed for the streams that never read: UNREAD each, no more
            assert await metrics.computed() - warmup - segments == STREAMS * UNREAD
        finally:
            for c in calls:
                c.cancel()


async def computed_once_stalled(metrics: Metrics, warmup: int, sent: list[int], address: str, speech: bytes) -> int:
    """Segments computed for the streams that never read (``sent``: the audio each got to send),
    once they reached the server's bound and then nothing moved for a second; another client is
    served meanwhile (its segments are not counted)."""

    async def at_bound() -> bool:
        return await metrics.computed() - warmup >= STREAMS * UNREAD

    await eventually(at_bound, f"{UNREAD} segments computed for each stream", DEADLINE_S, 0.05)
    last: list[float] = []

    async def still() -> bool:
        last.append(sum(sent) + await metrics.computed())
        await asyncio.sleep(0.2)
        return len(last) > 5 and len(set(last[-6:])) == 1

    await eventually(still, "the streams stalled", 3 * DEADLINE_S, 0.05)  # a few segments more, on a busy machine
    segments = await serve_another(address, speech)
    return await metrics.computed() - warmup - segments


#: what the SDK's transport takes in, in the test model's speech results: its 64 KiB receive window
#: holds at most 4 whole ones (they are 9.7-238 KB on silero_test.wav; the 4 smallest make 62 KB);
#: the one partly in it is the server's write under way
SDK_WINDOW_RESULTS = 4


async def test_sdk_streams_never_iterated_stop_the_server_within_a_few_segments(
    server: tuple[ServerProcess, Metrics], shared_audio: Path
) -> None:
    """The SDK's streams, sending with ``send`` and never iterated: the SDK reads a few events
    ahead, its transport a 64 KiB window, the server computes ``max_unread_results`` more; then
    nothing moves and ``send`` waits. (The blocking client reads every event into memory by
    design, so a stream of it is a client that reads.)"""
    proc, metrics = server
    pcm, rate = sf.read(shared_audio / "silero_test.wav", dtype="int16")
    assert rate == 16000
    audio = pcm.astype("<i2").tobytes() * 3
    speech = bytes(load_pcm16k(shared_audio / "jfk.flac")[: 16000 * 4].tobytes())
    chunks = [audio[at : at + CHUNK] for at in range(0, len(audio), CHUNK)]
    sent = [0] * STREAMS
    warmup = await metrics.computed()
    async with AsyncTranslateClient(proc.address) as client:
        streams = [client.stream(targets=["spa"]) for _ in range(STREAMS)]

        async def never_reads(k: int) -> None:
            await streams[k].start()
            for chunk in chunks:
                await streams[k].send(chunk)
                sent[k] += len(chunk)

        feeders = [asyncio.create_task(never_reads(k)) for k in range(STREAMS)]
        try:
            computed = await computed_once_stalled(metrics, warmup, sent, proc.address, speech)
            assert all(0 < n < len(audio) for n in sent), sent  # send waits: the server stopped reading
            per_stream = UNREAD + 1 + DEFAULT_BUFFERED_EVENTS + 1 + SDK_WINDOW_RESULTS
            assert DEFAULT_RECEIVE_WINDOW_BYTES == 64 * 1024  # SDK_WINDOW_RESULTS counts results in it
            # the server's bound and a write under way; the SDK's read-ahead (events, at most all
            # of them results) and the event it holds; its transport's window
            assert computed <= STREAMS * per_stream, (computed, per_stream)
        finally:
            for t in feeders:
                t.cancel()
            await asyncio.gather(*feeders, return_exceptions=True)
            for st in streams:
                await st.aclose()


# -- the OpenAI-compatible WebSocket door ---------------------------------------------------------


def ws_frame(text: str) -> bytes:
    """One masked text frame, as a client sends it (RFC 6455)."""
    data, mask = text.encode(), os.urandom(4)
    n = len(data)
    if n < 126:
        size = bytes([0x80 | n])
    elif n < 65536:
        size = bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        size = bytes([0x80 | 127]) + struct.pack(">Q", n)
    body = (np.frombuffer(data, np.uint8) ^ np.resize(np.frombuffer(mask, np.uint8), n)).tobytes()
    return b"\x81" + size + mask + body


def ws_never_reads(port: int, audio24k: bytes, sent: list[int], k: int, stop: threading.Event) -> None:
    """A realtime session from a socket that reads nothing after the upgrade (an 8 KiB receive
    buffer, fixed): ``session.update``, then appends as fast as the server takes them."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        s.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(
            f"GET /v1/realtime/translations?model=gpt-realtime-translate HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:  # the upgrade's answer (and maybe session.created): all it reads
            head += s.recv(4096)
        assert head.startswith(b"HTTP/1.1 101"), head[:200]
        update = {"audio": {"output": {"language": "es"}}, "x_simultaneous_step_ms": 0}
        s.sendall(ws_frame(json.dumps({"type": "session.update", "session": update})))
        s.settimeout(0.2)
        for at in range(0, len(audio24k), 4800):  # 100 ms a message
            b64 = base64.b64encode(audio24k[at : at + 4800]).decode()
            msg = ws_frame(json.dumps({"type": "session.input_audio_buffer.append", "audio": b64}))
            while not stop.is_set():
                try:
                    s.sendall(msg)  # (a timeout mid-message leaves the socket unusable: the test is over then)
                    break
                except TimeoutError:
                    continue
            if stop.is_set():
                return
            sent[k] += 4800
        stop.wait()


#: the kernel send buffer the server fixes (limits.ws_send_buffer_bytes, doubled by Linux), aiohttp's
#: write buffer (64 KiB) and the client's 8 KiB receive buffer (doubled) hold at most this many of
#: the test model's results as OpenAI events (its speech, 24 kHz PCM16 in base64, is 18 KB and more)
WS_BUFFERED_RESULTS = 12


async def test_websocket_sessions_that_never_read_stop_the_server_within_a_few_segments(
    server: tuple[ServerProcess, Metrics], shared_audio: Path
) -> None:
    """Before the fixed send buffer, Linux grew each socket's to MBs: 25 segments a stream were
    computed for these clients, and the kernel held them."""
    proc, metrics = server
    assert proc.info.http_port is not None
    pcm, rate = sf.read(shared_audio / "silero_test.wav", dtype="float32")
    audio24k = float_to_pcm16(soxr.resample(pcm, rate, 24000)).tobytes() * 3
    speech = bytes(load_pcm16k(shared_audio / "jfk.flac")[: 16000 * 4].tobytes())
    sent = [0] * STREAMS
    stop = threading.Event()
    warmup = await metrics.computed()
    clients = [
        asyncio.create_task(asyncio.to_thread(ws_never_reads, proc.info.http_port, audio24k, sent, k, stop))
        for k in range(STREAMS)
    ]
    try:
        computed = await computed_once_stalled(metrics, warmup, sent, proc.address, speech)
        assert all(0 < n < len(audio24k) for n in sent), sent  # the server stopped reading them
        assert computed <= STREAMS * (UNREAD + 1 + WS_BUFFERED_RESULTS), computed
    finally:
        stop.set()
        await asyncio.gather(*clients, return_exceptions=True)
