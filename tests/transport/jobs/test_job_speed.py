"""A job's speaking rate (issue 90 item 1): ``speed`` on ``POST /v1/jobs`` (aiohttp) and
``output.speed`` on the ``Jobs`` service's ``CreateJob`` (the generated stubs), against a real
server on loopback on the test checkpoint.

jfk.flac as a job at the model's own rate and at 1.5: each translation's speech (``audio_samples``)
1/1.5 as long (within two vocoder frames and 5 %, ``tests/support/speaking_rate.py``), its words
inside it, equal to ``TranslateChunked``'s at 1.5 on the same audio; the dubbed track is made of
that speech (its last speech ends where the last segment's, at 1.5, does); the gRPC job equals the
HTTP one. A rate out of 0.5..2.0 or not a number is refused naming ``speed`` (``output.speed``)
and the range: jobs refuse what they cannot honour (issue 91), and before this a ``speed`` key was
an unknown field."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import numpy as np
import pytest
import pytest_asyncio
import soundfile as sf

from tests.support.jobs import JobsOverHttp, grpc_job
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.raw import clip_chunks
from tests.support.speaking_rate import FRAME_S, at_rate, long_enough, rate_failure, words_inside
from tests.support.tokens import bearer
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(40)]

TOKEN = "acme-jobs-speed-token-41e9"
RATE = 16000
BODY = {"source_language": "eng", "target_languages": ["spa", "fra"], "word_timings": True}


class Served:
    def __init__(self, live: LiveServer, http: aiohttp.ClientSession) -> None:
        self.live = live
        self.jobs = JobsOverHttp(http, live.server.ports()["http_port"], TOKEN)
        self.stub = pb_grpc.JobsStub(live.channel)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    tmp = tmp_path_factory.mktemp("job-speed")
    tokens = tmp / "tokens"
    tokens.write_text(f"{TOKEN} * jobs tenant=acme\n")
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    settings.auth.tokens_file = tokens
    settings.jobs.dir = tmp / "jobs"
    settings.jobs.quiet_wait_s = 0
    async with serving(settings, warmup=False) as live, aiohttp.ClientSession() as http:
        yield Served(live, http)


@pytest.fixture(scope="module")
def clip(shared_audio: Path) -> bytes:
    return (shared_audio / "jfk.flac").read_bytes()


def speech(segments: list[dict[str, Any]]) -> dict[tuple[int, str], int]:
    return {(s["segment_id"], t["target_language"]): t["audio_samples"] for s in segments for t in s["translations"]}


async def test_a_job_at_1_5_is_dubbed_in_two_thirds_of_the_time_on_either_port(served: Served, clip: bytes) -> None:
    own = await served.jobs.run(BODY, clip)
    fast = await served.jobs.run({**BODY, "speed": 1.5}, clip)
    assert own["state"] == fast["state"] == "done", (own["error"], fast["error"])
    at_1, segments = await served.jobs.segments(own["id"]), await served.jobs.segments(fast["id"])
    assert [(s["start_ms"], s["end_ms"]) for s in segments] == [(s["start_ms"], s["end_ms"]) for s in at_1]
    own_speech, fast_speech = speech(at_1), speech(segments)
    assert own_speech.keys() == fast_speech.keys()
    assert any(long_enough(n, RATE) for n in own_speech.values()), own_speech
    for key, n in own_speech.items():
        assert at_rate(n, fast_speech[key], 1.5, RATE), (key, rate_failure(n, fast_speech[key], 1.5, RATE))
    for s in segments:
        for t in s["translations"]:
            spans = [(w["start_ms"], w["end_ms"]) for w in t["words"]]
            assert words_inside(spans, t["audio_samples"], RATE), (spans, t["audio_samples"])

    # the job's session is a clip's: TranslateChunked at 1.5 speaks each segment as long
    request = pb.TranslateRequest(
        audio=pb.AudioInput(content=clip, format=pb.AudioFormat(encoding=pb.CONTAINER)),
        source_language="eng",
        target_languages=["spa", "fra"],
        output=pb.OutputOptions(word_timings=True, speed=1.5),
    )
    reply = await served.live.stub.TranslateChunked(clip_chunks(request, 64 * 1024), metadata=bearer(TOKEN))
    chunked = {(s.segment_id, t.target_language): t.audio.num_samples for s in reply.segments for t in s.translations}
    assert chunked == fast_speech

    # the dubbed track is made of that speech: its last speech ends where the last segment's does
    last = segments[-1]
    status, wav = await served.jobs.call("GET", f"/{fast['id']}/dubbed/spa")
    assert status == 200
    track, rate = sf.read(io.BytesIO(wav), dtype="int16")
    assert rate == RATE and len(track) == 11 * RATE
    n = fast_speech[(last["segment_id"], "spa")]
    end = min(last["start_ms"] * RATE // 1000 + n, len(track))
    heard = int(np.flatnonzero(track)[-1]) + 1
    assert end - FRAME_S * RATE <= heard <= end, (heard, end)

    # the same job over gRPC: CreateJob's output.speed
    grpc_request = pb.CreateJobRequest(
        format=pb.AudioFormat(encoding=pb.CONTAINER),
        source_language="eng",
        target_languages=["spa", "fra"],
        output=pb.OutputOptions(word_timings=True, speed=1.5),
    )
    job, doc = await grpc_job(served.stub, grpc_request, clip, bearer(TOKEN))
    assert job.state == pb.JOB_DONE, job.error
    assert speech(json.loads(doc)["segments"]) == fast_speech


@pytest.mark.parametrize(
    ("speed", "says"),
    [
        (0.3, "got 0.3"),
        (2.5, "got 2.5"),
        ("fast", "a JSON number"),
        # a JSON integer beyond a float: 400 naming it by its digits, not a 500 (OverflowError formatting it)
        pytest.param(10**400, "got an integer of about 401 digits", id="10**400"),
        pytest.param(-(10**400), "got an integer of about 401 digits", id="-10**400"),
    ],
)
async def test_a_speed_a_job_cannot_honour_is_400_naming_it_and_the_range(
    served: Served, speed: object, says: str
) -> None:
    status, err = await served.jobs.call("POST", json={**BODY, "speed": speed})
    assert status == 400, err
    message = err["error"]["message"]
    assert "speed" in message and "0.5" in message and "2.0" in message and says in message, message


async def test_grpc_refuses_a_speed_out_of_range_naming_output_speed(served: Served) -> None:
    request = pb.CreateJobRequest(source_language="eng", target_languages=["spa"], output=pb.OutputOptions(speed=2.5))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await served.stub.CreateJob(request, metadata=bearer(TOKEN), timeout=30)
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "output.speed" in (err.value.details() or "") and "0.5 to 2.0" in (err.value.details() or "")
