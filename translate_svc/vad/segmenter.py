"""Streaming speech segmentation: per-window speech probabilities in, speech segments out.

A pure, synchronous state machine (no I/O, no model): it takes the 16 kHz samples of a stream and
one speech probability per 512-sample window (from :mod:`translate_svc.vad.silero`) and emits
events. Whole-clip ``Translate`` feeds everything and calls :meth:`Segmenter.finish`; a live
stream feeds chunk by chunk. Decisions depend only on the window sequence, never on how it was
chunked, so both give identical segments.

The rules are those of silero-vad's offline ``get_speech_timestamps`` (``threshold``,
``neg_threshold = threshold - 0.15``, ``min_silence``, ``min_speech``, ``speech_pad`` on both sides
split evenly when two segments are closer than two pads), made causal: a segment is emitted as
soon as ``min_silence`` of non-speech has followed it (with default settings; with a pad longer
than about half of ``min_silence + 32 ms`` it waits until its right pad is known, at most two pads
past the speech end). With ``max_segment_ms`` out of play, the segments equal silero's exactly.

Two deliberate additions:

- A length cap (``max_segment_ms``), because the translation model degrades and runs out of
  memory on long inputs. It fires after the window past which one more window and its pad could
  exceed the cap, and cuts there, at the end of the audio in hand: the first part is emitted at
  once (see :meth:`Segmenter._cut_at_cap`). A cut anywhere earlier (silero's own at the longest
  earlier pause, or at the least speech-like point of a span) would hold that part back until the
  cap is reached, and one at a dip before the cap would also split speech that ends under it; as
  it is, the regions the cap does not reach are silero's.
- Dropped speech is never silent: a region shorter than ``min_speech`` yields ``SpeechDiscarded``.
- A semantic end of turn (``eagerness``, off by default): at a pause of ``min_silence``, the open
  region's audio goes out as a ``TurnQuestion`` and the segmenter waits for its ``answer`` (the
  end-of-turn model's probability that the turn is complete, ``vad/turn_end.py``), processing no
  window meanwhile: so the segments still depend only on the windows and the answers, never on
  when an answer comes or how the audio was chunked. Complete (at least the eagerness's
  ``threshold``): the segment closes at the pause as the silence rule would have. Incomplete: the
  pause is not asked again, and the segment closes only if the pause lasts the eagerness's
  ``bound_ms`` (the silence rule, longer), so a breath or a hesitation mid-sentence does not cut
  it. A pause in progress when the cap fires closes there instead of being cut into.
- An eager end of turn (``eager_threshold``, off by default): an incomplete answer of at least it
  emits ``EagerEnd``, the segment as it would close at that pause, so its translation can start
  now (speculation); if speech resumes before the pause closes, ``SpeechResumed`` says the
  speculation is void (the segment goes on). Any segment emitted ends it: one whose span is the
  ``EagerEnd``'s is the speculation confirmed.
- A lead-in (``lead_in``): a resumed call sends again some audio the call it continues had
  translated, so that silero's state enters the resume point as that call's did (a fresh state
  scores speech in progress far lower for about half a second: a tail held open at
  ``neg_threshold`` was lost, seen in a rolling restart). Its windows only move the hysteresis;
  nothing before the lead-in's end is emitted, and speech open across it continues from there as
  after a cap's cut.

Only a bounded amount of audio is held: the open segment (at most ``max_segment_ms``) plus its
pads and less than one window not yet scored.

Event contract:

- ``SpeechStarted`` / ``SpeechEnded`` bracket each speech region that yields audio, so a client
  never sees start/end for a blip that is then dropped: ``SpeechStarted`` comes once the speech
  has lasted longer than ``min_speech`` (it is then sure to be kept; 250 ms after its onset by
  default) or, at the latest, just before the region's first segment. Its offset is the padded
  start, as if it had been sent at once. ``SpeechEnded`` comes right after the region's last
  ``SegmentReady``, at its end.
- Between them: one or more ``SegmentReady`` (several when the cap split the region), and at most
  one ``SpeechDiscarded`` (a remainder after a cut that was too short).
- ``SpeechDiscarded`` alone, outside any bracket: a blip not longer than ``min_speech``.
- Segments are in stream order and never overlap; pieces of one split region tile exactly (each
  sample emitted once).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum

import numpy as np

from translate_svc.errors import InvalidInput
from translate_svc.types import MODEL_SAMPLE_RATE

logger = logging.getLogger(__name__)

#: Samples per VAD window at 16 kHz (32 ms): probability ``i`` describes samples [512 i, 512 (i + 1)).
WINDOW_SAMPLES = 512
_PER_MS = MODEL_SAMPLE_RATE // 1000


def samples_to_ms(sample: int) -> int:
    """Offset in whole milliseconds (floor) of a sample index of the 16 kHz stream."""
    return sample * 1000 // MODEL_SAMPLE_RATE


#: The range of each millisecond field of :class:`SegmenterConfig` (both ends allowed).
MS_RANGES: dict[str, tuple[int, int]] = {
    "min_silence_ms": (0, 10_000),
    "speech_pad_ms": (0, 2_000),
    "min_speech_ms": (0, 10_000),
    "max_segment_ms": (1_000, 60_000),
}


@dataclass(frozen=True)
class Eagerness:
    """The semantic end of turn at one eagerness: a paused turn the model calls complete with at
    least ``threshold`` closes at once; any other closes once its pause lasts ``bound_ms``."""

    threshold: float
    bound_ms: int


#: OpenAI's ``semantic_vad`` eagerness values (their longest waits are 8, 4 and 2 s; ``auto`` is
#: ``medium``): the more eager, the less sure the model must be, and the shorter the wait
_MEDIUM = Eagerness(0.5, 4_000)
EAGERNESS: dict[str, Eagerness] = {
    "low": Eagerness(0.7, 8_000),
    "medium": _MEDIUM,
    "high": Eagerness(0.3, 2_000),
    "auto": _MEDIUM,
}

#: the audio a ``TurnQuestion`` carries: the turn's last 8 s at most (what the model reads)
TURN_CONTEXT_SAMPLES = 8 * MODEL_SAMPLE_RATE


class VadConfigError(InvalidInput, ValueError):
    """A VAD parameter out of range. ``InvalidInput`` so a stream's override is refused with
    INVALID_ARGUMENT; ``ValueError`` so pydantic reports a bad server setting as a validation
    error of ``Settings`` at start-up. The message names each bad field, its value and its range."""


@dataclass(frozen=True)
class SegmenterConfig:
    """Segmentation parameters: the one VAD configuration of the service, validated here only.

    The server's defaults are this type (``Settings.vad``, filled from ``TRANSLATE_SVC_VAD__*``
    by pydantic, which calls ``__post_init__``), and a stream's overrides are
    ``dataclasses.replace(defaults, **overrides)`` (``transport/grpc/convert.py``), so every instance
    that exists is valid. Defaults equal silero-vad's ``get_speech_timestamps`` defaults, plus a
    segment length cap. Immutable, so one instance is shared by any number of streams.
    """

    threshold: float = 0.5
    min_silence_ms: int = 100
    speech_pad_ms: int = 30
    min_speech_ms: int = 250
    max_segment_ms: int = 15_000
    #: the semantic end of turn's eagerness (``EAGERNESS``); "" (the default): the silence rule
    eagerness: str = ""
    #: an incomplete answer of at least this starts the paused segment's translation at once
    #: (``EagerEnd``, then ``SpeechResumed`` if speech resumes); 0 (the default): no eager end.
    #: The last field: a job checkpoint's fingerprint leaves it out (``jobs/checkpoints.py``)
    eager_threshold: float = 0.0

    def __post_init__(self) -> None:
        problems = []
        if self.eagerness and self.eagerness not in EAGERNESS:
            problems.append(
                f"vad.eagerness={self.eagerness!r} is not one this server knows: use {', '.join(EAGERNESS)}, "
                "or leave it empty for the silence rule"
            )
        if not 0.0 <= self.eager_threshold < 1.0:  # NaN too
            problems.append(
                f"vad.eager_threshold={self.eager_threshold} is out of range: use a value from 0 (none) up to, "
                "not including, 1"
            )
        if not 0.0 < self.threshold < 1.0:  # NaN too
            problems.append(f"vad.threshold={self.threshold} is out of range: use a value strictly between 0 and 1")
        for name, (lo, hi) in MS_RANGES.items():
            value = getattr(self, name)
            if not lo <= value <= hi:
                problems.append(f"vad.{name}={value} is out of range: use {lo}..{hi} ms")
        if not problems:
            # Every piece of a capped region is then over two thirds of the cap: see _cut_at_cap.
            least = 3 * (self.speech_pad_ms + 2 * WINDOW_SAMPLES // _PER_MS)
            if self.max_segment_ms < least:
                problems.append(
                    f"vad.max_segment_ms={self.max_segment_ms} is too short for vad.speech_pad_ms="
                    f"{self.speech_pad_ms}: use at least 3 x (speech_pad_ms + 64) = {least} ms, or a shorter pad"
                )
        if problems:
            raise VadConfigError("; ".join(problems))

    @property
    def eagerness_rule(self) -> Eagerness | None:
        """The semantic end of turn's rule, or None: the silence rule alone."""
        return EAGERNESS.get(self.eagerness) if self.eagerness else None

    @property
    def eager(self) -> float:
        """The eager end of turn's threshold in force: ``eager_threshold`` where the eagerness has
        one above it (a server's default applies to the streams whose eagerness allows it), else 0."""
        rule = self.eagerness_rule
        return self.eager_threshold if rule is not None and self.eager_threshold < rule.threshold else 0.0

    def check_eager(self) -> None:
        """A caller's own ``eager_threshold`` (not the server's default): refused, saying why,
        unless the eagerness asked has a threshold above it."""
        if not self.eager_threshold:
            return
        rule = self.eagerness_rule
        if rule is None:
            raise VadConfigError(
                f"vad.eager_threshold={self.eager_threshold} needs a semantic end of turn: set vad.eagerness too, "
                "or leave vad.eager_threshold at 0"
            )
        if self.eager_threshold >= rule.threshold:
            raise VadConfigError(
                f"vad.eager_threshold={self.eager_threshold} is out of range: use a value above 0 and below "
                f"{rule.threshold} (where vad.eagerness={self.eagerness!r} calls a turn complete), or 0 for none"
            )

    @property
    def neg_threshold(self) -> float:
        """Below this a window counts as silence once speech is on (silero's hysteresis)."""
        return max(self.threshold - 0.15, 0.01)


class EndReason(str, Enum):
    """Why a segment ended where it did (for logs and metrics)."""

    SILENCE = "SILENCE"  # min_silence of non-speech followed it
    MAX_LENGTH = "MAX_LENGTH"  # cut by max_segment_ms; the speech goes on in the next segment
    FLUSH = "FLUSH"  # the client asked to end the segment
    TURN = "TURN"  # the end-of-turn model called the paused turn complete
    END_OF_STREAM = "END_OF_STREAM"


@dataclass(frozen=True)
class SpeechStarted:
    """A speech region that will yield audio opened; ``sample`` is its padded start (16 kHz)."""

    sample: int

    @property
    def offset_ms(self) -> int:
        return samples_to_ms(self.sample)


@dataclass(frozen=True)
class SpeechEnded:
    """The region closed; ``sample`` is the end of its last segment."""

    sample: int

    @property
    def offset_ms(self) -> int:
        return samples_to_ms(self.sample)


@dataclass(frozen=True, eq=False)
class SegmentReady:
    """Speech to translate: ``samples`` is exactly ``stream[start_sample:end_sample]`` at 16 kHz."""

    start_sample: int
    end_sample: int
    samples: np.ndarray
    reason: EndReason

    @property
    def start_ms(self) -> int:
        return samples_to_ms(self.start_sample)

    @property
    def end_ms(self) -> int:
        return samples_to_ms(self.end_sample)


@dataclass(frozen=True)
class SpeechDiscarded:
    """Speech in ``[start_sample, end_sample)`` (unpadded) was dropped: not longer than min_speech."""

    start_sample: int
    end_sample: int

    @property
    def duration_ms(self) -> int:
        return samples_to_ms(self.end_sample - self.start_sample)


@dataclass(frozen=True, eq=False)
class TurnQuestion:
    """Is the turn paused at ``pause`` complete? Answer with ``Segmenter.answer(question, p)``:
    until then the segmenter processes no window. ``samples``: the open segment's audio up to
    ``sample`` (the end of the window that asked), its last ``TURN_CONTEXT_SAMPLES`` at most."""

    pause: int  # the pause's first silent sample (where the segment's speech ends if it closes)
    sample: int
    samples: np.ndarray


@dataclass(frozen=True, eq=False)
class EagerEnd:
    """The model called the turn paused at ``pause`` incomplete, but at least ``eager_threshold``
    likely complete: were the pause to close it, the segment would be ``samples`` =
    ``stream[start_sample:end_sample]`` (a full right pad). Its translation may start now."""

    pause: int
    start_sample: int
    end_sample: int
    samples: np.ndarray


@dataclass(frozen=True)
class SpeechResumed:
    """Speech resumed at ``sample`` after the pause an ``EagerEnd`` was about: its segment goes on."""

    pause: int
    sample: int

    @property
    def offset_ms(self) -> int:
        return samples_to_ms(self.sample)


SegmenterEvent = SpeechStarted | SpeechEnded | SegmentReady | SpeechDiscarded | TurnQuestion | EagerEnd | SpeechResumed


class _SampleBuffer:
    """The stream's samples from absolute index ``start`` onward; amortised O(1) append and trim."""

    def __init__(self) -> None:
        self._data = np.zeros(1 << 14, dtype=np.float32)
        self._lo = 0
        self._hi = 0
        self.start = 0

    @property
    def end(self) -> int:
        return self.start + self._hi - self._lo

    def append(self, x: np.ndarray) -> None:
        n = x.size
        if self._hi + n > self._data.size:
            live = self._hi - self._lo
            if live + n > self._data.size // 2:
                grown = np.zeros(max(2 * self._data.size, 2 * (live + n)), dtype=np.float32)
                grown[:live] = self._data[self._lo : self._hi]
                self._data = grown
            else:
                self._data[:live] = self._data[self._lo : self._hi]
            self._lo, self._hi = 0, live
        self._data[self._hi : self._hi + n] = x
        self._hi += n

    def slice(self, a: int, b: int) -> np.ndarray:
        if not self.start <= a <= b <= self.end:  # a bug in Segmenter, never the caller's input
            raise RuntimeError(f"samples [{a}, {b}) are not buffered (buffer holds [{self.start}, {self.end}))")
        return self._data[self._lo + a - self.start : self._lo + b - self.start].copy()

    def discard_before(self, a: int) -> None:
        a = min(max(a, self.start), self.end)
        self._lo += a - self.start
        self.start = a


@dataclass
class _Closed:
    """A kept segment whose speech ended but whose right pad depends on the next speech start."""

    start: int
    end_raw: int
    reason: EndReason = EndReason.SILENCE


class Segmenter:
    """Turns (samples, per-window probabilities) into segmentation events for one stream.

    Not thread-safe: one instance per stream, driven by one caller at a time. Pure: no I/O, no
    clock, no model; the same inputs always give the same events, however they are chunked.
    """

    def __init__(
        self, config: SegmenterConfig, *, lead_in: int = 0, hysteresis: tuple[bool, int | None] = (False, None)
    ) -> None:
        """``lead_in``: samples at the start of the stream that were translated already (a resumed
        call's lead-in): listened to, never emitted. ``hysteresis``: the lead-in's starting state
        (``hysteresis()`` of a segmenter at the sample this stream starts at, its pause's start on
        this stream: a resume from a snapshot, ``vad/snapshot.py``); a fresh stream's otherwise."""
        if lead_in < 0:
            raise ValueError("lead_in must not be negative")
        if hysteresis != (False, None) and not lead_in:
            raise ValueError("a segmenter starts from a hysteresis only with a lead-in")
        self.config = config
        self._thr = config.threshold
        self._neg = config.neg_threshold
        self._pad = config.speech_pad_ms * _PER_MS
        self._min_silence = config.min_silence_ms * _PER_MS
        self._min_speech = config.min_speech_ms * _PER_MS
        self._max = config.max_segment_ms * _PER_MS
        self._turn = config.eagerness_rule
        #: the pause that closes a segment: the silence rule's, or the semantic rule's bound
        self._bound = self._min_silence if self._turn is None else max(self._min_silence, self._turn.bound_ms * _PER_MS)
        self._question: TurnQuestion | None = None  # asked and not answered: no window is processed
        self._asked: int | None = None  # the pause (its ``_temp_end``) last asked about
        self._eager = config.eager
        self._eager_pause: int | None = None  # the pause of the last EagerEnd, until its segment closes
        self._finishing = False

        self._buf = _SampleBuffer()
        self._queued: list[float] = []  # probabilities whose windows are not complete yet
        self._windows = 0  # windows processed
        self._finished = False

        self._triggered = False
        self._announced = False  # SpeechStarted sent for the open region
        self._start_raw = 0  # where the open region's speech (or its continuation after a cut) starts
        self._seg_start = 0  # padded start of the open segment
        self._continuation = False  # the open segment follows a MAX_LENGTH cut
        self._temp_end: int | None = None  # first silent window of a pause in progress
        self._closed: _Closed | None = None
        self._prev_end = lead_in  # end of the last emitted segment: nothing may start before it
        #: windows ending at or before it only move the hysteresis; 0 once a window reaches past it
        self._lead_in = lead_in
        self._triggered, self._temp_end = hysteresis

    def hysteresis(self) -> tuple[bool, int | None]:
        """Whether speech is on, and the first silent window of a pause in progress: all that the
        windows so far leave for a lead-in started here (the rest is in the windows' segments).
        The same whether those windows were a lead-in or not: both move it by silero's rules."""
        return self._triggered, self._temp_end

    @property
    def samples_seen(self) -> int:
        """Samples pushed so far (the length of the stream)."""
        return self._buf.end

    @property
    def buffered_samples(self) -> int:
        """Samples currently held (bounded by max_segment + pads + one window)."""
        return self._buf.end - self._buf.start

    @property
    def holds_speech(self) -> bool:
        """Speech that ``flush`` would close into a segment now: an open region, or a closed one
        still waiting for its right pad."""
        return (self._triggered and not self._lead_in) or self._closed is not None

    def open_speech(self) -> tuple[int, np.ndarray] | None:
        """The open segment so far, for live captions: its padded start sample and a copy of its
        samples up to the last window processed. None unless announced speech is open (after
        ``SpeechStarted``, before its segment closes). Reads only; changes nothing."""
        if not (self._triggered and self._announced):
            return None
        end = min(self._windows * WINDOW_SAMPLES, self._buf.end)
        if end <= self._seg_start:
            return None
        return self._seg_start, self._buf.slice(self._seg_start, end)

    def push(self, samples: np.ndarray, probs: np.ndarray) -> list[SegmenterEvent]:
        """Append stream samples and window probabilities; return the events they complete.

        ``probs[i]`` continues the stream's window sequence. Samples and probabilities may arrive
        in any split (a window is processed once both its 512 samples and its probability are in).
        """
        self._check_open()
        x = np.asarray(samples, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"expected 1-D samples, got shape {x.shape}")
        self._buf.append(x)
        self._queued.extend(float(p) for p in np.asarray(probs, dtype=np.float32).ravel())
        events: list[SegmenterEvent] = []
        self._drain(events, final=False)
        self._trim()
        return events

    def flush(self) -> list[SegmenterEvent]:
        """End the open segment now, as if the speaker had paused (the client asked for it).

        Its right pad reaches at most to the last sample pushed. Windows not yet scored are not
        looked at; speech in them opens the next segment.
        """
        self._check_open()
        self._question = None  # its answer comes too late to matter
        events: list[SegmenterEvent] = []
        if self._lead_in:  # speech open in the lead-in: the call it resumes closed it
            self._triggered = False
            self._temp_end = None
            return events
        if self._closed is not None:
            self._emit_closed(events, min(self._closed.end_raw + self._pad, self._buf.end))
        if self._triggered:
            end_raw = self._temp_end if self._temp_end is not None else self._windows * WINDOW_SAMPLES
            self._close(events, end_raw, EndReason.FLUSH, limit=self._buf.end)
        self._trim()
        return events

    def finish(self) -> list[SegmenterEvent]:
        """End of stream: process the last (possibly partial) window and close any open speech.

        Every pushed sample must be covered by a probability (the last window zero-padded, as
        silero scores the tail of a clip). As in silero, open speech runs to the end of the stream.
        """
        self._check_open()
        if self._question is not None:
            raise RuntimeError("finish() came before the answer to the segmenter's TurnQuestion")
        self._finishing = True  # the end closes the open speech: no question is asked now
        length = self._buf.end
        expected = -(-length // WINDOW_SAMPLES)
        if self._windows + len(self._queued) != expected:
            raise ValueError(
                f"finish() needs one probability per window: {length} samples make {expected} windows "
                f"(the last one may be partial), got {self._windows + len(self._queued)}"
            )
        events: list[SegmenterEvent] = []
        self._drain(events, final=True)
        if self._lead_in:  # the stream ended inside its lead-in: nothing new to translate
            self._triggered = False
        if self._closed is not None:
            self._emit_closed(events, min(self._closed.end_raw + self._pad, length))
        if self._triggered:
            if self._continuation and self._temp_end is not None and self._temp_end <= self._start_raw:
                self._end_region(events, self._seg_start)  # only silence after the cut
            elif self._turn is not None and self._temp_end is not None:
                # a pause the semantic rule held open: the speech ended where it began
                self._close(events, self._temp_end, EndReason.END_OF_STREAM, limit=length)
            else:
                self._close(events, length, EndReason.END_OF_STREAM, limit=length)
        self._finished = True
        self._buf.discard_before(self._buf.end)
        return events

    @property
    def asking(self) -> TurnQuestion | None:
        """The question the segmenter waits for an answer to (it processes no window meanwhile)."""
        return self._question

    def answer(self, question: TurnQuestion, complete: float) -> list[SegmenterEvent]:
        """The end-of-turn model's probability that ``question``'s turn is complete; returns the
        events of the windows that waited for it. An answer to a question no longer asked (the
        segment was flushed meanwhile) changes nothing."""
        self._check_open()
        if question is not self._question:
            return []
        self._question = None
        events: list[SegmenterEvent] = []
        assert self._turn is not None and self._triggered and self._temp_end is not None
        if complete >= self._turn.threshold:
            self._close_on_silence(events, question.sample - WINDOW_SAMPLES, EndReason.TURN)
        elif self._eager and complete >= self._eager:
            self._eager_end(events, question)
        self._drain(events, final=False)
        self._trim()
        return events

    # -- window loop -------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._finished:
            raise RuntimeError("the segmenter has finished; create a new one per stream")

    def _drain(self, events: list[SegmenterEvent], *, final: bool) -> None:
        consumed = 0
        for p in self._queued:
            if self._question is not None:  # waiting for its answer (``answer``)
                break
            cur = self._windows * WINDOW_SAMPLES
            available = self._buf.end - cur
            if available < WINDOW_SAMPLES and not (final and available > 0):
                break
            self._step(events, cur, p)
            self._windows += 1
            consumed += 1
        del self._queued[:consumed]

    def _step(self, events: list[SegmenterEvent], cur: int, p: float) -> None:
        """One window, in the order of silero's ``get_speech_timestamps`` loop; then the cap."""
        if self._lead_in:
            if cur + WINDOW_SAMPLES <= self._lead_in:
                self._lead_in_step(cur, p)
                return
            self._end_lead_in()
        if p >= self._thr and self._temp_end is not None:
            if self._eager_pause == self._temp_end:
                events.append(SpeechResumed(self._eager_pause, cur))
                self._eager_pause = None
            self._temp_end = None
        if p >= self._thr and not self._triggered:
            self._open(events, cur)
        elif self._triggered:
            if p < self._neg:
                if self._temp_end is None:
                    self._temp_end = cur
                silent = cur - self._temp_end
                if silent >= self._bound:
                    self._close_on_silence(events, cur)
                elif silent >= self._min_silence and self._turn is not None and self._asked != self._temp_end:
                    if self._temp_end - self._start_raw <= self._min_speech:
                        self._close_on_silence(events, cur)  # too short to keep: dropped as by the silence rule
                    else:
                        self._ask(events, cur)
            if self._triggered:
                self._confirm(events, cur)
        if self._triggered:
            self._cut_at_cap(events, cur)
        elif self._closed is not None:
            # No speech can start before the next window: once that is two pads past the speech
            # end, the right pad is a full pad whatever comes next.
            if cur + WINDOW_SAMPLES - self._closed.end_raw >= 2 * self._pad:
                self._emit_closed(events, self._closed.end_raw + self._pad)

    def _lead_in_step(self, cur: int, p: float) -> None:
        """A lead-in window: silero's hysteresis alone (open at ``threshold``, close after
        ``min_silence`` below ``neg_threshold``); what it covers was emitted by the earlier call."""
        if p >= self._thr:
            self._temp_end = None
            if not self._triggered:
                self._triggered = True
                self._start_raw = cur
        elif self._triggered and p < self._neg:
            if self._temp_end is None:
                self._temp_end = cur
            if cur - self._temp_end >= self._min_silence:
                self._triggered = False
                self._temp_end = None

    def _end_lead_in(self) -> None:
        """The first window reaching past the lead-in: speech open across its end goes on from
        there, as after a cap's cut (a short remainder is reported discarded; a pause in progress
        that lasts ends it without a trace)."""
        end, self._lead_in = self._lead_in, 0
        if self._triggered:
            self._continuation = True
            self._start_raw = end
            self._seg_start = end
            self._announced = False

    def _open(self, events: list[SegmenterEvent], cur: int) -> None:
        start = max(0, cur - self._pad)
        if self._closed is not None:
            gap = cur - self._closed.end_raw  # < 2 pads, or it would have been emitted
            self._emit_closed(events, self._closed.end_raw + gap // 2)
            start = cur - gap // 2
        start = max(start, self._prev_end)
        self._triggered = True
        self._continuation = False
        self._start_raw = cur
        self._seg_start = start
        self._temp_end = None
        self._announced = False
        self._confirm(events, cur)

    def _confirm(self, events: list[SegmenterEvent], cur: int) -> None:
        """Announce the region once it is sure to be kept.

        With no pause in progress, the region's speech end (the first silent window of its final
        pause, or the end of the stream) cannot come before the end of window ``cur``.
        """
        if not self._announced and self._temp_end is None:
            if min(cur + WINDOW_SAMPLES, self._buf.end) - self._start_raw > self._min_speech:
                self._announce(events)

    def _announce(self, events: list[SegmenterEvent]) -> None:
        if not self._announced:
            self._announced = True
            events.append(SpeechStarted(self._seg_start))

    def _ask(self, events: list[SegmenterEvent], cur: int) -> None:
        """Ask whether the turn paused at ``_temp_end`` is complete (once a pause), unless the
        stream is ending (the end closes it)."""
        assert self._temp_end is not None
        self._asked = self._temp_end
        end = cur + WINDOW_SAMPLES
        if self._finishing or end > self._buf.end:
            return
        self._question = TurnQuestion(
            self._temp_end, end, self._buf.slice(max(self._seg_start, end - TURN_CONTEXT_SAMPLES), end)
        )
        events.append(self._question)

    def _eager_end(self, events: list[SegmenterEvent], question: TurnQuestion) -> None:
        """The segment as it would close at ``question``'s pause, for its translation to start now:
        a full right pad (the pause closes it at the bound, at least two pads on), clipped to the
        audio the question heard (a pad longer than the pause so far: a close at the bound then
        gives a longer one, and the spans differ)."""
        self._eager_pause = question.pause
        end = min(question.pause + self._pad, question.sample)
        events.append(EagerEnd(question.pause, self._seg_start, end, self._buf.slice(self._seg_start, end)))

    def _close_on_silence(self, events: list[SegmenterEvent], cur: int, reason: EndReason = EndReason.SILENCE) -> None:
        assert self._temp_end is not None
        end_raw = self._temp_end
        if not self._keep(events, end_raw):
            return
        self._announce(events)
        self._triggered = False
        self._temp_end = None
        # The next speech starts at the next window at the earliest.
        if cur + WINDOW_SAMPLES - end_raw >= 2 * self._pad:
            self._emit(events, self._seg_start, end_raw + self._pad, reason)
        else:
            self._closed = _Closed(self._seg_start, end_raw, reason)

    def _close(self, events: list[SegmenterEvent], end_raw: int, reason: EndReason, *, limit: int) -> None:
        """Close the open segment at ``end_raw`` with a full right pad clipped to ``limit``."""
        if self._keep(events, end_raw):
            self._announce(events)
            self._emit(events, self._seg_start, min(end_raw + self._pad, limit), reason)
        self._triggered = False
        self._temp_end = None

    def _keep(self, events: list[SegmenterEvent], end_raw: int) -> bool:
        """Apply min_speech to the open segment; on a drop, emit the events and reset to idle."""
        if self._continuation and end_raw <= self._start_raw:
            # The speech ended before the cut: the first part already holds all of it.
            self._end_region(events, self._seg_start)
            return False
        if end_raw - self._start_raw > self._min_speech:
            return True
        logger.debug("speech [%d, %d) shorter than min_speech: discarded", self._start_raw, end_raw)
        events.append(SpeechDiscarded(self._start_raw, end_raw))
        self._end_region(events, self._prev_end)  # only a remainder after a cut is announced
        return False

    def _end_region(self, events: list[SegmenterEvent], sample: int) -> None:
        if self._announced:
            events.append(SpeechEnded(sample))
        self._eager_pause = None
        self._triggered = False
        self._temp_end = None

    def _cut_at_cap(self, events: list[SegmenterEvent], cur: int) -> None:
        """Cut the open segment at the end of window ``cur`` if one more window with its right pad
        could take it past ``max_segment_ms``, and emit the first part now (MAX_LENGTH).

        The cut is where the audio in hand ends, so nothing waits: the first part is emitted with
        the window that ends it, and the region goes on from the cut. Any earlier cut point is
        chosen only now, so its part would come as late as the cut is early (the search of the last
        third that was here came up to a third of the cap, 5 s, after its end); cutting
        at a dip before the cap fires would split regions that end under the cap. Each piece cut
        off is longer than the cap less a window and a pad, which the config check
        (``max_segment_ms >= 3 x (pad + 64 ms)``) makes more than two thirds of the cap.
        """
        end = cur + WINDOW_SAMPLES
        if end > self._buf.end:  # the stream's last, partial window: finish() closes the region
            return
        if end + WINDOW_SAMPLES + self._pad - self._seg_start <= self._max:
            return
        if self._turn is not None and self._temp_end is not None and self._temp_end > self._start_raw:
            # a pause the semantic rule holds open: the speech ended there, within the cap
            self._question = None
            self._close_on_silence(events, cur)
            return
        self._announce(events)
        self._emit(events, self._seg_start, end, EndReason.MAX_LENGTH)
        self._continuation = True
        self._start_raw = end
        self._seg_start = end

    # -- output ------------------------------------------------------------------------------

    def _emit_closed(self, events: list[SegmenterEvent], end: int) -> None:
        assert self._closed is not None
        closed, self._closed = self._closed, None
        self._emit(events, closed.start, end, closed.reason)

    def _emit(self, events: list[SegmenterEvent], start: int, end: int, reason: EndReason) -> None:
        events.append(SegmentReady(start, end, self._buf.slice(start, end), reason))
        self._prev_end = end
        self._eager_pause = None  # the eager end's segment, or another: either way, it is over
        if reason is not EndReason.MAX_LENGTH:
            events.append(SpeechEnded(end))

    def _trim(self) -> None:
        if self._triggered and not self._lead_in:  # (speech in a lead-in is never emitted: not kept)
            keep = self._seg_start
        elif self._closed is not None:
            keep = self._closed.start
        else:
            keep = max(self._prev_end, self._windows * WINDOW_SAMPLES - self._pad)
        self._buf.discard_before(keep)
