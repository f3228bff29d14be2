"""A segment that fails fails alone, through the wire (issue 24, item 5: paths that were
implemented but never went through the wire): the model's INTERNAL, a full queue's
RESOURCE_EXHAUSTED, speech that cannot be encoded, an unusable output built on the loop; each
comes back with its span and the stream goes on. Each test runs a real server on loopback with a
real gRPC client; the model is ``FakeRunner`` (tests/support/fake_runner.py), so faults are
injected through the Runner Protocol (its gate, ``fail_when``, ``waveform``) and every test takes
milliseconds of model time.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from google.rpc import code_pb2

from tests.support.fake_runner import FakeRunner
from tests.support.stepped_call import (
    PER_MS,
    Call,
    assert_ended,
    assert_translated,
    call_config,
    fake_serving,
    jfk_then_silence,
    samples,
    segments,
    spans_of,
    speech_ended,
)
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.client_cli.decode import load_pcm16k

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(2)]


@pytest.fixture(scope="module")
def jfk(shared_audio: Path) -> np.ndarray:
    return jfk_then_silence(shared_audio)


@pytest.fixture(scope="module")
def silero(shared_audio: Path) -> np.ndarray:
    return load_pcm16k(shared_audio / "silero_test.wav")


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
        call = Call(live.stub, call_config())
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
        call = Call(live.stub, call_config())
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
        call = Call(live.stub, call_config(speech=True, speech_encoding=encoding, speech_sample_rate_hz=rate))
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
        call = Call(live.stub, call_config(speech=True, speech_encoding=pb.SPEECH_ENCODING_LINEAR16))
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
