"""Editable dubs through the SDK and the CLI, over the ``Jobs`` gRPC service. A done job's segments
edited (``edit_job``, ``translate-svc job edit``: ``EditJob``): each edit answered with what it
changed, the job's results saying the new text, voice and rate; many edits from a file at once; an
edit of a job not done is ABORTED saying so, and a command missing what it edits is refused before
anything is sent. A studio's SRT and WebVTT voiced at their timings (``submit_job(subtitles=)``,
``translate-svc dub --subtitles``): each cue a segment at its time saying its text. A real server on
loopback with the test checkpoint (4 voices)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
import soundfile as sf

from tests.support import videos
from tests.support.cli import fails, run_cli
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.speech import read_16k
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc
from translate_svc.client import AsyncTranslateClient, JobState, SegmentEdit, TranslateError

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(40)]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    settings = make_settings(test_model_dir)
    settings.jobs.dir = tmp_path_factory.mktemp("jobs-edits")
    settings.jobs.quiet_wait_s = 0
    async with serving(settings, warmup=False) as live:
        yield live


async def dubbed(client: AsyncTranslateClient, job_id: str, lang: str) -> bytes:
    """A target's dubbed track as the SDK downloads it (a WAV of PCM16 at 16 kHz)."""
    return await client.job_results(job_id, "wav", lang)


def said(doc: dict[str, Any], segment_id: int, lang: str) -> dict[str, Any]:
    (seg,) = [s for s in doc["segments"] if s["segment_id"] == segment_id]
    (t,) = [t for t in seg["translations"] if t["target_language"] == lang]
    return dict(t)


async def test_the_sdk_and_the_cli_edit_a_done_jobs_segments(
    live: LiveServer, shared_audio: Path, tmp_path: Path
) -> None:
    wav = tmp_path / "jfk.wav"
    sf.write(wav, read_16k(shared_audio / "jfk.flac"), 16000, subtype="PCM_16")
    server = f"127.0.0.1:{live.port}"
    async with AsyncTranslateClient(server) as client:
        job = await client.submit_job(wav, targets=["spa", "fra"], source="eng")
        assert (await client.wait_job(job.id)).state is JobState.DONE
        doc = json.loads(await client.job_results(job.id))
        ids = [s["segment_id"] for s in doc["segments"] if said(doc, s["segment_id"], "spa")["audio_samples"]]
        assert len(ids) >= 2, doc
        first, last = ids[0], ids[-1]
        before = {lang: await dubbed(client, job.id, lang) for lang in ("spa", "fra")}
        (edited,) = await client.edit_job(job.id, [SegmentEdit(first, "spa", text="buenas", speed=1.25)])
        assert (edited.segment_id, edited.language, edited.changed) == (first, "spa", ("text", "speed"))
        assert edited.before.text == said(doc, first, "spa")["text"] and edited.before.speech_rate == 1.0
        assert (edited.after.text, edited.after.voice, edited.after.speech_rate) == ("buenas", 0, 1.25)
        doc = json.loads(await client.job_results(job.id))
        assert said(doc, first, "spa")["text"] == "buenas" and said(doc, first, "spa")["edited"] == ["text", "speed"]
        after = {lang: await dubbed(client, job.id, lang) for lang in ("spa", "fra")}
        assert after["fra"] == before["fra"]  # the other language's track, byte for byte
        (seg,) = [s for s in doc["segments"] if s["segment_id"] == first]
        later = [s["start_ms"] for s in doc["segments"] if s["start_ms"] > seg["start_ms"]]
        at = slice(44 + seg["start_ms"] * 32, 44 + min(later) * 32 if later else None)  # its place (PCM16 at 16 kHz)
        assert after["spa"][: at.start] == before["spa"][: at.start] and after["spa"][at] != before["spa"][at]

    one = await asyncio.to_thread(
        run_cli, "job", "edit", job.id, "--segment", str(last), "--language", "fra", "--voice", "3", "--json",
        "--server", server, timeout=120,
    )  # fmt: skip
    assert one.code == 0, one.err
    (shown,) = json.loads(one.out)["edited"]
    assert shown["changed"] == ["voice"] and shown["after"]["voice"] == 3 and shown["before"]["voice"] == 0

    edits = tmp_path / "edits.json"
    edits.write_text(
        json.dumps(
            [
                {"segment_id": first, "target_language": "fra", "text": "salut"},
                {"segment_id": last, "target_language": "spa", "voice": 1},
            ]
        )
    )
    many = await asyncio.to_thread(run_cli, "job", "edit", job.id, "--edits", edits, "--server", server, timeout=120)
    assert many.code == 0, many.err
    assert f"segment {first} fra: text" in many.out and f"segment {last} spa: voice" in many.out, many.out
    async with AsyncTranslateClient(server) as client:
        doc = json.loads(await client.job_results(job.id))
        assert said(doc, first, "fra")["text"] == "salut" and said(doc, last, "fra")["voice"] == 3
        assert said(doc, last, "spa")["voice"] == 1 and said(doc, first, "spa")["text"] == "buenas"

        async with grpc.aio.insecure_channel(server) as channel:  # a job created, never uploaded
            waiting = await pb_grpc.JobsStub(channel).CreateJob(
                pb.CreateJobRequest(source_language="eng", target_languages=["spa"]), timeout=30
            )
        with pytest.raises(TranslateError) as refused:
            await client.edit_job(waiting.job_id, [SegmentEdit(0, "spa", text="hola")])
        assert refused.value.code is grpc.StatusCode.ABORTED and "once it is done" in str(refused.value)

    bare = await asyncio.to_thread(run_cli, "job", "edit", job.id, "--segment", "0", "--server", server)
    fails(bare, 2, "give --segment and --language")
    both = await asyncio.to_thread(
        run_cli, "job", "edit", job.id, "--edits", edits, "--voice", "1", "--server", server
    )  # fmt: skip
    fails(both, 2, "--edits FILE or one edit's")


SRT = "1\n00:00:00,500 --> 00:00:02,000\nhola amigo\n\n2\n00:00:03,000 --> 00:00:04,500\nbuenas\n"
VTT = "WEBVTT\n\n00:00.400 --> 00:01.500\nhola\n\n00:02.000 --> 00:03.000\nadios\n"


async def test_the_sdk_and_the_cli_voice_subtitles_at_their_timings(
    live: LiveServer, shared_audio: Path, tmp_path: Path
) -> None:
    wav = tmp_path / "jfk.wav"
    sf.write(wav, read_16k(shared_audio / "jfk.flac")[: 6 * 16000], 16000, subtype="PCM_16")
    srt, vtt = tmp_path / "studio.srt", tmp_path / "studio.vtt"
    srt.write_text(SRT, encoding="utf-8")
    vtt.write_text(VTT, encoding="utf-8")
    server = f"127.0.0.1:{live.port}"
    async with AsyncTranslateClient(server) as client:
        job = await client.submit_job(wav, targets=["spa"], subtitles=srt)
        assert (await client.wait_job(job.id)).state is JobState.DONE
        doc = json.loads(await client.job_results(job.id))
    got = [(s["start_ms"], s["end_ms"], s["translations"][0]["text"]) for s in doc["segments"]]
    assert got == [(500, 2000, "hola amigo"), (3000, 4500, "buenas")]
    assert all(s["translations"][0]["audio_samples"] > 0 for s in doc["segments"])

    video = videos.write_video(tmp_path / "talk.mp4", wav)
    out = tmp_path / "talk.dubbed.mp4"
    run = await asyncio.to_thread(
        run_cli, "dub", video, "--to", "spa", "--subtitles", vtt, "-o", out, "--server", server, process=True,
        timeout=300,
    )  # fmt: skip
    assert run.code == 0, run.err
    assert out.stat().st_size > 0
    (job_id,) = [line.split()[1] for line in run.out.splitlines() if line.startswith("job ")]
    async with AsyncTranslateClient(server) as client:
        doc = json.loads(await client.job_results(job_id))
    got = [(s["start_ms"], s["end_ms"], s["translations"][0]["text"]) for s in doc["segments"]]
    assert got == [(400, 1500, "hola"), (2000, 3000, "adios")]

    two = await asyncio.to_thread(
        run_cli, "job", "submit", wav, "--to", "spa,fra", "--subtitles", srt, "--server", server
    )  # fmt: skip
    fails(two, 2, "--subtitles: one --to language")
