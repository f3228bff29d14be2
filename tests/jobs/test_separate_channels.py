"""A job of a stereo recording whose channels are parties (``channel_mode`` separate: issue 99 item
4), over a real server on loopback: two different speakers, one per channel, give per-channel
results equal to each channel submitted alone as a job (spans, transcripts, translations, their
speech's length), each labelled with its channel (and as its speaker), numbered in the order their
speech began; the dubbed WAV keeps a channel per party, each equal to that channel's job's track;
the SDK asks for it over gRPC and reads it back; a resumed job's results are the uninterrupted
run's; what it cannot take is refused saying why (a mono upload fails its job)."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pyloudnorm
import pytest
import pytest_asyncio
import soundfile as sf
from prometheus_client import REGISTRY

from tests.support.cli import run_cli
from tests.support.fake_runner import FakeRunner
from tests.support.jobs import JobsOverHttp, fresh_connections, killed_after
from tests.support.live_server import make_settings, serving
from tests.support.speech import read_16k, two_parties, wav_bytes
from tests.support.stepped_call import NO_MODEL
from translate_svc.audio.loudness import PRESETS

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(90)]

SECONDS = 11
SEPARATE = {"source_language": "eng", "target_languages": ["fra"], "channel_mode": "separate"}


def settings(model: Path, jobs_dir: Path) -> Any:
    s = make_settings(model)
    s.server.http_port = 0
    s.jobs.dir = jobs_dir
    s.jobs.quiet_wait_s = 0
    return s


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    jobs_dir = tmp_path_factory.mktemp("channels") / "jobs"
    async with serving(settings(test_model_dir, jobs_dir)) as live, fresh_connections() as http:
        yield live, JobsOverHttp(http, live.server.ports()["http_port"], "")


wav = wav_bytes


@pytest.fixture(scope="module")
def parties(shared_audio: Path) -> tuple[np.ndarray, np.ndarray]:
    return two_parties(shared_audio, SECONDS)


def shape(seg: dict[str, Any]) -> tuple[object, ...]:
    return (
        seg["start_ms"],
        seg["end_ms"],
        seg["transcript"]["text"],
        tuple((t["target_language"], t["text"], t["audio_samples"]) for t in seg["translations"]),
    )


async def dubbed(jobs: JobsOverHttp, job_id: str) -> np.ndarray:
    status, body = await jobs.call("GET", f"/{job_id}/dubbed/fra")
    assert status == 200, body
    track, rate = sf.read(io.BytesIO(body), dtype="int16", always_2d=True)
    assert rate == 16000
    return np.asarray(track)


async def test_each_channel_is_translated_as_a_job_of_it_alone_and_dubbed_on_its_own_channel(
    served: Any, parties: tuple[np.ndarray, np.ndarray]
) -> None:
    _, jobs = served
    done = await jobs.run(SEPARATE, wav(np.stack(parties, axis=1)))
    assert done["state"] == "done", done["error"]
    assert done["channel_mode"] == "separate"
    both = await jobs.segments(done["id"])
    alone = []
    for party in parties:
        single = await jobs.run({k: v for k, v in SEPARATE.items() if k != "channel_mode"}, wav(party))
        assert single["state"] == "done", single["error"]
        alone.append((single["id"], await jobs.segments(single["id"])))
    for channel, (_, single_segments) in enumerate(alone, 1):
        mine = [seg for seg in both if seg["channel"] == channel]
        assert mine and all(seg["speaker"] == channel for seg in mine)
        assert [shape(s) for s in mine] == [shape(s) for s in single_segments], channel
        assert all("channel" not in seg for seg in single_segments)
    assert [seg["segment_id"] for seg in both] == list(range(len(both)))
    assert {seg["channel"] for seg in both} == {1, 2}
    # the dubbed WAV: a channel per party, each its channel's job's track, as long as the audio
    track = await dubbed(jobs, done["id"])
    assert track.shape == (SECONDS * 16000, 2)
    for channel, (single_id, _) in enumerate(alone):
        own = await dubbed(jobs, single_id)
        assert own.shape == (SECONDS * 16000, 1)
        assert np.array_equal(track[:, channel], own[:, 0]), channel + 1
        assert np.abs(own).max() > 0  # speech was placed: the comparison is not of silences
    # at a loudness: both channels brought there together (one programme), still a channel per party
    status, body = await jobs.call("GET", f"/{done['id']}/dubbed/fra?loudness=ebu_r128")
    assert status == 200, body
    loud, rate = sf.read(io.BytesIO(body), dtype="float64", always_2d=True)
    assert rate == 16000 and loud.shape == (SECONDS * 16000, 2)
    assert pyloudnorm.Meter(16000).integrated_loudness(loud) == pytest.approx(
        PRESETS["ebu_r128"].integrated_lufs, abs=1
    )


async def test_the_sdk_submits_a_job_of_separate_channels_over_grpc(
    served: Any, parties: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    from translate_svc.client import AsyncTranslateClient

    live, _ = served
    path = tmp_path / "call.wav"
    path.write_bytes(wav(np.stack(parties, axis=1)))
    before = charged()
    async with AsyncTranslateClient(f"127.0.0.1:{live.port}") as client:
        job = await client.submit_job(path, targets=["fra"], source="eng", speech=False, separate_channels=True)
        assert job.separate_channels
        ended = await client.wait_job(job.id)
        assert ended.state.value == "done", ended.error
        results = json.loads(await client.job_results(job.id))
    assert {seg["channel"] for seg in results["segments"]} == {1, 2}
    assert results["job"]["channel_mode"] == "separate"
    assert charged() - before == pytest.approx(2 * SECONDS, abs=0.01)  # both parties' seconds, as a clip's


def charged() -> float:
    """The seconds of audio the default tenant was charged in this process (the server's counter)."""
    return REGISTRY.get_sample_value("translate_svc_tenant_audio_seconds_total", {"tenant": "default"}) or 0.0


async def test_the_cli_submits_a_job_of_separate_channels(
    served: Any, parties: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    live, jobs = served
    path = tmp_path / "call.wav"
    path.write_bytes(wav(np.stack(parties, axis=1)))
    run = await asyncio.to_thread(
        run_cli, "job", "submit", path, "--to", "fra", "--from", "eng", "--no-speech", "--separate-channels",
        "--wait", "--json", "--server", f"127.0.0.1:{live.port}", process=True, timeout=300,
    )  # fmt: skip
    assert run.code == 0, run.err
    job = json.loads(run.out)
    assert job["state"] == "done" and job["separate_channels"] is True, job
    assert {seg["channel"] for seg in await jobs.segments(job["id"])} == {1, 2}


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ({**SEPARATE, "channel_mode": "both"}, "channel_mode is 'both': use mixed (the default) or separate"),
        ({**SEPARATE, "speakers": 2}, "speakers and separate channels are both set"),
        (
            {**SEPARATE, "format": {"encoding": "linear16", "sample_rate_hz": 16000, "channels": 1}},
            "channel_mode separate needs 2 interleaved channels; format.channels is 1",
        ),
    ],
)
async def test_what_a_job_of_separate_channels_cannot_take_is_refused(
    served: Any, body: dict[str, Any], said: str
) -> None:
    _, jobs = served
    status, got = await jobs.call("POST", json=body)
    assert status == 400 and said in got["error"]["message"], got


async def test_a_mono_upload_fails_its_job_saying_why(served: Any, parties: tuple[np.ndarray, np.ndarray]) -> None:
    _, jobs = served
    status, job = await jobs.call("POST", json=SEPARATE)
    assert status == 201, job
    status, got = await jobs.call("PUT", f"/{job['id']}/audio", data=wav(parties[0]))
    assert status == 200, got
    status, got = await jobs.call("POST", f"/{job['id']}/complete")
    assert status == 400 and "needs audio of 2 channels" in got["error"]["message"], got
    status, failed = await jobs.call("GET", f"/{job['id']}")
    assert failed["state"] == "failed" and "the upload has 1" in failed["error"], failed


async def test_a_resumed_job_of_separate_channels_equals_the_uninterrupted_one(
    tmp_path: Path, shared_audio: Path
) -> None:
    """Killed after its k-th segment (the store as a dead process leaves it), a new server resumes it:
    each channel heard again from the start, only listened to up to its own last stored segment;
    the results are the uninterrupted run's (the real VAD, a fake model)."""
    left = read_16k(shared_audio / "jfk.flac")
    right = read_16k(shared_audio / "silero_test.wav")[: 3 * len(left)]
    left = np.tile(left, 3)[: len(right)]
    audio = wav(np.stack([left, right], axis=1))
    jobs_dir = tmp_path / "jobs"
    body = {**SEPARATE, "speech": False}
    async with (
        serving(settings(NO_MODEL, jobs_dir), warmup=False, runner_factory=FakeRunner) as live,
        aiohttp.ClientSession() as http,
    ):
        jobs = JobsOverHttp(http, live.server.ports()["http_port"], "")
        done = await jobs.run(body, audio)
        assert done["state"] == "done", done["error"]
        whole = await jobs.segments(done["id"])
    assert len(whole) > 12 and {seg["channel"] for seg in whole} == {1, 2}
    for k in (5, len(whole) - 4):
        killed_after(jobs_dir, done["id"], k, whole[k - 1]["end_ms"], audio)
        async with (
            serving(settings(NO_MODEL, jobs_dir), warmup=False, runner_factory=FakeRunner) as live,
            aiohttp.ClientSession() as http,
        ):
            jobs = JobsOverHttp(http, live.server.ports()["http_port"], "")
            again = await jobs.finished(done["id"])
            assert again["state"] == "done", again["error"]
            resumed = await jobs.segments(done["id"])
        spans = [(s["channel"], s["start_ms"], s["end_ms"], s["transcript"]["text"]) for s in resumed]
        assert sorted(spans) == sorted(
            (s["channel"], s["start_ms"], s["end_ms"], s["transcript"]["text"]) for s in whole
        ), f"resumed after segment {k}"
        assert len(resumed) == len(whole)
