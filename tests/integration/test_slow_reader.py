"""Issue 34: streams whose client sends fast and never reads a result, against a real
``translate-svc serve`` process on loopback.

What such a stream can make the server hold is bounded twice, each bound a setting: the results it
has computed and not handed to gRPC (``limits.max_unread_results``: then its session stops reading
audio), and the audio gRPC takes in beyond what the session read (the call's fixed HTTP/2 receive
window, ``limits.stream_window_bytes``; before, BDP probing grew it past 4 MiB: two minutes of
16 kHz audio a stream). The clients here leave the server no room to write a single response (their
own receive window is a few bytes), so nothing it computes for them leaves it: its worst case.
Meanwhile another client's stream is served.
"""

from __future__ import annotations

import asyncio
import re
import socket
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
import soundfile as sf

from tests.integration.test_cli import ServerProcess
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc
from translate_svc.client.raw import load_pcm16k

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(25)]

STREAMS = 2
UNREAD = 4  # limits.max_unread_results here
WINDOW = 64 * 1024  # limits.stream_window_bytes here
CHUNK = 3200  # 100 ms of 16 kHz LINEAR16 a message
BYTES_PER_S = 32000
DEADLINE_S = 30.0
#: a client whose streams take in (almost) nothing: their receive window is a few bytes, fixed
NEVER_READS = [("grpc.use_local_subchannel_pool", 1), ("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 8)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Metrics:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"

    async def value(self, pattern: str) -> float:
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(self.url, timeout=5).read().decode())
        return sum(float(v) for v in re.findall(rf"^{pattern} ([0-9.e+]+)$", body, re.M))

    async def computed(self) -> int:
        """Segments the model ran."""
        return int(await self.value("translate_svc_batch_size_sum"))

    async def audio_read_bytes(self) -> float:
        """Audio the sessions read (counted a second or more at a time)."""
        return await self.value(r"translate_svc_tenant_audio_seconds_total\{[^}]*\}") * BYTES_PER_S


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE_S
    while not await check():
        if loop.time() > end:
            raise AssertionError(f"not within {DEADLINE_S} s: {what}")
        await asyncio.sleep(0.05)


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


@pytest.fixture
def server(test_model_dir: Path) -> Any:
    metrics_port = free_port()
    env = {
        "TRANSLATE_SVC_LIMITS__MAX_UNREAD_RESULTS": str(UNREAD),
        "TRANSLATE_SVC_LIMITS__STREAM_WINDOW_BYTES": str(WINDOW),
        "TRANSLATE_SVC_SERVER__METRICS_PORT": str(metrics_port),
    }
    proc = ServerProcess(["--model", str(test_model_dir), "--host", "127.0.0.1", "--port", "0"], env=env)
    try:
        yield proc, Metrics(metrics_port)
    finally:
        proc.stop()


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

    async def in_flight() -> float:  # taken by gRPC for the slow streams, not read by their sessions
        return sum(sent) - await metrics.audio_read_bytes()

    # per stream: the window, and as much again for what gRPC core took off the connection for the
    # stream and has not handed on (a frame, messages it framed: 10-25 KiB seen); plus the second
    # the read audio is counted by
    bound = STREAMS * (2 * WINDOW + BYTES_PER_S)
    async with (
        grpc.aio.insecure_channel(proc.address, options=NEVER_READS) as slow_ch,
        grpc.aio.insecure_channel(proc.address) as ch,
    ):
        calls = [pb_grpc.TranslatorStub(slow_ch).StreamingTranslate(requests(audio, sent, k)) for k in range(STREAMS)]
        try:

            async def at_bound() -> bool:
                return await metrics.computed() - warmup >= STREAMS * UNREAD

            await until(at_bound, f"{UNREAD} segments computed for each stream")
            assert await in_flight() <= bound, (await in_flight(), bound)
            # another client is served meanwhile (and time passes: a window that grows would fill)
            segments = 0
            kinds = []
            async for r in pb_grpc.TranslatorStub(ch).StreamingTranslate(requests(speech, [0], 0), timeout=DEADLINE_S):
                kinds.append(r.WhichOneof("response"))
                segments += r.HasField("segment")
            assert kinds[0] == "started" and kinds[-1] == "ended" and segments, kinds
            assert await in_flight() <= bound, (await in_flight(), bound)
            # computed for the streams that never read: UNREAD each, no more
            assert await metrics.computed() - warmup - segments == STREAMS * UNREAD
        finally:
            for c in calls:
                c.cancel()
