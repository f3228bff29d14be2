"""A job dubbed to the source's clock (issue 90 item 2): with ``"fit"`` in ``POST /v1/jobs`` each
segment's speech is made at the slowest rate within the bound (``jobs.fit_slowest`` ..
``jobs.fit_fastest``, 0.85..1.35, or the request's) at which it ends by the next segment's start
(the audio's end, for the last one), and each stored translation says its ``speech_rate`` and
``overlap_ms``. Before, a job's speech was as long as the model made it: the issue's 216 s
source had speech pushed past its segments (``jobs.dub_overflow`` only mixes or cuts it).

A real server on loopback with the test checkpoint, jobs over its REST API (aiohttp) on 60 s of
shared speech with many pauses, fitted and not. Checked on the stored segments: every rate in its
bound; under the bound's fastest the speech ends by the next start with ``overlap_ms`` 0; at it,
``overlap_ms`` is its length past the budget; each fitted speech the unfitted one divided by its
rate. On the dubbed WAV: exactly as long as the source at its rate; every segment's speech starts
at its segment's start (the track is silent outside the speech placed there, and each speech is
heard there); fitted, the speech past the next segment's start is only the overlap the segments
report. A bad ``fit`` is 400 naming the field. Never the words."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
import soundfile as sf

from tests.support.dub_fit import Spoken, budgets, check_fitted
from tests.support.jobs import JobsOverHttp, fresh_connections
from tests.support.live_server import make_settings, serving

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(60)]

RATE = 16000
SOURCE_SAMPLES = 60 * RATE  # silero_test.wav: 60 s at 16 kHz


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def jobs(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[JobsOverHttp]:
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    settings.jobs.dir = tmp_path_factory.mktemp("fit") / "jobs"
    settings.jobs.quiet_wait_s = 0
    async with serving(settings) as live, fresh_connections() as http:
        yield JobsOverHttp(http, live.server.ports()["http_port"], "")


def _spoken(segments: list[dict[str, Any]]) -> list[list[Spoken]]:
    return [
        [
            Spoken(t["target_language"], t["audio_samples"], RATE, t["speech_rate"], t["overlap_ms"])
            for t in s["translations"]
        ]
        for s in segments
    ]


async def _run(jobs: JobsOverHttp, source: bytes, **extra: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    body = {"source_language": "eng", "target_languages": ["spa", "fra"], "transcript": False, **extra}
    done = await jobs.run(body, source)
    assert done["state"] == "done", done["error"]
    return done, await jobs.segments(done["id"])


async def test_a_fitted_jobs_speech_ends_by_the_next_start_and_its_track_is_as_long_as_its_source(
    jobs: JobsOverHttp, shared_audio: Path
) -> None:
    source = (shared_audio / "silero_test.wav").read_bytes()
    _, plain = await _run(jobs, source)
    done, fitted = await _run(jobs, source, fit=True)
    spans = [(s["start_ms"], s["end_ms"]) for s in fitted]
    assert spans == [(s["start_ms"], s["end_ms"]) for s in plain]
    tally = check_fitted(spans, done["duration_ms"], _spoken(fitted), 0.85, 1.35, _spoken(plain))
    assert tally.under >= 3 and tally.overlaps >= 1, tally

    for n, language in enumerate(("spa", "fra")):
        status, wav = await jobs.call("GET", f"/{done['id']}/dubbed/{language}")
        assert status == 200
        track, rate = sf.read(io.BytesIO(wav), dtype="int16")
        assert rate == RATE and len(track) == SOURCE_SAMPLES  # as long as the source, to the sample
        placed = np.zeros(len(track), bool)
        for (start, _), budget, seg in zip(spans, budgets(spans, done["duration_ms"]), fitted, strict=True):
            t = seg["translations"][n]
            at, samples = start * RATE // 1000, t["audio_samples"]
            placed[at : at + samples] = True
            if samples:  # its speech is heard where its segment starts
                assert np.any(track[at : at + samples]), (start, t)
            # what runs past the budget is what the segment says, and nothing more
            assert samples <= (budget + t["overlap_ms"]) * RATE // 1000, (start, budget, t)
        assert not np.any(track[~placed]), "speech outside where the segments place it"


@pytest.mark.parametrize(
    ("fit", "names"),
    [
        ({"slowest": 0.2}, "fit.slowest"),
        ({"fastest": "fast"}, "fit.fastest"),
        ({"fastest": 10**400}, "fit.fastest"),  # a JSON integer beyond a float: 400, not a 500 (OverflowError)
        ({"pace": 1}, "fit.pace"),
        (1, "fit: true, false"),
    ],
)
async def test_a_bad_fit_is_400_naming_the_field(jobs: JobsOverHttp, fit: Any, names: str) -> None:
    status, body = await jobs.call("POST", json={"target_languages": ["spa"], "fit": fit})
    assert status == 400, body
    assert names in str(body), body
