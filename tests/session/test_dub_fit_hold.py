"""Dubbing to the source's clock holds one segment (issue 90 item 2): a segment's speech is fitted
to its span and the gap before the next segment, so with ``fit`` on each closed segment waits for
the next one's start (or the audio's end) before it goes to the model (``SegmentTracker.release``).
Nothing may be lost, the order must hold, the last segment must go at the end, and a job, which
feeds its next second only once its segments so far are read, must not wait for a held one.

A real server on loopback with the real VAD and a fake model (``FakeRunner``) that keeps every
input it ran: a Translate clip through the gRPC stub and a job through the REST API, both of 60 s
of shared speech with many pauses. Each segment is submitted exactly once, in segment order, with
``ModelInput.fit``'s budget the next segment's start less its own (the last one's: the audio's
end less its start), and each result reports ``overlap_ms``, how far its speech (three times or
half its span here) runs past that budget. Before the change the request had no ``fit``."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import pytest_asyncio
from google.rpc import code_pb2

from tests.support.fake_runner import FakeRunner
from tests.support.jobs import JobsOverHttp
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.raw import raw_request
from tests.support.speech import read_16k
from tests.support.stepped_call import NO_MODEL
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.model_api.requests import ModelInput

#: a safety net: the job ends in seconds; never a measured bound
WAIT_S = 120.0

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(20)]


def longer(samples: int) -> float:
    """The fake model's speech is this many times as long as its segment of ``samples``: three
    times (past its budget) or half (within it), told apart by the segment's length."""
    return 3.0 if samples // 512 % 2 else 0.5


def speech_of(item: ModelInput, lang: str) -> np.ndarray:
    return np.full(int(longer(len(item.audio)) * len(item.audio)), 0.1, np.float32)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[LiveServer, FakeRunner, JobsOverHttp]]:
    runner = FakeRunner()
    runner.waveform = speech_of
    settings = make_settings(NO_MODEL)
    settings.server.http_port = 0
    settings.jobs.dir = tmp_path_factory.mktemp("fit-hold") / "jobs"
    settings.jobs.quiet_wait_s = 0
    async with serving(settings, warmup=False, runner_factory=lambda: runner) as live, aiohttp.ClientSession() as http:
        yield live, runner, JobsOverHttp(http, live.server.ports()["http_port"], "")


def fitted_inputs(runner: FakeRunner) -> list[ModelInput]:
    return [i for batch in runner.ran for i in batch if i.fit is not None]


def check_budgets(spans: list[tuple[int, int]], audio_ms: int, items: list[ModelInput]) -> None:
    """One input per segment, in segment order (each its segment's audio), each budget running
    to the next segment's start, the last one's to the audio's end."""
    assert [len(i.audio) for i in items] == [(end - start) * 16 for start, end in spans]
    ends = [start for start, _ in spans[1:]] + [audio_ms]
    for (start, _), end, item in zip(spans, ends, items, strict=True):
        assert item.fit is not None and item.fit.budget_ms == end - start, (start, end, item.fit)
        assert (item.fit.slowest, item.fit.fastest) == (0.9, 1.2)


def expected_overlap(span_ms: int, budget_ms: int) -> int:
    samples = int(longer(span_ms * 16) * span_ms * 16)
    return max(0, -(-(samples - budget_ms * 16) // 16))


async def test_a_fitted_clip_sends_each_segment_once_in_order_with_its_budget(
    served: tuple[LiveServer, FakeRunner, JobsOverHttp], shared_audio: Path
) -> None:
    live, runner, _ = served
    runner.ran.clear()
    pcm = (read_16k(shared_audio / "silero_test.wav") * 32767).astype("<i2").tobytes()
    request = raw_request(pcm, pb.LINEAR16, source_language="eng", fit=pb.SpeechFit(slowest=0.9, fastest=1.2))
    response = await live.stub.Translate(request)
    segments = list(response.segments)
    assert len(segments) >= 10
    assert [s.segment_id for s in segments] == list(range(len(segments)))
    assert all(s.status.code == code_pb2.OK for s in segments)
    spans = [(s.start_ms, s.end_ms) for s in segments]
    items = fitted_inputs(runner)
    check_budgets(spans, response.audio_duration_ms, items)
    for seg, item in zip(segments, items, strict=True):
        (t,) = seg.translations
        assert t.HasField("overlap_ms")
        assert item.fit is not None
        assert t.overlap_ms == expected_overlap(seg.end_ms - seg.start_ms, round(item.fit.budget_ms))
    assert any(t.overlap_ms > 0 for s in segments for t in s.translations)
    assert any(t.overlap_ms == 0 for s in segments for t in s.translations)

    plain = await live.stub.Translate(raw_request(pcm, pb.LINEAR16, source_language="eng"))
    assert [(s.start_ms, s.end_ms) for s in plain.segments] == spans  # holding moves no segment
    assert not any(t.HasField("overlap_ms") for s in plain.segments for t in s.translations)


async def test_a_fitted_job_runs_to_its_end_with_every_segment_in_order(
    served: tuple[LiveServer, FakeRunner, JobsOverHttp], shared_audio: Path
) -> None:
    """A job feeds its next second only once its segments so far are read: a held segment must
    not count as one, or the job would wait for ever for the start that releases it."""
    _, runner, jobs = served
    runner.ran.clear()
    source = (shared_audio / "silero_test.wav").read_bytes()
    body: dict[str, Any] = {"target_languages": ["spa"], "fit": {"slowest": 0.9, "fastest": 1.2}}
    done = await asyncio.wait_for(jobs.run(body, source), WAIT_S)  # a job stuck on a held segment fails here
    assert done["state"] == "done", done["error"]
    segments = await jobs.segments(done["id"])
    assert len(segments) >= 10
    assert [s["segment_id"] for s in segments] == list(range(len(segments)))
    spans = [(s["start_ms"], s["end_ms"]) for s in segments]
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))
    items = fitted_inputs(runner)
    check_budgets(spans, done["duration_ms"], items)
    for seg, item in zip(segments, items, strict=True):
        (t,) = seg["translations"]
        assert item.fit is not None
        assert t["overlap_ms"] == expected_overlap(seg["end_ms"] - seg["start_ms"], round(item.fit.budget_ms))
