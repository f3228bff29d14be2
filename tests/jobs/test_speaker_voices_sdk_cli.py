"""A voice per speaker through the SDK and the CLI (issue 100 item 2), over the ``Jobs`` gRPC
service: the two-voice mix (truth AABBBAABB) as an audio job from ``submit_job(speakers=2,
speaker_voices={2: 3})``, and as a video dubbed by ``translate-svc dub --speakers 2 --speaker-voice
2=2`` (its speech fitted to its places): each segment's result says the voice its label speaks in.
``--one-voice`` keeps one; the two together are refused before anything is sent. A real server on
loopback with the test checkpoint (4 voices)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import soundfile as sf

from tests.support import videos
from tests.support.cli import fails, run_cli
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.speaker_mixes import issue_mix, phrases, segment_accuracy, shown
from translate_svc.client import AsyncTranslateClient, JobState

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(90)]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    settings = make_settings(test_model_dir)
    settings.jobs.dir = tmp_path_factory.mktemp("jobs-voices")
    settings.jobs.quiet_wait_s = 0
    async with serving(settings, warmup=False) as live:
        yield live


async def _voices(live: LiveServer, job_id: str) -> list[tuple[int, int, int]]:
    async with AsyncTranslateClient(f"127.0.0.1:{live.port}") as client:
        doc = json.loads(await client.job_results(job_id))
    return [(s["segment_id"], s["speaker"], s["voice"]) for s in doc["segments"]]


async def test_the_sdk_and_the_cli_dub_each_speaker_in_a_voice_of_its_own(
    live: LiveServer, shared_audio: Path, tmp_path: Path
) -> None:
    mix = issue_mix(await phrases(shared_audio))
    wav = tmp_path / "two.wav"
    sf.write(wav, mix.samples, 16000, subtype="PCM_16")
    async with AsyncTranslateClient(f"127.0.0.1:{live.port}") as client:
        job = await client.submit_job(wav, targets=["spa"], source="eng", speakers=2, speaker_voices={2: 3})
        assert job.speaker_voices == {2: 3}
        assert (await client.wait_job(job.id)).state is JobState.DONE
        doc = json.loads(await client.job_results(job.id))
    spans = [(s["start_ms"], s["end_ms"]) for s in doc["segments"]]
    labels = [s["speaker"] for s in doc["segments"]]
    assert segment_accuracy(mix, spans, labels) == 1.0, shown(mix, spans, labels)
    assert [s["voice"] for s in doc["segments"]] == [{1: 0, 2: 3}[label] for label in labels]

    video = videos.write_video(tmp_path / "two.mp4", wav)
    out = tmp_path / "two.dubbed.mp4"
    server = f"127.0.0.1:{live.port}"
    run = await asyncio.to_thread(
        run_cli, "dub", video, "--to", "spa", "--from", "eng", "--speakers", "2", "--speaker-voice", "2=2",
        "-o", out, "--server", server, process=True, timeout=300,
    )  # fmt: skip
    assert run.code == 0, run.err
    (job_id,) = [line.split()[1] for line in run.out.splitlines() if line.startswith("job ")]
    dubbed = await _voices(live, job_id)
    assert {(speaker, voice) for _, speaker, voice in dubbed} == {(1, 0), (2, 2)}, dubbed
    assert [s for _, s, _ in dubbed] == labels  # the video's sound is the mix: the same labels

    one = await asyncio.to_thread(
        run_cli, "job", "submit", wav, "--to", "spa", "--from", "eng", "--speakers", "2", "--one-voice", "--wait",
        "--json", "--server", server, process=True, timeout=300,
    )  # fmt: skip
    assert one.code == 0, one.err
    async with AsyncTranslateClient(server) as client:
        doc = json.loads(await client.job_results(json.loads(one.out)["id"]))
    assert {s["speaker"] for s in doc["segments"]} == {1, 2} and all("voice" not in s for s in doc["segments"])
    both = await asyncio.to_thread(
        run_cli, "job", "submit", wav, "--to", "spa", "--speakers", "2", "--one-voice", "--speaker-voice", "2=1",
        "--server", server,
    )  # fmt: skip
    fails(both, 2, "--one-voice or --speaker-voice, not both")
