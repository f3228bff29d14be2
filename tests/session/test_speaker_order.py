"""Speaker labels in a stream's ordered output (issue 72): a result goes out only once its
segment's voice is embedded, labels are given in segment order whatever order the embeddings finish
in (so the clustering hears the stream in its order; issue 91 lets it revise earlier labels, told
as such), and an aborted stream drops what is still embedding."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.support.fake_engine import FakeEngineClient
from tests.support.waiting import until
from translate_svc.session.stream.segments import SegmentTracker
from translate_svc.session.stream.speakers import SpeakerLabels
from translate_svc.session.work import OnExecutor
from translate_svc.speakers.encoder import Embedding
from translate_svc.types import OutputOptions, Segment, SegmentResult, TranslationTask

pytestmark = [pytest.mark.unit, pytest.mark.asyncio(loop_scope="session")]

TASK = TranslationTask("eng", ("spa",), OutputOptions(speech=False))
#: where the voices are embedded (the server's speaker pool has one thread; three here, so that a
#: later segment's embedding can finish first)
POOL = ThreadPoolExecutor(3, thread_name_prefix="test-speakers")


class GatedEncoder:
    """Each segment's embedding waits for its gate; a segment's voice is its first sample (an axis)."""

    def __init__(self) -> None:
        self.gates: dict[int, threading.Event] = {}

    def embed(self, samples: np.ndarray) -> Embedding:
        axis = int(samples[0])
        self.gates.setdefault(axis * 1000 + int(samples[1]), threading.Event()).wait(30)
        v = np.zeros(256, np.float32)
        v[axis] = 1.0
        return Embedding(v, v[None, :])

    def open(self, key: int) -> None:
        self.gates.setdefault(key, threading.Event()).set()


def segment(n: int, voice: int) -> Segment:
    samples = np.zeros(32000, np.float32)
    samples[0], samples[1] = voice, n  # the gate's key: voice * 1000 + n
    return Segment(n, n * 3000, n * 3000 + 2000, samples)


async def test_results_wait_for_their_label_and_labels_follow_segment_order() -> None:
    engine = FakeEngineClient()
    jobs = SegmentTracker(engine, "s", TASK, encode=OnExecutor(POOL))
    encoder = GatedEncoder()
    labels = SpeakerLabels(2, jobs.emit_ready, POOL, encoder)  # type: ignore[arg-type]
    jobs.speakers = labels
    voices = [7, 9, 7]
    for n, v in enumerate(voices):
        seg = segment(n, v)
        labels.segment_closed(seg)
        jobs.submit(seg, 0.0)
    for job in engine.pending():
        engine.resolve(job)
    out: list[SegmentResult] = []

    async def read() -> None:
        async for ev in jobs.events():
            if isinstance(ev, SegmentResult):
                out.append(ev)

    reader = asyncio.create_task(read())
    encoder.open(9001)  # the second segment's voice first: nothing may go out before the first's
    await until(lambda: labels.ready(1))
    for _ in range(5):  # the embedding's callback and the reader have their turns
        await asyncio.sleep(0)
    assert out == [] and not labels.ready(0)
    encoder.open(7000)
    await until(lambda: len(out) == 2)
    encoder.open(7002)
    await until(lambda: len(out) == 3)
    assert [r.segment_id for r in out] == [0, 1, 2]
    assert [r.speaker for r in out] == [1, 2, 1]  # in order of first appearance, stable
    jobs.abort()
    reader.cancel()


async def test_an_aborted_stream_drops_its_embeddings() -> None:
    engine = FakeEngineClient()
    jobs = SegmentTracker(engine, "s", TASK, encode=OnExecutor(POOL))
    encoder = GatedEncoder()
    labels = SpeakerLabels(2, jobs.emit_ready, POOL, encoder)  # type: ignore[arg-type]
    jobs.speakers = labels
    labels.segment_closed(segment(0, 3))
    assert not labels.ready(0)
    jobs.abort()
    assert labels.ready(0)  # nothing of it is waited for any more
    encoder.open(3000)
