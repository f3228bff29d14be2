"""A resumed job's lead-in (issue 73): where its audio starts before the resume point (on the 160 ms
grid of whole VAD windows; since issue 91 the whole audio before it, up to ``jobs.resume_replay_s``,
which by default covers any job), and that the lead-in's audio, translated before the restart, is
not charged to the tenant again. Plain values and the runner's
own ``_feed`` with a recording manager; the segments' equality with an uninterrupted run is
tests/jobs/test_restart.py's."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np
import pytest

from translate_svc.jobs.pace import EnginePace
from translate_svc.jobs.translation import LEAD_GRID_MS, resume_lead_ms
from translate_svc.jobs.worker import JobWorker
from translate_svc.session.events import MAX_LEAD_IN_MS
from translate_svc.session.tenants.tenant import DEFAULT_TENANT, Tenant
from translate_svc.settings import JobSettings
from translate_svc.vad.segmenter import WINDOW_SAMPLES

pytestmark = pytest.mark.unit


def test_the_grid_is_whole_vad_windows_and_whole_frames_at_the_usual_rates() -> None:
    assert LEAD_GRID_MS * 16 % WINDOW_SAMPLES == 0
    for rate in (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000):
        assert LEAD_GRID_MS * rate % 1000 == 0, rate


@pytest.mark.parametrize("end_ms", [0, 1, 5_376, 10_000, 10_001, 12_345, 176_000])
def test_a_lead_in_is_the_streams_longest_at_most_starting_on_the_grid(end_ms: int) -> None:
    lead = resume_lead_ms(end_ms)
    start = end_ms - lead
    assert 0 <= lead <= MAX_LEAD_IN_MS and start >= 0
    assert start % LEAD_GRID_MS == 0
    # as long as it can be: the whole audio before the point, or within a grid step of the cap
    assert start == 0 or lead > MAX_LEAD_IN_MS - LEAD_GRID_MS


@pytest.mark.parametrize("end_ms", [0, 5_376, 176_000, 6 * 3_600_000])
def test_by_default_a_resumed_job_hears_again_its_whole_audio_before_the_point(end_ms: int) -> None:
    """Issue 91: only a VAD that heard the same audio from the start enters the point in the same
    state (silero's memory is minutes long), so the default replay covers the longest job."""
    most = round(JobSettings().resume_replay_s * 1000)
    assert JobSettings().resume_replay_s >= JobSettings().max_audio_s
    assert resume_lead_ms(end_ms, most) == end_ms


def test_a_bounded_replay_starts_on_the_grid_within_its_bound() -> None:
    lead = resume_lead_ms(700_001, 600_000)
    assert lead <= 600_000 and (700_001 - lead) % LEAD_GRID_MS == 0 and lead > 600_000 - LEAD_GRID_MS


class Charges:
    """The manager's part ``_feed`` uses, recording what it charges."""

    def __init__(self) -> None:
        self.charged: list[float] = []
        self.engine = SimpleNamespace(stats=lambda: SimpleNamespace(sessions=1))

    def charge_audio(self, tenant: Tenant, seconds: float) -> None:
        self.charged.append(seconds)


class JobSide:
    """A job's session and audio blocks: ``seconds`` at 16 kHz in blocks of ``block_s``."""

    def __init__(self, seconds: float, block_s: float) -> None:
        self.rate = 16000
        whole = np.zeros(round(seconds * self.rate), np.float32)
        step = round(block_s * self.rate)
        self._blocks = [whole[at : at + step] for at in range(0, len(whole), step)]
        self.fed = 0
        self.unread = 0

    async def read(self, frames: int) -> np.ndarray:
        return self._blocks.pop(0) if self._blocks else np.zeros(0, np.float32)

    async def feed_samples(self, samples: np.ndarray) -> None:
        self.fed += len(samples)


@pytest.mark.parametrize("block_s", [30.0, 4.0])  # the lead-in inside the first block, or over several
async def test_the_lead_in_is_heard_but_not_charged_again(block_s: float) -> None:
    manager = Charges()
    runner = JobWorker(None, manager, JobSettings(quiet_wait_s=0))  # type: ignore[arg-type]
    job = JobSide(40.0, block_s)
    lead_frames = round(9.84 * job.rate)
    with ThreadPoolExecutor(1) as reads:
        await runner.translator._feed(job, job, DEFAULT_TENANT, reads, EnginePace(1.0), asyncio.Event(), lead_frames)  # type: ignore[arg-type]
    assert job.fed == 40 * job.rate  # all of it heard, the lead-in too
    assert sum(manager.charged) == pytest.approx(40.0 - 9.84)  # only what is translated now
