"""A job honours every option or refuses it (issue 91, point 3; design pitfall 23), on a real server
on loopback (the test checkpoint, a tokens file, stored glossaries) with real clients: aiohttp on
``/v1/jobs``, the generated stubs on the ``Jobs`` service. Before, a job kept the speech,
transcript and word-timing flags and dropped the rest silently: a per-job ``profanity=MASK``
returned the word unmasked, ``POST /v1/jobs`` answered 201 to keys it did not know, every segment
said ``"speaker": 0`` and none carried ``avg_logprob``.

- ``profanity``: a stored glossary forces a listed word ("mierda", LDNOOBW's Spanish list) into the
  translation of a phrase the checkpoint transcribes in jfk.flac (as tests/service/
  test_profanity_paths.py does for calls); a job asking MASK, over either port, never says it and
  says ``m*****``, where the same job with the filter off says it;
- the ear and the output options (noise suppression, speaker labels, the speech's rate and voice,
  word timings) reach the job's session: its segments equal ``TranslateChunked``'s with the same
  options on the same audio, speakers, confidence (``avg_logprob`` on transcript, translations and
  words) and speech lengths included, and its dubbed track is at the asked rate;
- an unknown key of the body (or of its ``format``) is 400 naming it; a value out of its range, an
  Opus speech encoding, or the ear for a tenant allowed none, is refused saying so.
"""

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
from tests.support.raw import clip_chunks, raw_request
from tests.support.speech import shared_pcm
from tests.support.term_reference import source_phrase
from tests.support.tokens import bearer
from translate_svc import words
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(90)]

ACME = "acme-jobs-options-token-7c1d"
NOEAR = "noear-jobs-options-token-3b9f"
WORD = "mierda"
MASKED = "m*****"


def says(text: str) -> bool:
    return bool(words.spans(WORD, text, ignore_case=True))


class Served:
    def __init__(self, live: LiveServer, http: aiohttp.ClientSession) -> None:
        self.live = live
        port = live.server.ports()["http_port"]
        self.jobs = JobsOverHttp(http, port, ACME)
        self.http = http
        self.glossaries = f"http://127.0.0.1:{port}/v1/glossaries"
        self.stub = pb_grpc.JobsStub(live.channel)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    tmp = tmp_path_factory.mktemp("job-options")
    tokens = tmp / "tokens"
    tokens.write_text(f"{ACME} * jobs glossaries tenant=acme\n{NOEAR} * jobs tenant=noear ear_streams=0\n")
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    settings.auth.tokens_file = tokens
    settings.jobs.dir = tmp / "jobs"
    settings.jobs.quiet_wait_s = 0
    settings.glossaries.enabled = True
    settings.glossaries.data_dir = tmp / "glossaries"
    async with serving(settings, warmup=False) as live, aiohttp.ClientSession() as http:
        yield Served(live, http)


@pytest.fixture(scope="module")
def jfk(shared_audio: Path) -> tuple[bytes, np.ndarray]:
    return shared_pcm(shared_audio, "jfk.flac")


@pytest.fixture(scope="module")
def clip(shared_audio: Path) -> bytes:
    return (shared_audio / "jfk.flac").read_bytes()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def forced(served: Served, jfk: tuple[bytes, np.ndarray], test_model_dir: Path) -> str:
    """A stored glossary that writes ``WORD`` for a phrase the checkpoint transcribes: its id."""
    content, samples = jfk
    plain = await served.live.stub.Translate(
        raw_request(content, pb.LINEAR16, source_language="eng"), metadata=bearer(ACME), timeout=120
    )
    phrase = source_phrase(test_model_dir, [samples[s.start_ms * 16 : s.end_ms * 16] for s in plain.segments])
    entry = {"phrase": phrase, "translation": WORD, "target_language": "spa"}
    body = {"id": "forced", "display_name": "forced", "entries": [entry]}
    headers = {"Authorization": f"Bearer {ACME}"}
    async with served.http.post(served.glossaries, json=body, headers=headers) as r:
        assert r.status == 201, await r.text()
    return "forced"


def spanish(segments: list[dict[str, Any]]) -> list[str]:
    return [t["text"] for s in segments for t in s["translations"] if t["target_language"] == "spa"]


async def test_a_mask_job_masks_on_both_ports_where_the_same_job_unfiltered_says_the_word(
    served: Served, clip: bytes, forced: str
) -> None:
    body = {"source_language": "eng", "target_languages": ["spa"], "glossaries": [forced], "speech": False}
    off = await served.jobs.run({**body, "profanity": "off"}, clip)
    assert off["state"] == "done", off["error"]
    assert any(says(t) for t in spanish(await served.jobs.segments(off["id"]))), "the glossary forced no word"

    masked = await served.jobs.run({**body, "profanity": "mask"}, clip)
    assert masked["state"] == "done", masked["error"]
    texts = spanish(await served.jobs.segments(masked["id"]))
    assert not any(says(t) for t in texts) and any(MASKED in t for t in texts), texts

    request = pb.CreateJobRequest(
        format=pb.AudioFormat(encoding=pb.CONTAINER),
        source_language="eng",
        target_languages=["spa"],
        glossaries=[forced],
        output=pb.OutputOptions(speech=False, profanity=pb.PROFANITY_FILTER_MASK),
    )
    job, doc = await grpc_job(served.stub, request, clip, bearer(ACME))
    assert job.state == pb.JOB_DONE, job.error
    texts = spanish(json.loads(doc)["segments"])
    assert not any(says(t) for t in texts) and any(MASKED in t for t in texts), texts


def comparable_job(segments: list[dict[str, Any]]) -> tuple[list[Any], list[float | None]]:
    """A job's segments as ``comparable_chunked`` puts a clip's: (everything but the confidences,
    the confidences: compared within float32's rounding, as batches of other sizes may give them)."""
    kept = [
        (
            s["start_ms"],
            s["end_ms"],
            s["speaker"],
            s["transcript"]["text"],
            [(w["word"], w["start_ms"], w["end_ms"], w["speaker"]) for w in s["transcript"]["words"]],
            [(t["target_language"], t["text"], t["audio_samples"]) for t in s["translations"]],
        )
        for s in segments
    ]
    confidences = [
        c
        for s in segments
        for c in [
            s["transcript"]["avg_logprob"],
            *(w["avg_logprob"] for w in s["transcript"]["words"]),
            *(t["avg_logprob"] for t in s["translations"]),
        ]
    ]
    return kept, confidences


def comparable_chunked(reply: pb.TranslateResponse) -> tuple[list[Any], list[float | None]]:
    def opt(msg: Any) -> float | None:
        return msg.avg_logprob if msg.HasField("avg_logprob") else None

    kept = [
        (
            s.start_ms,
            s.end_ms,
            s.speaker,
            s.transcript.text,
            [(w.word, w.start_ms, w.end_ms, w.speaker) for w in s.transcript.words],
            [(t.target_language, t.text, t.audio.num_samples) for t in s.translations],
        )
        for s in reply.segments
    ]
    confidences = [
        c
        for s in reply.segments
        for c in [opt(s.transcript), *(opt(w) for w in s.transcript.words), *(opt(t) for t in s.translations)]
    ]
    return kept, confidences


def assert_same(job: tuple[list[Any], list[float | None]], chunked: tuple[list[Any], list[float | None]]) -> None:
    assert job[0] == chunked[0]
    assert None not in job[1] and job[1] == pytest.approx(chunked[1], abs=1e-5)


async def test_the_ear_and_output_options_reach_the_jobs_session_as_a_clips(served: Served, clip: bytes) -> None:
    """Noise suppression, speaker labels, the speech's rate and voice and word timings: the job's
    segments equal ``TranslateChunked``'s with the same options, and its track is at that rate."""
    options = {"speech_sample_rate_hz": 24000, "speaker_id": 1, "word_timings": True}
    ear = {"noise_suppression": "rnnoise", "speakers": 2}
    body = {"source_language": "eng", "target_languages": ["spa"], **options, **ear}
    done = await served.jobs.run(body, clip)
    assert done["state"] == "done", done["error"]
    segments = await served.jobs.segments(done["id"])
    request = pb.TranslateRequest(
        audio=pb.AudioInput(content=clip, format=pb.AudioFormat(encoding=pb.CONTAINER)),
        source_language="eng",
        target_languages=["spa"],
        output=pb.OutputOptions(text=True, speech=True, transcript=True, **options),  # type: ignore[arg-type]
        noise_suppression=pb.NOISE_SUPPRESSION_RNNOISE,
        speakers=2,
    )
    reply = await served.live.stub.TranslateChunked(clip_chunks(request, 64 * 1024), metadata=bearer(ACME), timeout=300)
    assert_same(comparable_job(segments), comparable_chunked(reply))
    assert all(s["speaker"] >= 1 for s in segments), "speaker labels were asked for"
    status, wav = await served.jobs.call("GET", f"/{done['id']}/dubbed/spa")
    assert status == 200
    info = sf.info(io.BytesIO(wav))
    assert info.samplerate == 24000 and info.frames == 11 * 24000

    # the same over gRPC: CreateJob's noise_suppression and speakers, and its output
    grpc_request = pb.CreateJobRequest(
        format=pb.AudioFormat(encoding=pb.CONTAINER),
        source_language="eng",
        target_languages=["spa"],
        output=request.output,
        noise_suppression=pb.NOISE_SUPPRESSION_RNNOISE,
        speakers=2,
    )
    job, doc = await grpc_job(served.stub, grpc_request, clip, bearer(ACME))
    assert job.state == pb.JOB_DONE, job.error
    assert_same(comparable_job(json.loads(doc)["segments"]), comparable_chunked(reply))


@pytest.mark.parametrize(
    ("body", "says_"),
    [
        ({"profanty": "mask"}, "unknown field 'profanty'"),
        ({"format": {"encoding": "linear16", "sample_rate_hz": 16000, "rate": 8000}}, "unknown field 'format.rate'"),
        ({"output": {"profanity": "mask"}}, "unknown field 'output'"),
        ({"profanity": "blur"}, "profanity is 'blur': use off, mask or remove"),
        ({"noise_suppression": "max"}, "noise_suppression is 'max': use off"),
        ({"speakers": 99}, "speakers is 99"),
        ({"speech_sample_rate_hz": 96000}, "speech_sample_rate_hz is 96000"),
        ({"speaker_id": -1}, "speaker_id is -1"),
        ({"text": "yes"}, "true or false"),
    ],
)
async def test_a_key_or_value_a_job_cannot_honour_is_400_naming_it(
    served: Served, body: dict[str, Any], says_: str
) -> None:
    status, err = await served.jobs.call("POST", json={"source_language": "eng", "target_languages": ["spa"], **body})
    assert status == 400, err
    assert says_ in err["error"]["message"], err


async def test_grpc_refuses_opus_speech_and_an_unknown_profanity_value(served: Served) -> None:
    for output, field in [
        (pb.OutputOptions(speech_encoding=pb.SPEECH_ENCODING_OPUS), "output.speech_encoding"),
        (pb.OutputOptions(profanity=7), "output.profanity"),  # type: ignore[arg-type]
    ]:
        request = pb.CreateJobRequest(source_language="eng", target_languages=["spa"], output=output)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await served.stub.CreateJob(request, metadata=bearer(ACME), timeout=30)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in (err.value.details() or ""), err.value.details()


async def test_the_ear_for_a_tenant_allowed_none_is_refused_at_once(served: Served) -> None:
    body = {"source_language": "eng", "target_languages": ["spa"], "speakers": 2}
    status, err = await served.jobs.call("POST", token=NOEAR, json=body)
    assert status == 403 and "ear_streams=0" in err["error"]["message"], err
    request = pb.CreateJobRequest(
        source_language="eng", target_languages=["spa"], noise_suppression=pb.NOISE_SUPPRESSION_RNNOISE
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await served.stub.CreateJob(request, metadata=bearer(NOEAR), timeout=30)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
