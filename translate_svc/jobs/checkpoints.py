"""Where a resumed job's VAD starts: a checkpoint at most ``EVERY_S`` before its resume point, so a
resume replays seconds of audio, not all of it (the whole replay cost Σ ≈ N²/2 slices of VAD for
a long job given back every ``jobs.slice_s``).

What a resumed job must equal is the uninterrupted run, exactly (tests/jobs/test_resume_exact.py):
its VAD must enter the resume point in the same state. That state is silero's recurrent state and
context and the segmenter's hysteresis (``vad/snapshot.py``), and the samples that reach them, which
come through the job's resampler (``translation.py`` resamples a job's audio to 16 kHz itself):
soxr's output depends on where its stream started, not only on the samples (its FFT blocks run
from the stream's start: a stream started at another sample differs by 1e-7 for good), except at
whole multiples of a step that depends on the rate (4.96 s at 44.1 kHz, 92 ms at 48 kHz...).
``grid`` finds that step by trying (``restart_step``: a fresh stream started there equals the
whole stream after ``PREROLL_S``, on noise, at its first three multiples), so a job is
checkpointed every ``EVERY_S`` or so on multiples of it, and a resume starts its resampler
``preroll`` before the checkpoint, throws that output away, and feeds its VAD from the checkpoint
with the checkpoint's state. Each checkpoint also keeps a digest of the 16 kHz samples just before
it; a resume whose pre-roll does not give the same samples (a decoder that does not seek exactly,
a soxr that changed) is not used: the job then replays its whole audio, as before.

Checkpoints are records in the job's folder (``vad.ckpt``, fixed size, appended on the event loop
as each is taken, a record torn by a kill cut off on reading), in either store (the folder is the
shared ``jobs.dir``). Not taken with noise suppression (RNNoise's state is not copied), nor used
when the VAD's settings changed (their fingerprint). Pure but for the file's reads and writes."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import os
import struct
from dataclasses import astuple, dataclass
from pathlib import Path

import numpy as np

from translate_svc.audio.resample import StreamResampler
from translate_svc.types import MODEL_SAMPLE_RATE
from translate_svc.vad.segmenter import WINDOW_SAMPLES, SegmenterConfig
from translate_svc.vad.snapshot import VadSnapshot

FILE = "vad.ckpt"
#: about how far apart checkpoints are (a resume replays at most this, plus the pre-roll)
EVERY_S = 10.0
#: the resampler's output thrown away before a checkpoint: soxr's own warm-up is 34 ms at 16 kHz
#: from 44.1 or 48 kHz, 104 ms from 8 kHz (measured); the pre-roll is a whole number of steps
PREROLL_S = 0.5
#: the longest step tried, and the most steps tried (a rate's first run pays at most a few
#: seconds of CPU once): a rate without one is never checkpointed (its jobs replay it all)
MAX_STEP_S = 60.0
MAX_TRIES = 512
#: the 16 kHz samples before a checkpoint whose digest a resume checks (its pre-roll's end)
TAIL = 4096
_NONE = -(2**62)
_RECORD = np.dtype(
    [
        ("frame", "<i8"),
        ("rate", "<i8"),
        ("settings", "<i8"),
        ("triggered", "<i8"),
        ("temp_end", "<i8"),
        ("tail", "S16"),
        ("rnn", "<f4", (2, 1, 128)),
        ("context", "<f4", (64,)),
    ]
)

#: a checkpoint's record in the job's file
RECORD_BYTES = _RECORD.itemsize


@dataclass(frozen=True)
class Grid:
    """Where a job at ``rate`` is checkpointed, in its input frames: on multiples of ``every``
    (itself a multiple of ``step``, where a fresh resampler joins the whole stream's output), and
    how far before one a resume starts its resampler (``preroll``)."""

    rate: int
    step: int
    every: int
    preroll: int

    def to16(self, frames: int) -> int:
        """Input frames on the grid -> 16 kHz samples (exact: a step is whole VAD windows)."""
        return frames * MODEL_SAMPLE_RATE // self.rate

    def after(self, frame: int) -> int:
        """The first checkpoint after input frame ``frame``."""
        return (frame // self.every + 1) * self.every


@dataclass(frozen=True)
class Checkpoint:
    """A record: the VAD at input ``frame`` (its snapshot's ``sample`` on the job's 16 kHz
    timeline), and the digest of the 16 kHz samples just before it."""

    frame: int
    snapshot: VadSnapshot
    tail: bytes


def settings_print(config: SegmenterConfig) -> int:
    """The VAD settings' fingerprint: a checkpoint taken under other settings is not used."""
    fields = astuple(config)[:-1]  # not eager_threshold: an eager end of turn moves no segment
    if not config.eagerness:  # the silence rule's: as before the semantic end of turn existed
        fields = fields[:-1]
    text = repr(("silero-v5", *fields))
    return int(struct.unpack("<q", hashlib.blake2b(text.encode(), digest_size=8).digest())[0])


def digest(samples16k: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(samples16k, np.float32).tobytes(), digest_size=16).digest()


def _window_frames(rate: int) -> int:
    """The fewest input frames that are a whole number of VAD windows at 16 kHz."""
    per = rate * WINDOW_SAMPLES
    return per // math.gcd(per, MODEL_SAMPLE_RATE)


def preroll_of(step: int, rate: int) -> int:
    return step * max(1, math.ceil(PREROLL_S * rate / step))


@functools.lru_cache(maxsize=32)
def restart_step(rate: int) -> int | None:
    """The least input frames, a whole number of VAD windows, at whose multiples a fresh resampler
    equals the whole stream's output after ``preroll_of`` (tried on noise: first at the step, then
    at its 2nd and 3rd multiples); None under ``MAX_STEP_S``. Runs once a rate a process (a
    fraction of a second of soxr on a worker thread; thread-safe: two may compute it at once)."""
    unit = _window_frames(rate)
    if rate == MODEL_SAMPLE_RATE:
        return unit
    most = min(int(MAX_STEP_S * rate), MAX_TRIES * unit)  # the longest step tried
    check = rate // 4
    # float32 from the start, as long as the longest step's three tries and its pre-roll need (the
    # float64 draw of a minute's steps grew a job's server by 100 MB at 48 kHz)
    noise = np.random.default_rng(7).standard_normal(4 * most + 2 * rate, dtype=np.float32)
    noise *= 0.1
    whole = StreamResampler(rate).process(noise)

    def joins(start: int, step: int) -> bool:
        pre = preroll_of(step, rate)
        out = StreamResampler(rate).process(noise[start - pre : start + check])
        at, skip = start * MODEL_SAMPLE_RATE // rate, pre * MODEL_SAMPLE_RATE // rate
        n = min(len(out) - skip, len(whole) - at)
        return n > MODEL_SAMPLE_RATE // 8 and bool(np.array_equal(out[skip : skip + n], whole[at : at + n]))

    for step in range(unit, most + 1, unit):
        pre = preroll_of(step, rate)
        if all(joins(k * step + pre, step) for k in (1, 2, 3)):
            return step
    return None


def grid(rate: int) -> Grid | None:
    """The checkpoints' grid at ``rate`` (None: none found; the job replays its whole audio)."""
    step = restart_step(rate)
    if step is None:
        return None
    return Grid(rate, step, step * max(1, round(EVERY_S * rate / step)), preroll_of(step, rate))


class Tails:
    """The digests of the 16 kHz samples before each checkpoint of a run, as its samples go by
    (``feed``, in order, from 16 kHz sample ``start`` of the job); ``take`` hands one over once
    its checkpoint is taken. Event loop only."""

    def __init__(self, start: int, every: int) -> None:
        self._pos = start
        self._every = every
        self._last = np.zeros(0, np.float32)
        self._digests: dict[int, bytes] = {}

    def feed(self, samples16k: np.ndarray) -> None:
        end = self._pos + len(samples16k)
        joined = np.concatenate([self._last, samples16k])
        base = end - len(joined)
        at = (self._pos // self._every + 1) * self._every
        while at <= end:
            if at - TAIL >= base:
                self._digests[at] = digest(joined[at - TAIL - base : at - base])
            at += self._every
        self._last = joined[-TAIL:]
        self._pos = end

    def take(self, sample: int) -> bytes | None:
        return self._digests.pop(sample, None)


def append(folder: Path, checkpoint: Checkpoint, rate: int, settings: int) -> None:
    """One record at the end of the job's file (about 1.4 KB: a write the OS buffers)."""
    s = checkpoint.snapshot
    rec = np.zeros(1, _RECORD)
    rec["frame"], rec["rate"], rec["settings"] = checkpoint.frame, rate, settings
    rec["triggered"], rec["temp_end"] = int(s.triggered), _NONE if s.temp_end is None else s.temp_end
    rec["tail"], rec["rnn"], rec["context"] = checkpoint.tail, s.rnn, s.context
    with open(folder / FILE, "ab") as f:
        f.write(rec.tobytes())


def latest_before(folder: Path, sample: int, rate: int, settings: int, earliest: int = 0) -> Checkpoint | None:
    """The job's last checkpoint strictly before 16 kHz ``sample`` (and not before ``earliest``),
    of its rate and VAD settings; None: none. A record torn by a kill is cut off. Blocking."""
    path = folder / FILE
    if disabled(folder):
        return None
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    if size % _RECORD.itemsize:
        with contextlib.suppress(FileNotFoundError):
            os.truncate(path, size - size % _RECORD.itemsize)
    records = np.fromfile(path, _RECORD, count=size // _RECORD.itemsize)
    best = None
    for rec in records:
        at = int(rec["frame"]) * MODEL_SAMPLE_RATE // rate
        if rec["rate"] == rate and rec["settings"] == settings and earliest <= at < sample:
            if best is None or at > best[0]:
                best = (at, rec)
    if best is None:
        return None
    at, rec = best
    temp_end = None if int(rec["temp_end"]) == _NONE else int(rec["temp_end"])
    snap = VadSnapshot(at, rec["rnn"].copy(), rec["context"].copy(), bool(rec["triggered"]), temp_end)
    return Checkpoint(int(rec["frame"]), snap, bytes(rec["tail"]))


def remove(folder: Path) -> None:
    """The job reached its end: its checkpoints are of no more use."""
    with contextlib.suppress(FileNotFoundError):
        (folder / FILE).unlink()


class CheckpointMismatch(Exception):
    """A resume's pre-roll did not give the samples its checkpoint was taken after: the job's
    checkpoints are put aside (``disable``) and it replays its whole audio instead."""


class JobAudio:
    """A run's samples on their way to its session: resampled to 16 kHz (one soxr stream, fed in
    order; ``process`` is blocking, on the run's read thread), the first ``drop`` samples of a
    resume's pre-roll thrown away, the last ``TAIL`` of them checked against ``tail`` (else
    ``CheckpointMismatch`` before any sample past them is given out); ``tails``: the run's
    checkpoints' digests, fed on the loop with what ``process`` gives."""

    def __init__(self, rate: int, *, drop: int = 0, tail: bytes | None = None, tails: Tails | None = None) -> None:
        self._resampler = StreamResampler(rate)
        self._drop = drop
        self._tail = tail
        self._dropped = np.zeros(0, np.float32)
        self.tails = tails

    def process(self, samples: np.ndarray, last: bool = False) -> np.ndarray:
        out = self._resampler.process(samples, last=last)
        if not self._drop:
            return out
        n = min(self._drop, len(out))
        self._drop -= n
        if self._tail is not None:
            self._dropped = np.concatenate([self._dropped, out[:n]])[-TAIL:]
            if not self._drop and digest(self._dropped) != self._tail:
                raise CheckpointMismatch("the pre-roll's samples are not those the checkpoint was taken after")
        return out[n:]


def disable(folder: Path) -> None:
    """No more checkpoints for this job (its audio does not come back the same after a seek)."""
    (folder / (FILE + ".off")).touch()
    remove(folder)


def disabled(folder: Path) -> bool:
    return (folder / (FILE + ".off")).exists()
