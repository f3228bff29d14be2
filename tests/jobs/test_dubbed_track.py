"""A job's dubbed track is as long as its source, with no drift (issue 91, point 7): each segment's
speech starts at its segment's start whatever the speech before it did, and speech that runs past
the next segment's start overlaps it (``jobs.dub_overflow=overlap``, mixed) or is cut there
(``cut``). Before, each segment's speech was appended after the last one's end (longer speech
pushed every later segment later) and the track ended where the speech did (212.5 s for a 216 s
source in the issue's run).

A real server on loopback with the real VAD and a fake model (``FakeRunner``) whose speech is three
times as long as its segment, each segment's at an amplitude of its own (from its length), so
every segment's speech runs over the gap after it and into the next; the WAV is fetched over HTTP
and compared, sample for sample, with the track the segments in the results imply: every segment's
speech at its start, cut at the next start or summed with what it overlaps, the rest silence, as
long as the 60 s source."""

from __future__ import annotations

import io
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
import soundfile as sf

from tests.support.dubbed_speech import LONGER, implied, speech_of
from tests.support.fake_runner import FakeRunner
from tests.support.jobs import JobsOverHttp, fresh_connections
from tests.support.live_server import make_settings, serving
from tests.support.stepped_call import NO_MODEL
from translate_svc.settings.jobs import DubOverflow

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(30)]


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=[DubOverflow.OVERLAP, DubOverflow.CUT])
async def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    runner = FakeRunner()
    runner.waveform = speech_of
    settings = make_settings(NO_MODEL)
    settings.server.http_port = 0
    settings.jobs.dir = tmp_path_factory.mktemp("dubbed") / "jobs"
    settings.jobs.quiet_wait_s = 0
    settings.jobs.dub_overflow = request.param
    async with serving(settings, warmup=False, runner_factory=lambda: runner) as live, fresh_connections() as http:
        yield request.param, JobsOverHttp(http, live.server.ports()["http_port"], "")


async def test_each_segments_speech_starts_at_its_start_and_the_track_is_as_long_as_its_source(
    served: Any, shared_audio: Path
) -> None:
    overflow, jobs = served
    source = (shared_audio / "silero_test.wav").read_bytes()  # 60 s, 16 kHz, many pauses
    done = await jobs.run({"source_language": "eng", "target_languages": ["spa"]}, source)
    assert done["state"] == "done", done["error"]
    segments = await jobs.segments(done["id"])
    assert len(segments) >= 10
    # the speech runs past the next segment's start: there is something to overlap or cut
    assert all(
        a["start_ms"] + LONGER * (a["end_ms"] - a["start_ms"]) > b["start_ms"] for a, b in itertools.pairwise(segments)
    )
    status, wav = await jobs.call("GET", f"/{done['id']}/dubbed/spa")
    assert status == 200
    track, rate = sf.read(io.BytesIO(wav), dtype="int16")
    assert rate == 16000 and len(track) == 60 * 16000  # as long as the source, to the sample
    expected = implied(segments, 60 * 16000, overflow)
    wrong = np.flatnonzero(track != expected)
    assert not len(wrong), f"{len(wrong)} samples differ, the first at {wrong[0] / 16000:.3f} s"
