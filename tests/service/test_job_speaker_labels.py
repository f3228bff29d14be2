"""A job's speaker labels hold (issue 91): the issue's two-voice mix (27 s, truth AABBBAABB, its
second turn a 1.2 s phrase of voice A) sent as a job over the HTTP port with ``speakers`` 2 and 4
comes back labelled right, every segment and its words, as ``Translate`` labels it: once the job
reached its end, its segments are labelled over the whole file at once (``jobs/voices.py``).
Before: ABAAAAAAA with 2 (the short phrase opened speaker 2, then every segment of both voices
joined speaker 1), a third speaker with 4."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
import soundfile as sf

from tests.support.jobs import JobsOverHttp
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.speaker_mixes import issue_mix, phrases, segment_accuracy, shown
from tests.support.tokens import bearer
from translate_svc.api.v1 import translate_pb2 as pb

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(60)]

TOKEN = "acme-job-speakers-token-5e2a"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("job-speakers")
    tokens = tmp / "tokens"
    tokens.write_text(f"{TOKEN} * jobs tenant=acme\n")
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    settings.auth.tokens_file = tokens
    settings.jobs.dir = tmp / "jobs"
    settings.jobs.quiet_wait_s = 0
    async with serving(settings, warmup=False) as live:
        yield live


@pytest.mark.parametrize("bound", [2, 4])
async def test_a_job_labels_the_issue_mix_as_translate_does(served: LiveServer, shared_audio: Path, bound: int) -> None:
    mix = issue_mix(await phrases(shared_audio))
    wav = io.BytesIO()
    sf.write(wav, mix.samples, 16000, format="WAV", subtype="PCM_16")
    body = {"source_language": "eng", "target_languages": ["spa"], "speech": False, "speakers": bound}
    async with aiohttp.ClientSession() as http:
        jobs = JobsOverHttp(http, served.server.ports()["http_port"], TOKEN)
        done = await jobs.run(body, wav.getvalue())
        assert done["state"] == "done", done
        segments = await jobs.segments(done["id"])
    spans = [(s["start_ms"], s["end_ms"]) for s in segments]
    labels = [s["speaker"] for s in segments]
    assert len(spans) == 9, spans
    assert segment_accuracy(mix, spans, labels) == 1.0 and len(set(labels)) == 2, shown(mix, spans, labels)
    assert all(w["speaker"] == s["speaker"] for s in segments for w in s["transcript"]["words"])
    clip = pb.TranslateRequest(
        audio=pb.AudioInput(content=wav.getvalue(), format=pb.AudioFormat(encoding=pb.CONTAINER)),
        source_language="eng",
        output=pb.OutputOptions(text=False, speech=False, transcript=True),
        speakers=bound,
    )
    translated = await served.stub.Translate(clip, metadata=bearer(TOKEN), timeout=600)
    assert [(s.start_ms, s.end_ms, s.speaker) for s in translated.segments] == [
        (a, b, lab) for (a, b), lab in zip(spans, labels, strict=True)
    ]
