"""Our VAD pipeline against silero-vad's own reference implementation, on real recorded speech.

The pipeline under test is the one a session runs: each stream's silero state is scored by the
shared ``VadWorker`` (``submit(state, samples, on_done, last=...)``, batched calls on its thread),
and every result is pushed, on the event loop and in order, into the stream's ``Segmenter``, which
``finish`` closes. There is no second, synchronous path to prove instead.

Silero is imported here only, as the reference (importing it sets torch's thread count for the
whole process; the fixture puts the count back). The service itself never imports it.
"""

from __future__ import annotations

import asyncio
import functools
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from tests.support.paths import SHARED_AUDIO
from translate_svc.audio.codec import decode_audio, decode_raw
from translate_svc.audio.resample import StreamResampler, resample
from translate_svc.types import MODEL_SAMPLE_RATE, AudioEncoding, AudioFormat
from translate_svc.vad.segmenter import (
    Segmenter,
    SegmenterConfig,
    SegmenterEvent,
    SegmentReady,
    SpeechDiscarded,
    SpeechEnded,
    SpeechStarted,
)
from translate_svc.vad.silero import SileroVad
from translate_svc.vad.worker import VadWorker

pytestmark = [pytest.mark.unit, pytest.mark.slow(25)]  # seconds, for the schedule (conftest.py)

AUDIO_DIR = SHARED_AUDIO
FILES = ["jfk.flac", "silero_test.wav"]
TOLERANCE = 200 * 16  # samples at 16 kHz


@pytest.fixture(scope="module")
def audio_dir() -> Path:
    if not AUDIO_DIR.is_dir():
        pytest.fail(
            f"test audio directory {AUDIO_DIR} is missing: these tests need ../shared/audio next to the "
            "repository (jfk.flac and silero_test.wav, see its README.md)"
        )
    return AUDIO_DIR


@pytest.fixture(scope="module")
def silero() -> Iterator[SimpleNamespace]:
    import torch

    threads = torch.get_num_threads()
    import silero_vad

    torch.set_num_threads(threads)
    yield SimpleNamespace(
        torch=torch,
        model=silero_vad.load_silero_vad(onnx=True),
        get_speech_timestamps=silero_vad.get_speech_timestamps,
        from_probs=silero_vad.get_speech_timestamps_from_probs,
    )


@pytest.fixture(scope="module")
def vad() -> SileroVad:
    return SileroVad()


@pytest.fixture(scope="module")
def worker(vad: SileroVad) -> Iterator[VadWorker]:
    """The production VAD worker, with its default turn (a long clip is scored in several turns)."""
    w = VadWorker(vad)
    yield w
    w.close()


class _Stream:
    """One stream on the session's path: ``VadWorker.submit`` with the stream's own silero state,
    each result pushed into its ``Segmenter`` on the loop, in submission order; ``last=True`` with
    the final samples, then ``Segmenter.finish``. Submits do not wait, as a session's do not."""

    def __init__(self, worker: VadWorker, config: SegmenterConfig) -> None:
        self._worker = worker
        self._state = worker.vad.new_state()
        self._segmenter = Segmenter(config)
        self._events: list[SegmenterEvent] = []
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._error: BaseException | None = None
        self.probabilities: list[np.ndarray] = []  # every result, in order

    def feed(self, samples16k: np.ndarray, *, last: bool = False) -> None:
        if not len(samples16k) and not last:
            return
        self._in_flight += 1
        self._idle.clear()
        self._worker.submit(self._state, samples16k, functools.partial(self._scored, samples16k), last=last)

    def _scored(self, samples16k: np.ndarray, probs: np.ndarray | None, error: BaseException | None) -> None:
        try:
            if error is not None:
                raise error
            assert probs is not None
            self.probabilities.append(probs)
            self._events += self._segmenter.push(samples16k, probs)
        except BaseException as e:  # the worker would only log it: keep it for finish() to raise
            self._error = self._error or e
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    async def finish(self, tail: np.ndarray | None = None) -> list[SegmenterEvent]:
        """End of stream: ``tail`` (may be empty) goes with ``last=True``; then every event."""
        self.feed(np.zeros(0, dtype=np.float32) if tail is None else tail, last=True)
        await asyncio.wait_for(self._idle.wait(), 120)
        if self._error is not None:
            raise self._error
        return self._events + self._segmenter.finish()


def _load16k(audio_dir: Path, name: str) -> np.ndarray:
    data = (audio_dir / name).read_bytes()
    x, rate = decode_audio(data, AudioFormat(AudioEncoding.CONTAINER))
    return resample(x, rate)


def _segments(events: list[SegmenterEvent]) -> list[SegmentReady]:
    return [e for e in events if isinstance(e, SegmentReady)]


async def _whole(worker: VadWorker, x: np.ndarray, config: SegmenterConfig | None = None) -> list[SegmenterEvent]:
    """A whole clip, as ``Translate`` feeds it: all samples at once, then the end of the stream."""
    return await _Stream(worker, config or SegmenterConfig()).finish(x)


def _reference(silero: SimpleNamespace, x: np.ndarray, **kwargs: Any) -> list[tuple[int, int]]:
    result = silero.get_speech_timestamps(silero.torch.from_numpy(x.copy()), silero.model, **kwargs)
    return [(int(r["start"]), int(r["end"])) for r in result]


def _fmt_ms(pairs: list[tuple[int, int]]) -> str:
    return ", ".join(f"{a // 16}-{b // 16}" for a, b in pairs)


# -- probabilities -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FILES)
async def test_probabilities_equal_silero_onnx_wrapper(
    audio_dir: Path, silero: SimpleNamespace, worker: VadWorker, name: str
) -> None:
    x = _load16k(audio_dir, name)
    reference = silero.model.audio_forward(silero.torch.from_numpy(x.copy()), MODEL_SAMPLE_RATE).numpy()[0]
    whole = await worker.probabilities(worker.vad.new_state(), x, last=True)
    assert whole.shape == reference.shape
    np.testing.assert_allclose(whole, reference, atol=1e-5, rtol=0)
    # 20 ms messages, submitted without waiting, as a live stream's are
    stream = _Stream(worker, SegmenterConfig())
    for i in range(0, x.size, 320):
        stream.feed(x[i : i + 320])
    await stream.finish()
    chunked = np.concatenate(stream.probabilities)
    np.testing.assert_allclose(chunked, reference, atol=1e-5, rtol=0)


def test_vad_does_not_import_silero_package() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from translate_svc.vad.silero import SileroVad; SileroVad(); "
        "print('silero_vad' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_missing_model_is_reported_clearly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import importlib.util

    from translate_svc.vad import silero as silero_module

    with pytest.raises(silero_module.SileroModelMissing, match="does not exist"):
        SileroVad(tmp_path / "nope.onnx")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(silero_module.SileroModelMissing, match="silero-vad package is not installed"):
        silero_module.silero_onnx_path()


# -- segments against get_speech_timestamps ------------------------------------------------------


@pytest.mark.parametrize(("name", "count"), [("jfk.flac", 4), ("silero_test.wav", 19)])
async def test_segments_cover_silero_reference(
    audio_dir: Path, silero: SimpleNamespace, worker: VadWorker, name: str, count: int
) -> None:
    x = _load16k(audio_dir, name)
    reference = _reference(silero, x)
    turns = worker.batches
    events = await _whole(worker, x)
    assert worker.batches - turns >= x.size // 512 // 32  # the clip took turns on the worker, as in Translate
    ours = [(s.start_sample, s.end_sample) for s in _segments(events)]
    detail = f"\nreference ms: {_fmt_ms(reference)}\nours ms:      {_fmt_ms(ours)}"
    assert len(reference) == count, detail
    for start, end in reference:
        assert any(a - TOLERANCE <= start and end <= b + TOLERANCE for a, b in ours), f"{start}-{end}{detail}"
    for a, b in ours:
        assert any(start < b and a < end for start, end in reference), f"pure silence {a}-{b}{detail}"
    assert len(ours) == count, detail
    # Stronger: with no segment near the length cap, the segments are silero's, sample for sample.
    assert ours == reference, detail
    # One SpeechStarted/SpeechEnded bracket per segment, at its bounds (no splits here).
    starts = [e.sample for e in events if isinstance(e, SpeechStarted)]
    ends = [e.sample for e in events if isinstance(e, SpeechEnded)]
    assert list(zip(starts, ends, strict=True)) == ours
    # Blips too short to keep (both files end with one) are reported, and are not in any segment.
    for e in events:
        if isinstance(e, SpeechDiscarded):
            assert e.end_sample - e.start_sample <= 250 * 16
            assert not any(a < e.end_sample and e.start_sample < b for a, b in ours)


async def test_jfk_matches_the_documented_regions(audio_dir: Path, worker: VadWorker) -> None:
    events = await _whole(worker, _load16k(audio_dir, "jfk.flac"))
    ours = [(s.start_ms / 1000, s.end_ms / 1000) for s in _segments(events)]
    documented = [(0.3, 2.3), (3.3, 4.4), (5.4, 7.7), (8.2, 10.6)]
    assert len(ours) == len(documented)
    for (a, b), (c, d) in zip(ours, documented, strict=True):
        assert abs(a - c) <= 0.05 and abs(b - d) <= 0.05, (ours, documented)


async def test_length_cap_on_real_speech(audio_dir: Path, silero: SimpleNamespace, worker: VadWorker) -> None:
    x = _load16k(audio_dir, "silero_test.wav")
    config = SegmenterConfig(max_segment_ms=4000)
    segments = _segments(await _whole(worker, x, config))
    assert all(s.end_sample - s.start_sample <= 4000 * 16 for s in segments)
    assert any(s.reason.value == "MAX_LENGTH" for s in segments)
    covered = np.zeros(x.size, dtype=bool)
    for s in segments:
        covered[s.start_sample : s.end_sample] = True
    # All reference speech is still sent, give or take a dropped sub-min_speech tail after a cut.
    for start, end in _reference(silero, x):
        assert covered[start:end].mean() > 0.9, (start, end)


# -- streaming equals whole-file -----------------------------------------------------------------


def _raw_stream(audio_dir: Path, name: str) -> tuple[bytes, AudioFormat]:
    """The file's audio as a client would stream it: raw interleaved frames."""
    info = sf.info(str(audio_dir / name))
    if info.subtype == "PCM_16":
        frames, _ = sf.read(str(audio_dir / name), dtype="int16", always_2d=True)
        return frames.astype("<i2").tobytes(), AudioFormat(AudioEncoding.LINEAR16, info.samplerate, info.channels)
    frames, _ = sf.read(str(audio_dir / name), dtype="float32", always_2d=True)
    return frames.astype("<f4").tobytes(), AudioFormat(AudioEncoding.FLOAT32, info.samplerate, info.channels)


async def _streamed(worker: VadWorker, data: bytes, fmt: AudioFormat, chunk_ms: int) -> list[SegmenterEvent]:
    width = 2 if fmt.encoding is AudioEncoding.LINEAR16 else 4
    step = fmt.sample_rate_hz * chunk_ms // 1000 * width * fmt.channels
    resampler = StreamResampler(fmt.sample_rate_hz)
    stream = _Stream(worker, SegmenterConfig())
    for i in range(0, len(data), step):
        stream.feed(resampler.process(decode_raw(data[i : i + step], fmt)))
    return await stream.finish(resampler.process(np.zeros(0, dtype=np.float32), last=True))


@pytest.mark.parametrize("name", FILES)
async def test_streaming_in_chunks_equals_whole_file(audio_dir: Path, worker: VadWorker, name: str) -> None:
    whole = await _whole(worker, _load16k(audio_dir, name))
    data, fmt = _raw_stream(audio_dir, name)
    expected = [(type(e), getattr(e, "sample", None), getattr(e, "start_sample", None)) for e in whole]
    for chunk_ms in (20, 100, 1000):
        events = await _streamed(worker, data, fmt, chunk_ms)
        assert [(type(e), getattr(e, "sample", None), getattr(e, "start_sample", None)) for e in events] == expected
        for ours, ref in zip(_segments(events), _segments(whole), strict=True):
            assert (ours.start_sample, ours.end_sample) == (ref.start_sample, ref.end_sample)
            np.testing.assert_allclose(ours.samples, ref.samples, atol=1e-6, rtol=0)


def test_container_and_raw_decode_alike(audio_dir: Path) -> None:
    # The streaming test above relies on this: the raw frames decode to the container's samples.
    for name in FILES:
        x, rate = decode_audio((audio_dir / name).read_bytes(), AudioFormat(AudioEncoding.CONTAINER))
        data, fmt = _raw_stream(audio_dir, name)
        assert rate == fmt.sample_rate_hz
        np.testing.assert_array_equal(decode_raw(data, fmt), x)


# -- the state machine against silero's offline rules --------------------------------------------


def _feed_probs(
    config: SegmenterConfig, probs: np.ndarray, length: int, rng: np.random.Generator
) -> list[tuple[int, int]]:
    seg = Segmenter(config)
    x = np.zeros(length, dtype=np.float32)
    events: list[SegmenterEvent] = []
    done, i = 0, 0
    while i < length:
        piece = x[i : i + int(rng.integers(1, 4000))]
        i += piece.size
        ready = min(i // 512, probs.size)
        events += seg.push(piece, probs[done:ready])
        done = ready
    events += seg.push(np.zeros(0, dtype=np.float32), probs[done:])
    events += seg.finish()
    return [(s.start_sample, s.end_sample) for s in _segments(events)]


def test_state_machine_equals_silero_rules_on_random_probabilities(silero: SimpleNamespace) -> None:
    rng = np.random.default_rng(3)
    from_probs: Callable[..., list[dict[str, int]]] = silero.from_probs
    for trial in range(400):
        n = int(rng.integers(1, 600))
        walk = np.abs((np.cumsum(rng.normal(0, 0.25, n)) + 1) % 2 - 1)
        probs = (walk if trial % 3 else rng.random(n)).astype(np.float32)
        length = (n - 1) * 512 + int(rng.integers(1, 513))
        config = SegmenterConfig(
            threshold=float(rng.choice([0.3, 0.5, 0.7])),
            min_silence_ms=int(rng.choice([0, 50, 100, 300])),
            speech_pad_ms=int(rng.choice([0, 30, 100, 250])),
            min_speech_ms=int(rng.choice([0, 100, 250])),
            max_segment_ms=60_000,  # out of play: n < 600 windows < 20 s
        )
        reference = from_probs(
            [float(p) for p in probs],
            threshold=config.threshold,
            min_speech_duration_ms=config.min_speech_ms,
            min_silence_duration_ms=config.min_silence_ms,
            speech_pad_ms=config.speech_pad_ms,
            audio_length_samples=length,
        )
        expected = [(r["start"], r["end"]) for r in reference]
        ours = _feed_probs(config, probs, length, rng)
        pad = config.speech_pad_ms * 16
        if 2 * pad <= config.min_silence_ms * 16 + 512:
            assert ours == expected, (trial, config)
        else:
            # Long pads: a segment is emitted before a later blip is known to be too short, so a
            # right pad next to a dropped blip may be shorter than silero's; never by more than a pad.
            assert len(ours) == len(expected), (trial, config)
            for (a, b), (c, d) in zip(ours, expected, strict=True):
                assert abs(a - c) <= pad and abs(b - d) <= pad, (trial, config, ours, expected)


def test_container_bytes_roundtrip_helper_is_not_trivial() -> None:
    # Guard for the helpers above: a FLOAT32 stereo stream really averages the channels.
    frames = np.array([[0.5, -0.5], [0.25, 0.75]], dtype="<f4")
    np.testing.assert_array_equal(
        decode_raw(frames.tobytes(), AudioFormat(AudioEncoding.FLOAT32, 44100, 2)),
        np.array([0.0, 0.5], dtype=np.float32),
    )
    buf = io.BytesIO()
    sf.write(buf, frames, 44100, format="WAV", subtype="FLOAT")
    np.testing.assert_array_equal(decode_audio(buf.getvalue(), AudioFormat(AudioEncoding.CONTAINER))[0], [0.0, 0.5])
