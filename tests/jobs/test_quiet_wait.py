"""A job feeds only in the pauses of the live speech (issue 73, ``jobs.quiet_wait_s``): before each
second it feeds, a job waits until no live stream of its process holds speech or waits for a
segment's result (``SessionManager.wait_live_quiet``), at most ``quiet_wait_s``; 0 never waits.
A scripted VAD (speech where the test says) and a fake engine whose results the test gives: no
model, no server; the runner's own ``_feed`` with a recording session in place of the job's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pydantic
import pytest
import pytest_asyncio

from tests.support.fake_engine import FakeEngineClient
from tests.support.fake_sessions import FMT
from tests.support.fake_vad import scripted_worker
from tests.support.waiting import until
from translate_svc.jobs.pace import EnginePace
from translate_svc.jobs.worker import JobWorker
from translate_svc.session import SessionManager
from translate_svc.session.stream.session import StreamSession
from translate_svc.session.task import checks
from translate_svc.session.tenants.tenant import DEFAULT_TENANT
from translate_svc.settings import JobSettings, LimitsSettings
from translate_svc.types import OutputOptions
from translate_svc.vad.segmenter import SegmenterConfig

pytestmark = [pytest.mark.unit, pytest.mark.slow(15)]

#: each live stream's speech, in seconds of its audio: one utterance
UTTERANCE = [(0.5, 1.5)]
#: speech that goes on for the whole test
ENDLESS = [(0.5, 1000.0)]


def silence(seconds: float) -> bytes:
    return b"\0\0" * round(16000 * seconds)  # the script decides what is speech, not the samples


class Node:
    """A manager on a fake engine and a scripted VAD, and its live streams."""

    def __init__(self, speech: Sequence[tuple[float, float]]) -> None:
        self.vad = scripted_worker(speech)
        self.engine = FakeEngineClient()
        self.m = SessionManager(self.engine, self.vad, SegmenterConfig(), LimitsSettings())  # type: ignore[arg-type]
        self.task = checks.resolve_task(self.m.card, self.m.limits, "eng", ["spa"], OutputOptions(speech=False))
        self.sessions: list[StreamSession] = []

    async def live(self) -> StreamSession:
        session = await self.m.open_stream(FMT, self.task, self.m.vad_defaults)
        self.sessions.append(session)
        return session

    def close(self) -> None:
        for s in self.sessions:
            s.close()
        self.vad.close()


@pytest_asyncio.fixture
async def utterance() -> AsyncIterator[Node]:
    node = Node(UTTERANCE)
    yield node
    node.close()


@pytest_asyncio.fixture
async def endless() -> AsyncIterator[Node]:
    node = Node(ENDLESS)
    yield node
    node.close()


class JobSide:
    """What ``JobTranslation._feed`` feeds: a job's session (recording when each second came) and its
    audio's blocks (``seconds`` of it at 16 kHz, then the end)."""

    def __init__(self, seconds: float) -> None:
        self.rate = 16000
        self._left = [np.zeros(round(seconds * self.rate), np.float32)]
        self.fed: list[float] = []
        self.unread = 0

    async def read(self, frames: int) -> np.ndarray:
        return self._left.pop() if self._left else np.zeros(0, np.float32)

    async def feed_samples(self, samples: np.ndarray) -> None:
        self.fed.append(asyncio.get_running_loop().time())


def feeding(node: Node, quiet_wait_s: float, seconds: float) -> tuple[JobSide, asyncio.Task[None]]:
    """A job of ``seconds`` fed by the runner's ``_feed`` beside ``node``'s live streams."""
    runner = JobWorker(None, node.m, JobSettings(quiet_wait_s=quiet_wait_s))  # type: ignore[arg-type]
    job = JobSide(seconds)
    reads = ThreadPoolExecutor(1)
    feed = runner.translator._feed(job, job, DEFAULT_TENANT, reads, EnginePace(0.2), asyncio.Event())  # type: ignore[arg-type]
    task = asyncio.create_task(feed)
    task.add_done_callback(lambda _: reads.shutdown(wait=False))
    return job, task


async def test_the_wait_holds_while_a_live_stream_speaks_or_awaits_its_result_and_ends_with_it(
    utterance: Node,
) -> None:
    node = utterance
    live = await node.live()
    await live.feed(silence(1.0))  # inside the utterance
    await until(node.m.live_speech)
    job, feed = feeding(node, 30.0, 2.0)
    await asyncio.sleep(0.3)
    assert job.fed == []  # the job waits while the live stream holds speech
    await live.feed(silence(1.0))  # the utterance ends: its segment goes to the engine
    await until(lambda: bool(node.engine.pending()))
    await asyncio.sleep(0.3)
    assert node.m.live_speech() and job.fed == []  # and while its result is computed
    loop = asyncio.get_running_loop()
    answered = loop.time()
    node.engine.resolve(node.engine.pending()[0])
    await asyncio.wait_for(feed, 10.0)  # the result is out (not yet read by the client): quiet
    assert len(job.fed) == 2
    assert job.fed[0] - answered < 5.0  # woken by the stream going quiet, not by the 30 s limit
    assert not node.m.live_speech()


async def test_a_live_stream_closed_in_speech_releases_the_wait(utterance: Node) -> None:
    node = utterance
    live = await node.live()
    await live.feed(silence(1.0))
    await until(node.m.live_speech)
    waiting = asyncio.create_task(node.m.wait_live_quiet(30.0))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    live.close()
    assert await asyncio.wait_for(waiting, 5.0) is True


async def test_clips_and_jobs_are_no_live_speech(utterance: Node) -> None:
    node = utterance
    clip = node.m.open_clip(FMT, node.task, node.m.vad_defaults)
    node.sessions.append(clip)
    await clip.feed(silence(1.0))
    await until(lambda: clip.speaking)
    assert not node.m.live_speech()
    assert await asyncio.wait_for(node.m.wait_live_quiet(30.0), 1.0) is True


async def test_the_wait_ends_after_quiet_wait_s_while_the_speech_goes_on(endless: Node) -> None:
    node = endless
    live = await node.live()
    await live.feed(silence(1.0))
    await until(node.m.live_speech)
    loop = asyncio.get_running_loop()
    began = loop.time()
    job, feed = feeding(node, 0.3, 2.0)
    await asyncio.wait_for(feed, 20.0)  # the job progresses however long the live speech goes on
    assert node.m.live_speech()
    assert len(job.fed) == 2
    assert job.fed[0] - began >= 0.3 - 0.01  # each second waited its quiet_wait_s
    assert job.fed[1] - job.fed[0] >= 0.3 - 0.01


async def test_no_quiet_wait_never_waits(endless: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    node = endless
    live = await node.live()
    await live.feed(silence(1.0))
    await until(node.m.live_speech)
    waits: list[float] = []

    async def wait_live_quiet(timeout_s: float) -> bool:
        waits.append(timeout_s)
        return False

    monkeypatch.setattr(node.m, "wait_live_quiet", wait_live_quiet)
    job, feed = feeding(node, 0.0, 3.0)
    await asyncio.wait_for(feed, 20.0)
    assert len(job.fed) == 3 and waits == []


def test_quiet_wait_s_is_five_seconds_by_default_and_never_negative() -> None:
    assert JobSettings().quiet_wait_s == 5.0
    assert JobSettings(quiet_wait_s=0).quiet_wait_s == 0.0
    with pytest.raises(pydantic.ValidationError, match="quiet_wait_s"):
        JobSettings(quiet_wait_s=-0.5)
