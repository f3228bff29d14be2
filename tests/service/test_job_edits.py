"""A done job's segments edited over the HTTP port (``POST /v1/jobs/{id}/edits``, jobs/edits.py): a
segment's translation said again with a new text, voice or speed, only it re-voiced. The dubbed
tracks read back: outside the edited segment's place every sample is as before (the other
language's track byte for byte), inside it is the new speech; the results say the new text (said as
written, whatever the random weights would say), what was edited and the voice; the answer says
what changed, before and after. What cannot be edited is refused naming the field, and a job
not done yet is a 409. A real server on loopback with the test checkpoint (4 voices; its decode
holds 16 new tokens: the edited lines are short)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import pytest_asyncio
import soundfile as sf

from tests.support.jobs import JobsOverHttp, fresh_connections
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.speech import read_16k
from translate_svc.settings.jobs import DubOverflow

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(60)]

TOKEN = "acme-job-edits-token-5d1e"
BODY = {"source_language": "eng", "target_languages": ["spa", "fra"], "word_timings": True}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("job-edits")
    tokens = tmp / "tokens"
    tokens.write_text(f"{TOKEN} * jobs tenant=acme\n")
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    settings.auth.tokens_file = tokens
    settings.jobs.dir = tmp / "jobs"
    settings.jobs.quiet_wait_s = 0
    settings.jobs.dub_overflow = DubOverflow.CUT  # each segment's speech inside its own place
    async with serving(settings, warmup=False) as live:
        yield live


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def speech_wav(shared_audio: Path) -> bytes:
    wav = io.BytesIO()
    sf.write(wav, read_16k(shared_audio / "jfk.flac"), 16000, format="WAV", subtype="PCM_16")
    return wav.getvalue()


class Dub:
    """A done job as a client reads it back: its results and each language's dubbed track."""

    def __init__(self, jobs: JobsOverHttp, job_id: str) -> None:
        self.jobs, self.id = jobs, job_id

    async def read(self) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
        segments = await self.jobs.segments(self.id)
        tracks = {}
        for lang in BODY["target_languages"]:
            status, wav = await self.jobs.call("GET", f"/{self.id}/dubbed/{lang}")
            assert status == 200, wav
            tracks[lang] = sf.read(io.BytesIO(wav), dtype="int16")[0]
        return segments, tracks

    async def edit(self, *edits: dict[str, Any]) -> list[dict[str, Any]]:
        status, doc = await self.jobs.call("POST", f"/{self.id}/edits", json={"edits": list(edits)})
        assert status == 200, doc
        assert doc["id"] == self.id and len(doc["edited"]) == len(edits)
        return list(doc["edited"])


def place(segments: list[dict[str, Any]], k: int, length: int) -> slice:
    """Segment ``k``'s place on the track (overflow cut: up to the next segment's start)."""
    start = segments[k]["start_ms"] * 16
    end = segments[k + 1]["start_ms"] * 16 if k + 1 < len(segments) else length
    return slice(start, end)


def entry(segment: dict[str, Any], lang: str) -> dict[str, Any]:
    (t,) = [t for t in segment["translations"] if t["target_language"] == lang]
    return dict(t)


def same_but(before: np.ndarray, after: np.ndarray, where: slice) -> None:
    """Every sample outside ``where`` as before."""
    assert len(before) == len(after)
    np.testing.assert_array_equal(before[: where.start], after[: where.start])
    np.testing.assert_array_equal(before[where.stop :], after[where.stop :])


async def test_only_the_edited_segment_is_said_again(served: LiveServer, speech_wav: bytes) -> None:
    async with fresh_connections() as http:
        jobs = JobsOverHttp(http, served.server.ports()["http_port"], TOKEN)
        done = await jobs.run(BODY, speech_wav)
        assert done["state"] == "done", done
        dub = Dub(jobs, done["id"])
        segs0, tracks0 = await dub.read()
        spoken = [k for k, s in enumerate(segs0) if entry(s, "spa")["audio_samples"] > 1600]
        assert len(spoken) >= 2, segs0
        k, j = spoken[0], spoken[-1]
        length = len(tracks0["spa"])

        # a new text: said as written, in the segment's voice and rate; the rest untouched
        (edited,) = await dub.edit(
            {"segment_id": segs0[k]["segment_id"], "target_language": "spa", "text": "hola amigo"}
        )
        old = entry(segs0[k], "spa")
        assert edited["changed"] == ["text"] and edited["target_language"] == "spa"
        assert edited["before"] == {
            "text": old["text"],
            "voice": 0,
            "speech_rate": old["speech_rate"],
            "audio_ms": old["audio_ms"],
        }
        assert (
            edited["after"]["text"] == "hola amigo"
            and edited["after"]["voice"] == 0
            and edited["after"]["audio_ms"] > 0
        )
        segs1, tracks1 = await dub.read()
        new = entry(segs1[k], "spa")
        assert new["text"] == "hola amigo" and new["edited"] == ["text"] and new["voice"] == 0
        assert new["avg_logprob"] is None and new["words"] and new["audio_ms"] == edited["after"]["audio_ms"]
        for i, (a, b) in enumerate(zip(segs0, segs1, strict=True)):
            for lang in BODY["target_languages"]:
                if (i, lang) != (k, "spa"):
                    assert {**entry(a, lang), "audio_offset": entry(b, lang)["audio_offset"]} == entry(b, lang), (
                        i,
                        lang,
                    )
        np.testing.assert_array_equal(tracks1["fra"], tracks0["fra"])
        at = place(segs0, k, length)
        same_but(tracks0["spa"], tracks1["spa"], at)
        assert not np.array_equal(tracks0["spa"][at], tracks1["spa"][at])

        # a voice, on another segment in the other language
        (edited,) = await dub.edit({"segment_id": segs0[j]["segment_id"], "target_language": "fra", "voice": 2})
        assert edited["changed"] == ["voice"] and (edited["before"]["voice"], edited["after"]["voice"]) == (0, 2)
        assert edited["after"]["text"] == edited["before"]["text"] == entry(segs0[j], "fra")["text"]
        segs2, tracks2 = await dub.read()
        assert entry(segs2[j], "fra")["voice"] == 2 and entry(segs2[j], "fra")["edited"] == ["voice"]
        np.testing.assert_array_equal(tracks2["spa"], tracks1["spa"])
        at = place(segs0, j, length)
        same_but(tracks1["fra"], tracks2["fra"], at)
        assert not np.array_equal(tracks1["fra"][at], tracks2["fra"][at])

        # a faster rate for the edited line: shorter, its text kept; then silence for another
        (edited,) = await dub.edit({"segment_id": segs0[k]["segment_id"], "target_language": "spa", "speed": 1.5})
        assert edited["changed"] == ["speed"] and edited["after"]["text"] == "hola amigo"
        assert edited["after"]["speech_rate"] == 1.5 and edited["after"]["audio_ms"] < edited["before"]["audio_ms"]
        (edited,) = await dub.edit({"segment_id": segs0[j]["segment_id"], "target_language": "spa", "text": ""})
        assert edited["after"] == {"text": "", "voice": 0, "speech_rate": None, "audio_ms": 0}
        segs3, tracks3 = await dub.read()
        assert entry(segs3[k], "spa")["edited"] == ["text", "speed"]
        assert entry(segs3[j], "spa")["audio_samples"] == 0 and not tracks3["spa"][place(segs0, j, length)].any()
        np.testing.assert_array_equal(tracks3["fra"], tracks2["fra"])


async def test_what_cannot_be_edited_is_refused_naming_it(served: LiveServer, speech_wav: bytes) -> None:
    async with aiohttp.ClientSession() as http:
        jobs = JobsOverHttp(http, served.server.ports()["http_port"], TOKEN)
        status, waiting = await jobs.call("POST", json=BODY)  # created, never uploaded
        assert status == 201, waiting
        status, doc = await jobs.call(
            "POST",
            f"/{waiting['id']}/edits",
            json={"edits": [{"segment_id": 0, "target_language": "spa", "text": "hola"}]},
        )
        assert status == 409 and "can be edited once it is done" in str(doc), doc
        text_only = await jobs.run({**BODY, "speech": False}, speech_wav)
        done = await jobs.run(BODY, speech_wav)
        first = (await jobs.segments(done["id"]))[0]["segment_id"]

        def one(**edit: Any) -> dict[str, Any]:
            return {"edits": [{"segment_id": first, "target_language": "spa", **edit}]}

        for job, edits, says in (
            (done, {"edits": "all"}, 'the body is {"edits": ['),
            (done, one(tone="warm"), "edits[0].tone"),
            (done, one(), "edits[0]: give text, voice or speed"),
            (done, one(segment_id=999, voice=1), "edits[0].segment_id: the job has no segment 999"),
            (
                done,
                one(target_language="deu", voice=1),
                "edits[0].target_language: one of the job's languages (spa, fra)",
            ),
            (done, one(voice=4), "edits[0].voice: 0..3"),
            (done, one(speed=3), "edits[0].speed"),
            (done, one(speed=10**400), "edits[0].speed must be a JSON number"),
            (done, one(text="x" * 401), "edits[0].text: at most 400 characters"),
            (done, {"edits": one(voice=1)["edits"] * 2}, f"edits[1]: segment {first} in spa is edited twice"),
            (text_only, one(voice=1), "this job made no speech"),
        ):
            status, doc = await jobs.call("POST", f"/{job['id']}/edits", json=edits)
            assert status == 400 and says in str(doc), (edits, status, doc)
        # nothing of a refused request was applied
        assert all("edited" not in t for s in await jobs.segments(done["id"]) for t in s["translations"])
        # a text-only job's text can be edited: no speech made
        first_said = (await jobs.segments(text_only["id"]))[0]["segment_id"]
        (edited,) = await Dub(jobs, text_only["id"]).edit(
            {"segment_id": first_said, "target_language": "fra", "text": "salut"}
        )
        assert edited["changed"] == ["text"] and edited["after"]["text"] == "salut" and edited["after"]["audio_ms"] == 0
