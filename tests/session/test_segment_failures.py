"""Paths that were implemented but never went through the wire (issue 24, item 5): per-segment
failures (the model's INTERNAL, a full queue's RESOURCE_EXHAUSTED, speech that cannot be encoded),
health during a drain, text-less speech output, ``Timing.queue_ms``, and where a final result waits
when live captions are on. Each test runs a real server on loopback with a real gRPC client; the
model is ``FakeRunner`` (tests/unit/fake_runner.py), so faults are injected through the Runner
Protocol (its gate, ``fail_when``, ``waveform``) and every test takes milliseconds of model time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import pytest
from google.rpc import code_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.fake_runner import FakeRunner
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.paths import REPO
from tests.support.speech import vad_segments
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc
from translate_svc.client_cli.decode import load_pcm16k
from translate_svc.transport.grpc.servicer import SERVICE_NAME
from translate_svc.wire.pcm import pcm16_to_float

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(5)]

FMT = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000, channels=1)
#: the fake runner never reads a checkpoint: any path will do
NO_MODEL = REPO / "model_cache" / "unused-fake-runner"
#: a safety net so that a broken test fails instead of hanging; never a measured bound
WAIT_S = 30.0
PER_MS = 16  # 16 kHz samples per millisecond
SILENCE_1S = np.zeros(16000, np.int16)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture(scope="module")
def jfk(shared_audio: Path) -> np.ndarray:
    """jfk.flac as 16 kHz PCM16, then 1 s of silence: four phrases, each closed inside the audio."""
    return np.concatenate([load_pcm16k(shared_audio / "jfk.flac"), SILENCE_1S])


@pytest.fixture(scope="module")
def silero(shared_audio: Path) -> np.ndarray:
    return load_pcm16k(shared_audio / "silero_test.wav")


async def spans_of(pcm: np.ndarray) -> list[tuple[int, int]]:
    """The [start_ms, end_ms) spans a server cuts from ``pcm`` at the default VAD settings
    (conftest's ``vad_segments``: the same segmenter, no model), rounded as ``segment_of`` does."""
    return [(-(-s.start_sample // PER_MS), s.end_sample // PER_MS) for s in await vad_segments(pcm16_to_float(pcm))]


@contextlib.asynccontextmanager
async def fake_serving(runner: FakeRunner, **engine: float) -> AsyncIterator[LiveServer]:
    """A real server on loopback whose model is ``runner`` (no warm-up batch: ``runner.ran`` holds
    the streams' batches only)."""
    async with serving(make_settings(NO_MODEL, **engine), warmup=False, runner_factory=lambda: runner) as live:
        yield live


def config(*, speech: bool = False, text: bool = True, interim_ms: int = 0, **output: object) -> pb.StreamingConfig:
    return pb.StreamingConfig(
        format=FMT,
        source_language="eng",
        target_languages=["spa"],
        output=pb.OutputOptions(text=text, speech=speech, **output),  # type: ignore[arg-type]
        interim_interval_ms=interim_ms,
    )


class Call:
    """One StreamingTranslate call, run as a task: the test sends audio when it chooses (``send``),
    half-closes (``close``), and waits for what has arrived (``until``), with each response's
    arrival time (``time.perf_counter``, the clock the server's timings use) in ``at``."""

    def __init__(self, stub: pb_grpc.TranslatorStub, cfg: pb.StreamingConfig) -> None:
        self._requests: asyncio.Queue[pb.StreamingTranslateRequest | None] = asyncio.Queue()
        self._requests.put_nowait(pb.StreamingTranslateRequest(config=cfg))
        self.got: list[pb.StreamingTranslateResponse] = []
        self.at: list[float] = []
        self._changed = asyncio.Event()
        self.task = asyncio.create_task(self._run(stub))

    async def _messages(self) -> AsyncIterator[pb.StreamingTranslateRequest]:
        while (m := await self._requests.get()) is not None:
            yield m

    async def _run(self, stub: pb_grpc.TranslatorStub) -> None:
        try:
            async for r in stub.StreamingTranslate(self._messages(), timeout=60):
                self.got.append(r)
                self.at.append(time.perf_counter())
                self._changed.set()
        finally:
            self._changed.set()

    def send(self, pcm: np.ndarray, chunk_ms: int | None = 100) -> None:
        """``pcm`` as LINEAR16 messages of ``chunk_ms`` (None: one message)."""
        step = len(pcm) if chunk_ms is None else chunk_ms * PER_MS
        for i in range(0, len(pcm), step):
            self._requests.put_nowait(pb.StreamingTranslateRequest(audio=pcm[i : i + step].astype("<i2").tobytes()))

    def close(self) -> None:
        self._requests.put_nowait(None)

    async def until(self, done: Callable[[list[pb.StreamingTranslateResponse]], bool]) -> None:
        async with asyncio.timeout(WAIT_S):
            while not done(self.got):
                if self.task.done():
                    self.task.result()  # the call's error, if it failed
                    raise AssertionError(f"the call ended without that: {[r.WhichOneof('response') for r in self.got]}")
                self._changed.clear()
                await self._changed.wait()

    async def result(self) -> list[pb.StreamingTranslateResponse]:
        async with asyncio.timeout(WAIT_S):
            await self.task
        return self.got

    def cancel(self) -> None:
        self.task.cancel()


def segments(got: list[pb.StreamingTranslateResponse]) -> list[pb.SegmentResult]:
    return [r.segment for r in got if r.HasField("segment")]


def speech_ended(got: list[pb.StreamingTranslateResponse]) -> list[int]:
    """Indexes (into ``got``) of the SPEECH_ENDED events: each comes right after its region's last
    segment was submitted to the engine (the segmenter's event contract)."""
    return [
        i
        for i, r in enumerate(got)
        if r.HasField("speech_event") and r.speech_event.type == pb.SpeechEvent.SPEECH_ENDED
    ]


def samples(s: pb.SegmentResult) -> int:
    """16 kHz samples the model got for ``s``: its span, exactly (the fake's text names them)."""
    return (s.end_ms - s.start_ms) * PER_MS


def assert_translated(s: pb.SegmentResult) -> None:
    assert s.status.code == code_pb2.OK, s.status
    assert [t.text for t in s.translations] == [f"spa:{samples(s)}"], s


def assert_ended(got: list[pb.StreamingTranslateResponse], total: int) -> None:
    assert got[-1].HasField("ended"), got[-1]
    assert got[-1].ended.reason == pb.StreamEnd.HALF_CLOSE and got[-1].ended.segments_total == total


# -- 1. per-segment status through the wire --------------------------------------------------------


async def test_a_segment_the_model_fails_on_is_internal_and_the_stream_goes_on(jfk: np.ndarray) -> None:
    """The model raises on the second phrase only: that segment comes back INTERNAL with its span
    and no text; the segments before and after it are translated; the stream ends normally."""
    spans = await spans_of(jfk)
    assert len(spans) == 4
    bad = (spans[1][1] - spans[1][0]) * PER_MS
    assert [e - s for s, e in spans].count(spans[1][1] - spans[1][0]) == 1  # the fault hits that segment alone
    runner = FakeRunner()
    runner.fail_when = lambda item: len(item.audio) == bad
    async with fake_serving(runner) as live:
        call = Call(live.stub, config())
        call.send(jfk)
        call.close()
        got = await call.result()
    segs = segments(got)
    assert [(s.start_ms, s.end_ms) for s in segs] == spans
    assert [s.segment_id for s in segs] == [0, 1, 2, 3]
    failed = segs[1]
    assert failed.status.code == code_pb2.INTERNAL and "the model failed on this segment" in failed.status.message
    assert not failed.translations and not failed.HasField("transcript")
    for s in (segs[0], segs[2], segs[3]):  # after the failure too: the stream went on
        assert_translated(s)
        assert s.transcript.text == f"n={samples(s)}"
    assert_ended(got, 4)
    assert any(len(b) == 1 and len(b[0].audio) == bad for b in runner.ran)  # it did reach the model


async def test_a_full_engine_queue_refuses_segments_with_their_span_and_the_stream_goes_on(
    jfk: np.ndarray, silero: np.ndarray
) -> None:
    """An engine that holds one job in the model and one in its queue (max_queued_segments=1,
    max_batch_size=1), held at the fake model's gate while one message closes four segments: the
    first is taken, at most one more is, the others come back RESOURCE_EXHAUSTED with their span
    (as the proto says: the audio is not kept, send that span again). The stream is not ended: once
    released, it takes more audio and translates it."""
    spans = await spans_of(jfk)
    runner = FakeRunner()
    runner.gate.clear()
    async with fake_serving(runner, max_queued_segments=1, max_batch_size=1) as live:
        call = Call(live.stub, config())
        try:
            call.send(jfk, chunk_ms=None)  # one message: its four segments close before any result is read
            await call.until(lambda got: len(speech_ended(got)) == 4)  # all four submitted, the model still held
        finally:
            runner.gate.set()
        await call.until(lambda got: len(segments(got)) == 4)
        call.send(silero[: 16000 * 5 // 2])  # one more phrase after the refusals
        call.close()
        got = await call.result()
    segs = segments(got)
    assert [(s.start_ms, s.end_ms) for s in segs[:4]] == spans
    refused = [s for s in segs if s.status.code != code_pb2.OK]
    assert 2 <= len(refused) <= 3 and segs[0].status.code == code_pb2.OK, [s.status for s in segs]
    for s in refused:
        assert s.status.code == code_pb2.RESOURCE_EXHAUSTED and "server busy" in s.status.message, s.status
        assert not s.translations and not s.HasField("transcript")
    for s in segs:
        if s.status.code == code_pb2.OK:
            assert_translated(s)
    last = segs[4]
    assert last.segment_id == 4 and last.start_ms >= spans[3][1]  # the phrase sent after the refusals
    assert_translated(last)
    assert_ended(got, 5)
    # each segment taken ran once, alone; the refused ones never reached the model
    assert len(live.batches) == len(segs) - len(refused) == len(runner.ran)


@pytest.mark.parametrize(
    ("encoding", "rate"),
    [(pb.SPEECH_ENCODING_OPUS, 48000), (pb.SPEECH_ENCODING_LINEAR16, 24000)],
    ids=["opus", "pcm-24k"],
)
async def test_speech_that_cannot_be_encoded_fails_its_segment_alone(jfk: np.ndarray, encoding: int, rate: int) -> None:
    """The model returns the second phrase's speech as a 2-D array (a runner that kept the batch
    axis): resampling (PCM at 24 kHz) or the Opus encoder refuses it, off the event loop. That
    segment is INTERNAL "could not be encoded" with its span, and it carries nothing else: the
    code drops its text and transcript with the speech (``results.failed``). The others carry
    their speech, encoded."""
    spans = await spans_of(jfk)
    bad = (spans[1][1] - spans[1][0]) * PER_MS
    runner = FakeRunner()
    plain = runner.waveform
    runner.waveform = lambda item, lang: plain(item, lang)[None, :] if len(item.audio) == bad else plain(item, lang)
    async with fake_serving(runner) as live:
        call = Call(live.stub, config(speech=True, speech_encoding=encoding, speech_sample_rate_hz=rate))
        call.send(jfk)
        call.close()
        got = await call.result()
    segs = segments(got)
    assert [(s.start_ms, s.end_ms) for s in segs] == spans
    failed = segs[1]
    assert failed.status.code == code_pb2.INTERNAL, failed.status
    assert failed.status.message == "the translated speech could not be encoded"
    assert not failed.translations and not failed.HasField("transcript")
    for s in (segs[0], segs[2], segs[3]):
        assert_translated(s)
        audio = s.translations[0].audio
        assert audio.encoding == encoding and audio.sample_rate_hz == rate
        assert audio.num_samples == samples(s) // 2 * rate // 16000  # the fake's speech: half the input's length
        if encoding == pb.SPEECH_ENCODING_OPUS:
            assert audio.opus_packets and not audio.content
        else:
            assert len(audio.content) == 2 * audio.num_samples
    assert_ended(got, 4)


class DropsASpeech(FakeRunner):
    """A runner whose output for one segment lacks the target's speech (a runner bug)."""

    def __init__(self, bad_samples: int) -> None:
        super().__init__()
        self.bad_samples = bad_samples

    def run(self, inputs):  # type: ignore[no-untyped-def]
        outs = super().run(inputs)
        return [
            dataclasses.replace(o, waveforms={}) if len(i.audio) == self.bad_samples else o
            for i, o in zip(inputs, outs, strict=True)
        ]


async def test_an_unusable_model_output_built_on_the_loop_fails_its_segment_alone(jfk: np.ndarray) -> None:
    """Speech as PCM at 16 kHz needs no encoding, so the result is built on the event loop: an
    output without the target's speech is INTERNAL for that segment, and the stream goes on and
    ends (it used to hang: the callback's KeyError was only logged)."""
    spans = await spans_of(jfk)
    runner = DropsASpeech((spans[1][1] - spans[1][0]) * PER_MS)
    async with fake_serving(runner) as live:
        call = Call(live.stub, config(speech=True, speech_encoding=pb.SPEECH_ENCODING_LINEAR16))
        call.send(jfk)
        call.close()
        got = await call.result()
    segs = segments(got)
    assert [(s.start_ms, s.end_ms) for s in segs] == spans
    assert segs[1].status.code == code_pb2.INTERNAL
    assert segs[1].status.message == "the model's output for this segment was unusable"
    for s in (segs[0], segs[2], segs[3]):
        assert s.status.code == code_pb2.OK and s.translations[0].audio.num_samples
    assert_ended(got, 4)


# -- 2. health during a drain ------------------------------------------------------------------


async def test_health_is_not_serving_from_the_start_of_a_drain_while_a_stream_is_still_served(
    jfk: np.ndarray,
) -> None:
    """``TranslateServer.stop`` (what SIGTERM runs) turns both health names NOT_SERVING at once, for
    a Watch already open and for a new Check, while a live stream is still being served: it gets
    the draining notice, and audio it sends after that is still translated until it half-closes."""
    settings = make_settings(NO_MODEL)
    settings.server.drain_s = 30.0  # the stream outlives every check below by far
    runner = FakeRunner()
    async with serving(settings, warmup=False, runner_factory=lambda: runner) as live:
        health = health_pb2_grpc.HealthStub(live.channel)
        names = ("", SERVICE_NAME)
        for name in names:
            assert (await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)).status == SERVING
        watches = [health.Watch(health_pb2.HealthCheckRequest(service=name)) for name in names]
        call = Call(live.stub, config())
        stopping: asyncio.Task[None] | None = None
        try:
            for w in watches:
                assert (await w.read()).status == SERVING
            call.send(jfk[: 16000 * 3])  # the first phrase
            await call.until(lambda got: len(segments(got)) == 1)
            stopping = asyncio.create_task(live.server.stop(grace=30))
            async with asyncio.timeout(WAIT_S):
                for w in watches:
                    assert (await w.read()).status == NOT_SERVING
            for name in names:
                status = (await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)).status
                assert status == NOT_SERVING, name
            await call.until(lambda got: any(r.HasField("draining") for r in got))
            assert not call.task.done()
            call.send(jfk[16000 * 3 : 16000 * 5])  # the second phrase, sent while draining
            await call.until(lambda got: len(segments(got)) == 2)
            call.close()
            got = await call.result()
        finally:
            for w in watches:
                w.cancel()  # an open Watch would hold the server's stop for its whole grace
            call.cancel()
            if stopping is not None:
                await asyncio.wait_for(stopping, WAIT_S)
    segs = segments(got)
    for s in segs:
        assert_translated(s)
    assert segs[1].start_ms >= 3000
    kinds = [r.WhichOneof("response") for r in got]
    assert kinds.index("draining") < kinds.index("segment", kinds.index("segment") + 1)  # the second came after it
    assert_ended(got, 2)


# -- 3. speech without text ----------------------------------------------------------------------


async def test_speech_without_text_carries_audio_and_no_translated_text(jfk: np.ndarray) -> None:
    """output text=false, speech=true: StreamStarted's resolved config says so, and each result has
    the translation's audio (and the transcript, still asked for) but no translated text on the
    wire. Translate (the unary call) answers the same way."""
    runner = FakeRunner()
    async with fake_serving(runner) as live:
        call = Call(live.stub, config(text=False, speech=True))
        call.send(jfk)
        call.close()
        got = await call.result()
        clip = await live.stub.Translate(
            pb.TranslateRequest(
                audio=pb.AudioInput(content=jfk.astype("<i2").tobytes(), format=FMT),
                source_language="eng",
                target_languages=["spa"],
                output=pb.OutputOptions(text=False, speech=True),
            ),
            timeout=WAIT_S,
        )
    out = got[0].started.config.output
    assert (out.text, out.speech, out.transcript) == (False, True, True)
    assert out.speech_encoding == pb.SPEECH_ENCODING_LINEAR16 and out.speech_sample_rate_hz == 16000
    spans = await spans_of(jfk)
    for segs in (segments(got), list(clip.segments)):
        assert [(s.start_ms, s.end_ms) for s in segs] == spans
        for s in segs:
            assert s.status.code == code_pb2.OK
            (t,) = s.translations
            assert t.target_language == "spa" and t.text == ""
            assert t.audio.num_samples == samples(s) // 2 and len(t.audio.content) == samples(s)
            assert s.transcript.text == f"n={samples(s)}"
    for r in [*got, clip]:
        assert b"spa:" not in r.SerializeToString()  # the fake's translated text never reaches the wire
    assert_ended(got, 4)


# -- 4. Timing.queue_ms --------------------------------------------------------------------------

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
        call = Call(live.stub, config())
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


# -- 5. finals and live captions -------------------------------------------------------------------


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
                a = Call(live.stub, config(speech=True))
                calls.append(a)
                a.send(silero[: 16000 * 5 // 2])  # one phrase: its final holds the model
                a_len = await featured.get()
                await asyncio.to_thread(runner.started.wait, WAIT_S)
                captions: list[int] = []
                for _ in range(2):  # B and C: speech that goes on (a 12 s phrase, 2.2 s of it sent)
                    c = Call(live.stub, config(speech=True, interim_ms=interim_ms))
                    calls.append(c)
                    c.send(silero[16000 * 20 : 16000 * 45 // 2], chunk_ms=20)
                    if interim_ms:
                        captions.append(await featured.get())  # its caption is queued
                    else:
                        await c.until(lambda got: any(r.HasField("speech_event") for r in got))
                d = Call(live.stub, config(speech=True, interim_ms=interim_ms))
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
