"""A done job's dubbed track downloaded at a loudness (issue 100: the WAV download's loudness), through
the REST door (aiohttp) and the SDK (gRPC ``GetJobResults``) on a real server with the real VAD and a
fake model whose speech is a tone: ``?loudness=`` brings the WAV to the target's integrated loudness
within 1 LU (pyloudnorm, an independent meter) under its true-peak ceiling (soxr's oversampling), as
long as the track as made, where as made it read elsewhere; the file made for it is deleted once
sent; a bad loudness is refused naming the field."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import pytest_asyncio
import soundfile as sf
import soxr

from tests.support.fake_runner import FakeRunner
from tests.support.jobs import JobsOverHttp, fresh_connections
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.stepped_call import NO_MODEL
from tests.support.waiting import until
from translate_svc.audio.loudness import PRESETS
from translate_svc.model_api.requests import ModelInput

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(30)]


def tone(item: ModelInput, lang: str) -> np.ndarray:
    """Half the segment's length of a 440 Hz tone at 0.3 (the track's rate is the model's, 16 kHz)."""
    n = len(item.audio) // 2
    return (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / 16000)).astype(np.float32)


class Served:
    live: LiveServer
    jobs: JobsOverHttp
    dir: Path
    job_id: str


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory, shared_audio: Path) -> AsyncIterator[Served]:
    runner = FakeRunner()
    runner.waveform = tone
    settings = make_settings(NO_MODEL)
    settings.server.http_port = 0
    settings.jobs.dir = tmp_path_factory.mktemp("loud") / "jobs"
    settings.jobs.quiet_wait_s = 0
    async with serving(settings, warmup=False, runner_factory=lambda: runner) as live, fresh_connections() as http:
        got = Served()
        got.live, got.dir = live, settings.jobs.dir
        got.jobs = JobsOverHttp(http, live.server.ports()["http_port"], "")
        done = await got.jobs.run(
            {"source_language": "eng", "target_languages": ["fra"]}, (shared_audio / "silero_test.wav").read_bytes()
        )
        assert done["state"] == "done", done["error"]
        got.job_id = done["id"]
        yield got


async def download(served: Served, query: str = "") -> np.ndarray:
    status, body = await served.jobs.call("GET", f"/{served.job_id}/dubbed/fra{query}")
    assert status == 200, body
    x, rate = sf.read(io.BytesIO(body), dtype="float64")
    assert rate == 16000 and x.ndim == 1
    return np.asarray(x)


def loudness(x: np.ndarray) -> float:
    return float(pyloudnorm.Meter(16000).integrated_loudness(x))


def true_peak_db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.abs(soxr.resample(x, 16000, 64000)).max()))


@pytest.mark.parametrize("query", ["?loudness=ebu_r128", "?loudness=-30&true_peak_dbtp=-6"])
async def test_the_wav_download_is_brought_to_a_loudness_under_its_ceiling(served: Served, query: str) -> None:
    made = await download(served)
    loud = await download(served, query)
    target = PRESETS["ebu_r128"].integrated_lufs if "ebu" in query else -30.0
    ceiling = PRESETS["ebu_r128"].true_peak_dbtp if "ebu" in query else -6.0
    assert len(loud) == len(made)
    assert abs(loudness(made) - target) > 2  # not there as made
    assert abs(loudness(loud) - target) <= 1.0
    assert true_peak_db(loud) <= ceiling + 0.1  # (the PCM16 rounding on top of the limiter's margin)
    folder = served.dir / "jobs" / served.job_id
    await until(lambda: not list(folder.glob("dubbed.out.*")))  # the made file is deleted once sent


async def test_the_sdk_saves_a_dubbed_track_at_a_loudness(served: Served, tmp_path: Path) -> None:
    from translate_svc.client import AsyncTranslateClient

    out = tmp_path / "fra.wav"
    async with AsyncTranslateClient(f"127.0.0.1:{served.live.port}") as client:
        size = await client.save_job_results(served.job_id, out, "wav", "fra", loudness=-26.0)
    x, rate = sf.read(out, dtype="float64")
    assert size == out.stat().st_size and rate == 16000
    assert abs(loudness(x) - -26.0) <= 1.0 and true_peak_db(x) <= -1.0 + 0.1


@pytest.mark.parametrize(
    ("query", "said"),
    [
        ("?loudness=loud", "is not a preset"),
        ("?loudness=-23&true_peak_dbtp=3", "true-peak ceiling"),
        ("?true_peak_dbtp=-2", "needs a loudness"),
    ],
)
async def test_a_bad_loudness_is_refused_naming_it(served: Served, query: str, said: str) -> None:
    status, body = await served.jobs.call("GET", f"/{served.job_id}/dubbed/fra{query}")
    assert status == 400 and said in str(body), body
