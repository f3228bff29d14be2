"""A studio's translation voiced at its timings (``subtitles`` on ``POST /v1/jobs``, jobs/voicing.py):
an SRT's and a WebVTT's cues over a recording's upload, each a segment on the source's clock with
the cue's text said as written (whatever the random weights would say) at a rate within the dub's
bound; the dubbed track silent before the first cue and between each cue's speech and the next cue,
each cue's speech beginning at its start. What cannot be voiced is refused naming the field or the
line. A real server on loopback with the test checkpoint (its decode holds 16 new tokens: the cues
are short)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
import soundfile as sf

from tests.support.jobs import JobsOverHttp, fresh_connections, killed_after
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.speech import read_16k

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(40)]

TOKEN = "acme-job-subtitles-token-2b7f"
SRT = (
    "1\n00:00:00,500 --> 00:00:02,000\nhola amigo\n\n2\n00:00:03,000 --> 00:00:04,500\n<i>buenas</i>\n\n"
    "3\n00:00:06,000 --> 00:00:08,000\nadios\n"
)
VTT = (
    "WEBVTT\n\nuno\n00:00.500 --> 00:02.000\nhola amigo\n\n00:03.000 --> 00:04.500 align:start\nbuenas\n\n"
    "00:06.000 --> 00:08.000\nadios\n"
)
CUES = [(500, 2000, "hola amigo"), (3000, 4500, "buenas"), (6000, 8000, "adios")]


@pytest.fixture(scope="module")
def jobs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("job-subtitles") / "jobs"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(test_model_dir: Path, jobs_dir: Path) -> AsyncIterator[LiveServer]:
    tokens = jobs_dir.parent / "tokens"
    tokens.write_text(f"{TOKEN} * jobs tenant=acme\n")
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    settings.auth.tokens_file = tokens
    settings.jobs.dir = jobs_dir
    settings.jobs.quiet_wait_s = 0
    async with serving(settings, warmup=False) as live:
        yield live


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def recording(shared_audio: Path) -> bytes:
    wav = io.BytesIO()
    sf.write(wav, read_16k(shared_audio / "jfk.flac"), 16000, format="WAV", subtype="PCM_16")
    return wav.getvalue()


@pytest.mark.parametrize(("text", "fmt"), [(SRT, None), (VTT, "vtt")])
async def test_each_cue_is_said_as_written_at_its_time(
    served: LiveServer, recording: bytes, text: str, fmt: str | None
) -> None:
    subtitles: dict[str, Any] = {"language": "spa", "text": text} | ({"format": fmt} if fmt else {})
    async with fresh_connections() as http:
        jobs = JobsOverHttp(http, served.server.ports()["http_port"], TOKEN)
        done = await jobs.run({"subtitles": subtitles, "speech_sample_rate_hz": 16000}, recording)
        assert done["state"] == "done", done
        assert done["target_languages"] == ["spa"] and done["subtitles_language"] == "spa"
        segments = await jobs.segments(done["id"])
        status, wav = await jobs.call("GET", f"/{done['id']}/dubbed/spa")
        assert status == 200, wav
    assert [(s["start_ms"], s["end_ms"], s["translations"][0]["text"]) for s in segments] == CUES
    track = sf.read(io.BytesIO(wav), dtype="int16")[0]
    assert len(track) == len(read_16k_bytes(recording))
    ends = []
    for s in segments:
        (said,) = s["translations"]
        assert s["transcript"] is None and "error" not in s and said["words"], s
        assert said["audio_samples"] > 0 and 0.85 <= said["speech_rate"] <= 1.35, said
        start = s["start_ms"] * 16
        assert track[start : start + said["audio_samples"]].any()
        ends.append(start + said["audio_samples"])
    starts = [s["start_ms"] * 16 for s in segments]
    assert not track[: starts[0]].any()
    for end, next_start in zip(ends, starts[1:], strict=False):
        assert not track[end:next_start].any(), (end, next_start)  # silence between a cue's speech and the next


def read_16k_bytes(wav: bytes) -> np.ndarray:
    return sf.read(io.BytesIO(wav), dtype="int16")[0]


async def test_what_cannot_be_voiced_is_refused_naming_it(served: LiveServer) -> None:
    async with fresh_connections() as http:
        jobs = JobsOverHttp(http, served.server.ports()["http_port"], TOKEN)
        srt = {"language": "spa", "text": SRT}
        for body, says in (
            ({"subtitles": {"language": "spa", "text": "1\n00:00:01,000 -> 00:00:02,000\nhola\n"}}, "subtitles line 1"),
            ({"subtitles": {"language": "spa", "text": SRT, "format": "ass"}}, "subtitles.format: srt or vtt"),
            ({"subtitles": {"language": "spa", "text": SRT, "style": "bold"}}, "subtitles.style"),
            ({"subtitles": srt, "target_languages": ["fra"]}, "target_languages: the subtitles' language alone (spa)"),
            ({"subtitles": srt, "speech": False}, "subtitles are voiced: leave speech on"),
            ({"subtitles": srt, "speakers": 2}, "subtitles are voiced as they are"),
            ({"subtitles": {"language": "xxx", "text": SRT}}, "unknown target language"),
            ({"subtitles": "movie.srt"}, 'subtitles: {"language", "format", "text"}'),
        ):
            status, doc = await jobs.call("POST", json=body)
            assert status == 400 and says in str(doc), (body, status, doc)


async def test_a_stopped_job_resumes_at_the_next_cue(served: LiveServer, recording: bytes, jobs_dir: Path) -> None:
    """A job stopped after its first cue (its process killed: its lease lapsed, the rest of its
    results not stored) is taken up again by a worker at its second cue; the first is not said
    again (a second store of it would fail the job)."""
    async with fresh_connections() as http:
        jobs = JobsOverHttp(http, served.server.ports()["http_port"], TOKEN)
        done = await jobs.run({"subtitles": {"language": "spa", "text": SRT}}, recording)
        assert done["state"] == "done", done
        first = (await jobs.segments(done["id"]))[0]
        killed_after(jobs_dir, done["id"], 1, first["end_ms"], recording)
        again = await jobs.finished(done["id"])
        assert again["state"] == "done", again
        segments = await jobs.segments(done["id"])
    assert segments[0] == first
    assert [(s["start_ms"], s["end_ms"], s["translations"][0]["text"]) for s in segments] == CUES
