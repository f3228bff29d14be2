"""Where a final result waits in the engine's queue, through the wire (issue 24, item 5: paths that
were implemented but never went through the wire): ``Timing.queue_ms`` counts the wait behind a
running batch, and a final never waits behind queued live captions. A real server on loopback
whose model is ``FakeRunner``, held at its gate (``max_batch_size=1``).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest
from google.rpc import code_pb2

from tests.support.fake_runner import FakeRunner
from tests.support.stepped_call import (
    PER_MS,
    WAIT_S,
    Call,
    assert_translated,
    call_config,
    fake_serving,
    jfk_then_silence,
    samples,
    segments,
    spans_of,
    speech_ended,
)
from translate_svc.client_cli.decode import load_pcm16k

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(2)]


@pytest.fixture(scope="module")
def jfk(shared_audio: Path) -> np.ndarray:
    return jfk_then_silence(shared_audio)


@pytest.fixture(scope="module")
def silero(shared_audio: Path) -> np.ndarray:
    return load_pcm16k(shared_audio / "silero_test.wav")


#: how long the model is held while segments wait behind it (a lower bound is asserted, never an upper)
HOLD_S = 0.3


async def test_queue_ms_counts_the_wait_behind_a_running_batch_and_the_timings_agree(jfk: np.ndarray) -> None:
    """Four segments closed by one message; the first holds the model (the fake's gate) for at least
    HOLD_S after every segment was submitted. Lower bounds only: the first's model_ms covers the
    hold, and each later segment's queue_ms is at least the time from its submission (seen on the
    wire: its SPEECH_ENDED) to the release. The documented relations hold for every segment
    (total_ms >= queue_ms + model_ms; speech_ms, language_id_ms <= model_ms), and the wire carries
    exactly the engine's own measurement of each batch (``on_batch``)."""
    runner = FakeRunner()
    runner.gate.clear()
    async with fake_serving(runner, max_batch_size=1) as live:
        call = Call(live.stub, call_config())
        try:
            call.send(jfk, chunk_ms=None)
            call.close()
            await asyncio.wait_for(asyncio.to_thread(runner.started.wait, WAIT_S), WAIT_S)
            in_model = time.perf_counter()  # the first segment entered the model before this
            await call.until(lambda got: len(speech_ended(got)) == 4)
            submitted = [call.at[i] for i in speech_ended(call.got)]  # each segment was submitted before this
            await asyncio.sleep(HOLD_S)  # the wait being measured (not a synchronisation)
        finally:
            released = time.perf_counter()
            runner.gate.set()
        got = await call.result()
    segs = segments(got)
    assert len(segs) == 4 and all(s.status.code == code_pb2.OK for s in segs)
    first = segs[0].timing
    assert first.model_ms >= (released - in_model) * 1000 >= HOLD_S * 1000
    for s, sent in zip(segs[1:], submitted[1:], strict=True):
        assert s.timing.queue_ms >= (released - sent) * 1000 >= HOLD_S * 1000, (s.segment_id, s.timing)
    for s, batch in zip(segs, live.batches, strict=True):  # one batch per segment, in order
        t = s.timing
        assert batch.size == 1 and batch.queue_ms == (t.queue_ms,) and batch.model_ms == t.model_ms
        assert t.queue_ms >= 0 and t.model_ms > 0 and t.vad_wait_ms >= 0
        assert t.total_ms >= t.queue_ms + t.model_ms - 1e-6, t  # closed -> ready covers both
        assert 0 <= t.speech_ms <= t.model_ms and 0 <= t.language_id_ms <= t.model_ms
        assert t.total_ms >= HOLD_S * 1000  # every segment's result waited for the release


@pytest.mark.parametrize("interim_ms", [250, 0], ids=["captions-on", "captions-off"])
async def test_a_final_segment_never_waits_behind_queued_captions(
    jfk: np.ndarray, silero: np.ndarray, interim_ms: int
) -> None:
    """What the scheduler guarantees (engine/scheduler.py; captions are droppable jobs): a batch is
    made of captions only when no final job is queued, so once a final is queued no caption runs
    before it, whenever the captions were queued; the only work a final can wait for is the batch
    in the model when it came. Through the wire, with the fake model held (max_batch_size=1):
    stream A's final holds the model; with captions on, streams B and C each queue a caption
    (nothing final waits yet, so they are taken); then stream D's phrases close. On release, D's
    first three finals run in the first three batches, before both older captions, exactly as with
    captions off; the captions run later and still reach B and C as interim results.

    The engine queues a job only once its features are computed (on its features thread), and may
    start a caption batch meanwhile; so the release waits for a barrier: the features of D's fourth
    final being computed. Features are computed one job at a time, in order, and each job's "ready"
    callback is posted to the loop before the next job's computation starts, so when the loop sees
    the fourth's computation, the first three are queued ahead of anything the release causes. The
    fourth's own place is not asserted (it may still be computing at the release)."""
    spans = await spans_of(jfk)
    last_len = (spans[3][1] - spans[3][0]) * PER_MS  # longer than any caption here (all under 2.3 s)
    runner = FakeRunner()
    loop = asyncio.get_running_loop()
    featured: asyncio.Queue[int] = asyncio.Queue()  # each submitted job's length, as its features are computed

    def seen(audio: np.ndarray) -> None:  # the features thread: hand the length to the loop
        loop.call_soon_threadsafe(featured.put_nowait, len(audio))

    runner.on_features = seen
    runner.gate.clear()
    calls: list[Call] = []
    async with fake_serving(runner, max_batch_size=1) as live:
        try:
            async with asyncio.timeout(WAIT_S):
                a = Call(live.stub, call_config(speech=True))
                calls.append(a)
                a.send(silero[: 16000 * 5 // 2])  # one phrase: its final holds the model
                a_len = await featured.get()
                await asyncio.to_thread(runner.started.wait, WAIT_S)
                captions: list[int] = []
                for _ in range(2):  # B and C: speech that goes on (a 12 s phrase, 2.2 s of it sent)
                    c = Call(live.stub, call_config(speech=True, interim_ms=interim_ms))
                    calls.append(c)
                    c.send(silero[16000 * 20 : 16000 * 45 // 2], chunk_ms=20)
                    if interim_ms:
                        captions.append(await featured.get())  # its caption is queued
                    else:
                        await c.until(lambda got: any(r.HasField("speech_event") for r in got))
                d = Call(live.stub, call_config(speech=True, interim_ms=interim_ms))
                calls.append(d)
                d.send(jfk)
                d.close()
                while await featured.get() != last_len:
                    pass  # D's fourth final is submitted: its first three are queued
        except BaseException:
            for x in calls:
                x.cancel()
            raise
        finally:
            runner.gate.set()
        b, c = calls[1], calls[2]
        for caller in (b, c):
            if interim_ms:
                await caller.until(lambda got: any(r.HasField("interim") for r in got))
            caller.close()
        a.close()
        results = [await x.result() for x in calls]
    finals = [tuple(len(i.audio) for i in batch) for batch in runner.ran if batch[0].speech]
    caption_batches = [tuple(len(i.audio) for i in batch) for batch in runner.ran if not batch[0].speech]
    assert all(len(batch) == 1 for batch in runner.ran)
    assert all(all(i.speech == batch[0].speech for i in batch) for batch in runner.ran)
    d_lens = [(e - s) * PER_MS for s, e in spans]
    # the held batch, then D's first three finals, in order, before any caption
    assert [tuple(len(i.audio) for i in batch) for batch in runner.ran[:4]] == [(a_len,), *((n,) for n in d_lens[:3])]
    assert all(batch[0].speech for batch in runner.ran[:4])
    d_segs = segments(results[3])
    assert [samples(s) for s in d_segs] == d_lens
    for s, batch in zip(d_segs[:3], live.batches[1:4], strict=True):  # their wire timing is those batches'
        assert batch.queue_ms == (s.timing.queue_ms,)
    assert (d_lens[3],) in finals
    if interim_ms:
        # both ran, after D's finals, oldest first (B's half-close may start one more caption later)
        assert caption_batches[:2] == [(n,) for n in captions]
        for got, n in zip(results[1:3], captions, strict=True):
            interim = next(r.interim for r in got if r.HasField("interim"))
            assert [t.text for t in interim.translations] == [f"spa:{n}"]
    else:
        assert not caption_batches and not any(r.HasField("interim") for got in results for r in got)
    for got in results:
        for s in segments(got):
            assert_translated(s)
