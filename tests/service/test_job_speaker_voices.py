"""A voice per speaker in a job's dub (issue 100 item 2), over the HTTP port: the two-voice mix
(truth AABBBAABB) as a job with ``speakers`` 2 and speech is dubbed with label 1 in the job's voice
and label 2 in the next one, each segment saying its ``voice``; the dubbed track holds, in each
segment's place, what a one-voice job in that segment's voice holds there (label 2's segments
re-voiced once the file's labels were final, ``jobs/revoice.py``), and label 1's are untouched.
``speaker_voices`` names a label's voice, ``"one"`` keeps one voice; what cannot hold is refused
naming the key."""

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

from tests.support.jobs import JobsOverHttp
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.speaker_mixes import issue_mix, phrases, segment_accuracy, shown
from translate_svc.settings.jobs import DubOverflow

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(90)]

TOKEN = "acme-job-voices-token-81c4"
BODY = {"source_language": "eng", "target_languages": ["spa"], "speakers": 2, "word_timings": False}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("job-voices")
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
async def mix_wav(shared_audio: Path) -> tuple[Any, bytes]:
    mix = issue_mix(await phrases(shared_audio))
    wav = io.BytesIO()
    sf.write(wav, mix.samples, 16000, format="WAV", subtype="PCM_16")
    return mix, wav.getvalue()


async def _dub(served: LiveServer, body: dict[str, Any], audio: bytes) -> tuple[list[dict[str, Any]], np.ndarray]:
    async with aiohttp.ClientSession() as http:
        jobs = JobsOverHttp(http, served.server.ports()["http_port"], TOKEN)
        done = await jobs.run(body, audio)
        assert done["state"] == "done", done
        named = body.get("speaker_voices", {})  # echoed as the request named them; absent: one voice
        assert done.get("speaker_voices") == (None if named == "one" else named), done
        segments = await jobs.segments(done["id"])
        status, track = await jobs.call("GET", f"/{done['id']}/dubbed/spa")
        assert status == 200, track
    samples, rate = sf.read(io.BytesIO(track), dtype="float32")
    assert rate == 16000
    return segments, samples


def _places(segments: list[dict[str, Any]], length: int) -> list[slice]:
    """Each segment's speech in the dubbed track (overflow cut: up to the next segment's start)."""
    starts = [s["start_ms"] * 16 for s in segments] + [length]
    return [
        slice(a, min(a + s["translations"][0]["audio_samples"], b))
        for s, a, b in zip(segments, starts, starts[1:], strict=False)
    ]


def _apart(a: np.ndarray, b: np.ndarray) -> float:
    """How far apart two pieces of speech are: their RMS difference over their RMS."""
    return float(np.sqrt(np.mean((a - b) ** 2)) / max(np.sqrt(np.mean(a**2)), 1e-9))


async def test_two_speakers_are_dubbed_in_two_voices(served: LiveServer, mix_wav: tuple[Any, bytes]) -> None:
    mix, audio = mix_wav
    segments, track = await _dub(served, BODY, audio)
    spans = [(s["start_ms"], s["end_ms"]) for s in segments]
    labels = [s["speaker"] for s in segments]
    assert segment_accuracy(mix, spans, labels) == 1.0 and len(set(labels)) == 2, shown(mix, spans, labels)
    assert [s["voice"] for s in segments] == [label - 1 for label in labels]  # label 1: voice 0; 2: voice 1
    one = {v: await _dub(served, {**BODY, "speaker_id": v, "speaker_voices": "one"}, audio) for v in (0, 1)}
    labelled = [(a, b, label) for (a, b), label in zip(spans, labels, strict=True)]
    for voice, (got, _) in one.items():
        assert [(s["start_ms"], s["end_ms"], s["speaker"]) for s in got] == labelled
        assert all("voice" not in s for s in got), voice  # one voice: as before
    heard = 0
    for s, place in zip(segments, _places(segments, len(track)), strict=True):
        if place.stop - place.start < 1600:  # under 0.1 s of speech in its place: nothing to hear
            continue
        own, other = (one[v][1][place] for v in (s["voice"], 1 - s["voice"]))
        assert _apart(track[place], own) < 0.02, (s["segment_id"], s["speaker"], _apart(track[place], own))
        assert _apart(track[place], other) > 0.3, (s["segment_id"], s["speaker"], _apart(track[place], other))
        heard += 1
    assert heard >= 6, heard


async def test_a_named_voice_and_what_is_refused(served: LiveServer, mix_wav: tuple[Any, bytes]) -> None:
    _, audio = mix_wav
    segments, _ = await _dub(served, {**BODY, "speaker_voices": {"2": 3}}, audio)
    assert {(s["speaker"], s["voice"]) for s in segments} == {(1, 0), (2, 3)}
    async with aiohttp.ClientSession() as http:
        jobs = JobsOverHttp(http, served.server.ports()["http_port"], TOKEN)
        for body, says in (
            ({**BODY, "speaker_voices": {"2": 4}}, "speaker_voices[2] is 4: use a voice 0..3"),
            ({**BODY, "speaker_voices": {"3": 1}}, "label 3 is not a speaker's: use 1..2"),
            ({**BODY, "speakers": 0, "speaker_voices": {"2": 1}}, "set speakers to 2 or more"),
            ({**BODY, "speaker_voices": {"two": 1}}, "each key a label"),
            ({**BODY, "speaker_voices": "many"}, 'speaker_voices: "distinct" (the default), "one"'),
        ):
            status, doc = await jobs.call("POST", json=body)
            assert status == 400 and says in str(doc), (body, status, doc)
