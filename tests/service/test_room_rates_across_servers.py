"""A room listener's speaking rate across servers (issue 90): two ``serve`` processes (two pods)
share one real ``redis-server``, on the test checkpoint (the real model code, whose vocoder applies
the rate). A speaker on A streams jfk.flac; on B one listener hears Spanish at the speaker's rate and
one at 1.5 (its rate reaches A's speaker through the store, and its speech comes back as Opus); on
A a listener hears it at 0.75. Every segment reaches each at its rate (1/speed as long within two
vocoder frames and 5 %, ``tests/support/speaking_rate.py``) and says it. Lengths and rates only,
never words."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.support.redis_server import redis_server
from tests.support.rooms import speak, speaker_config
from tests.support.server_process import ServerProcess
from tests.support.speaking_rate import at_rate, long_enough, rate_failure
from tests.support.speech import speech_pcm16
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(90)]

RATE = 16000


@pytest.fixture(scope="module")
def servers(test_model_dir: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    with redis_server() as redis:
        env = {
            "TRANSLATE_SVC_CLUSTER__REDIS_URL": redis.url,
            "TRANSLATE_SVC_ROOMS__BACKLOG_S": "600",
            # a rendition is optional work behind every final: on a loaded machine it may wait long
            # (a bound for a hung test, not a timing)
            "TRANSLATE_SVC_ROOMS__RENDITION_WAIT_S": "120",
        }
        started: list[ServerProcess] = []
        try:
            for _ in range(2):
                args = ["--model", str(test_model_dir), "--host", "127.0.0.1", "--port", "0"]
                started.append(ServerProcess(args, env=env))
            yield started[0], started[1]
        finally:
            for server in started:
                server.stop()


def listen(channel: grpc.aio.Channel, speed: float | None) -> Any:
    request = pb.ListenRequest(room="hall", language="spa")
    if speed is not None:
        request.speed = speed
    return pb_grpc.TranslatorStub(channel).Listen(request)


async def segments(call: Any, ids: set[int]) -> dict[int, pb.Translation]:
    """Read a listen until every segment of ``ids`` came: each one's Spanish translation."""
    got: dict[int, pb.Translation] = {}
    while not ids <= got.keys():
        ev = await asyncio.wait_for(call.read(), 60)
        if ev.WhichOneof("event") == "segment" and ev.segment.translations:
            got[ev.segment.segment_id] = ev.segment.translations[0]
    return got


async def test_a_listeners_rate_on_another_server_reaches_the_speaker_and_comes_back(
    servers: tuple[ServerProcess, ServerProcess], shared_audio: Path
) -> None:
    a, b = servers
    pcm = speech_pcm16(shared_audio / "jfk.flac", 11.0, RATE).tobytes()
    async with grpc.aio.insecure_channel(a.address) as on_a, grpc.aio.insecure_channel(b.address) as on_b:
        calls = {None: listen(on_b, None), 1.5: listen(on_b, 1.5), 0.75: listen(on_a, 0.75)}
        for call in calls.values():
            first = await asyncio.wait_for(call.read(), 30)
            assert first.WhichOneof("event") == "started", first
        own: list[pb.SegmentResult] = []
        await speak(pb_grpc.TranslatorStub(on_a), speaker_config("hall"), pcm, own)
        ids = {s.segment_id for s in own}
        assert len(ids) >= 2, ids
        heard = {speed: await segments(call, ids) for speed, call in calls.items()}
        for call in calls.values():
            call.cancel()
    shown = 0
    for speed in (1.5, 0.75):
        for k in ids:
            one, other = heard[None][k], heard[speed][k]
            assert (round(one.speech_rate, 6), round(other.speech_rate, 6)) == (1.0, speed), k
            n1 = round(one.audio.num_samples * RATE / one.audio.sample_rate_hz)
            n = round(other.audio.num_samples * RATE / other.audio.sample_rate_hz)
            assert at_rate(n1, n, speed, RATE), (k, speed, rate_failure(n1, n, speed, RATE))
            shown += long_enough(n1, RATE)
    assert shown > 0
