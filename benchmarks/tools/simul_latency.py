"""Latency of simultaneous translation as SimulEval measures it: pure functions on plain values.

One *instance* = one source utterance of ``source_ms`` ms of speech and the outputs emitted while
it was being read. Per output unit (a word for text output; a chunk of audio for speech output):

- ``delays``: ms of source consumed when the unit was emitted (*non computation-aware*, NCA);
- ``elapsed``: wall-clock ms since the source started when the unit was emitted, as measured
  (*computation-aware*, CA: it adds the time spent computing, queueing and batching);
- ``durations`` (speech output): the ms of audio in each chunk.

The metrics take whichever timestamps are asked for (``times``); the rest is the same formula.
Definitions follow facebookresearch/SimulEval at 536de82 (v1.1.4 on PyPI):
``simuleval/evaluator/scorers/latency_scorer.py`` (``StartOffsetScorer``, ``EndOffsetScorer``,
``ALScorer``, ``LAALScorer``, ``ATDScorer``, ``speechoutput_alignment_latency_scorer``) and
``simuleval/evaluator/instance.py`` (``SpeechOutputInstance.summarize``: the output timeline).

- **StartOffset** = ``times[0]``.
- **EndOffset** = ``times[-1] - source_ms`` (text); for speech, the end of the last chunk's
  playback on the output timeline minus ``source_ms``.
- **Output timeline** (speech): chunk ``i`` starts playing at ``max(times[i], end of chunk i-1)``
  and plays for ``durations[i]`` (a listener cannot hear two chunks at once; a gap is silence).
- **AL** (Ma et al. 2019, STACL), with ``|Y|`` = the reference length when given, else the number
  of outputs (SimulEval's ``use_ref_len``): ``AL = 1/tau sum_{i=1..tau} (d_i - (i-1) |X|/|Y|)``,
  ``tau`` = the first ``i`` with ``d_i >= |X|`` (or the last), ``|X|`` = ``source_ms``; if
  ``d_1 > |X|``, AL = ``d_1``.
- **LAAL** (Papi et al. 2022): AL with ``|Y|`` = ``max(outputs, reference length)``, so an
  over-long output is not rewarded.
- **ATD** (Kano et al. 2023): the mean over output tokens of (the time the token ends being
  output) - (the end time of the source token it is aligned to). Source speech is cut into
  300 ms tokens per read chunk (the source between two emissions); text output tokens last 0 ms;
  speech output chunks are cut into 300 ms tokens played on the output timeline. Outputs with
  equal ``delays`` form one chunk. Token ``t`` of output chunk ``c`` aligns to source token
  ``min(t - max(0, Y_{c-1} - X_{c-1}), X_c)``, ``X_c``/``Y_c`` = source/output tokens up to chunk
  ``c``.
- **AL/LAAL on speech output** (SimulEval's ``*_SpeechAlign_{BOW,COW,EOW}``): the delays are the
  output words' times on the output timeline (from a forced alignment of the output speech:
  a word's start, centre or end); :func:`aligned_word_delays` maps them there.

Where this differs from SimulEval, on purpose:

- SimulEval *simulates* (it feeds the source as fast as the agent reads) and its ``elapsed`` is
  delay + all computation so far; here ``elapsed`` is measured on a real-time stream, so it is
  the emission time itself. Hence CA ATD places output tokens at ``max(elapsed, previous end)``
  (SimulEval rebuilds that from its simulated per-step compute times), and the CA speech timeline
  is built from ``elapsed`` (SimulEval's speech EndOffset uses the NCA timeline even when CA, and
  its speech-aligned scorers refuse CA). NCA figures equal SimulEval's.
- An instance with no output has no latency (SimulEval skips it from the mean): the bundles
  return None; count such instances separately.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate, pairwise
from statistics import fmean

#: SimulEval's ATD: source speech and output speech are counted in tokens of 300 ms.
ATD_SPEECH_TOKEN_MS = 300.0


@dataclass(frozen=True)
class Latency:
    """One instance's scores, in ms. ``al``/``laal`` are None for speech output without word
    times (SimulEval defines them on aligned output words only)."""

    computation_aware: bool
    start_offset: float
    end_offset: float
    atd: float
    al: float | None = None
    laal: float | None = None

    def named(self) -> dict[str, float]:
        """SimulEval's names (``AL``, ``AL_CA``, ...) to the scores that are defined."""
        suffix = "_CA" if self.computation_aware else ""
        scores = {
            "StartOffset": self.start_offset,
            "EndOffset": self.end_offset,
            "ATD": self.atd,
            "AL": self.al,
            "LAAL": self.laal,
        }
        return {name + suffix: v for name, v in scores.items() if v is not None}


def _check_times(times: Sequence[float], what: str = "times") -> None:
    if not times:
        raise ValueError(f"no {what}: an instance without output has no latency")
    if any(b < a for a, b in pairwise(times)):
        raise ValueError(f"{what} must not decrease")


def start_offset(times: Sequence[float]) -> float:
    """Delay of the first output."""
    _check_times(times)
    return float(times[0])


def end_offset(times: Sequence[float], source_ms: float) -> float:
    """Delay of the last output minus the source duration (text output)."""
    _check_times(times)
    return float(times[-1]) - source_ms


def _lagging(times: Sequence[float], source_ms: float, target_len: int) -> float:
    _check_times(times)
    if source_ms <= 0 or target_len <= 0:
        raise ValueError(f"source_ms and the target length must be > 0, got {source_ms}, {target_len}")
    if times[0] > source_ms:
        return float(times[0])
    rate = source_ms / target_len  # ms of source per target unit: |X| / |Y|
    total = 0.0
    tau = 0
    for i, d in enumerate(times):
        total += d - i * rate
        tau = i + 1
        if d >= source_ms:
            break
    return total / tau


def average_lagging(times: Sequence[float], source_ms: float, reference_len: int | None = None) -> float:
    """AL with ``|Y|`` = ``reference_len`` (SimulEval's default when a reference is given), else
    the number of outputs."""
    return _lagging(times, source_ms, len(times) if reference_len is None else reference_len)


def length_adaptive_average_lagging(
    times: Sequence[float], source_ms: float, reference_len: int | None = None
) -> float:
    """LAAL: AL with ``|Y|`` = ``max(len(times), reference_len)``."""
    return _lagging(times, source_ms, max(len(times), reference_len or 0))


def playback_intervals(times: Sequence[float], durations: Sequence[float]) -> list[tuple[float, float]]:
    """The output timeline of speech chunks: ``(start, duration)`` of each, a chunk starting at
    ``max(its time, the end of the previous chunk)``."""
    _check_times(times)
    _check_durations(times, durations)
    intervals = []
    end = float(times[0])
    for t, dur in zip(times, durations, strict=True):
        start = max(float(t), end)
        intervals.append((start, float(dur)))
        end = start + dur
    return intervals


def speech_end_offset(times: Sequence[float], durations: Sequence[float], source_ms: float) -> float:
    """The end of the last chunk's playback minus the source duration (speech output)."""
    start, dur = playback_intervals(times, durations)[-1]
    return start + dur - source_ms


def aligned_word_delays(
    intervals: Sequence[tuple[float, float]], word_positions: Sequence[tuple[int, float]]
) -> list[float]:
    """Output words' delays on the output timeline: ``word_positions`` = (chunk index, ms into that
    chunk) of each word's start (BOW), centre (COW) or end (EOW), e.g. from a forced alignment."""
    delays = []
    for chunk, offset in word_positions:
        if not 0 <= chunk < len(intervals) or not 0 <= offset <= intervals[chunk][1]:
            raise ValueError(f"word position {(chunk, offset)} is outside the output chunks")
        delays.append(intervals[chunk][0] + offset)
    return delays


def _check_durations(times: Sequence[float], durations: Sequence[float]) -> None:
    if len(durations) != len(times):
        raise ValueError(f"{len(durations)} durations for {len(times)} outputs")
    if any(d < 0 for d in durations):
        raise ValueError("durations must be >= 0")


def _split(duration: float, token_ms: float) -> list[float]:
    """A span cut into ``token_ms`` tokens and the remainder (SimulEval's ``divmod``)."""
    whole, rest = divmod(duration, token_ms)
    return [token_ms] * int(whole) + ([rest] if rest != 0 else [])


def average_token_delay(
    delays: Sequence[float],
    times: Sequence[float] | None = None,
    durations: Sequence[float] | None = None,
    *,
    token_ms: float = ATD_SPEECH_TOKEN_MS,
) -> float:
    """ATD of speech input: text output when ``durations`` is None, else speech output chunks.

    ``delays`` (source consumed) define the chunks on both sides; ``times`` (default ``delays``)
    say when each output became available (``elapsed`` for CA).
    """
    times = delays if times is None else times
    _check_times(delays, "delays")
    _check_times(times)
    if len(times) != len(delays):
        raise ValueError(f"{len(times)} times for {len(delays)} delays")
    if durations is not None:
        _check_durations(delays, durations)

    # Output chunks: runs of equal delays. Per output token: its chunk, length and ready time.
    chunk_delays: list[float] = []
    tgt_sizes: list[int] = []
    tgt_chunk: list[int] = []
    tgt_len: list[float] = []
    tgt_ready: list[float] = []
    i = 0
    while i < len(delays):
        j = i
        while j < len(delays) and delays[j] == delays[i]:
            j += 1
        chunk_delays.append(float(delays[i]))
        if durations is None:  # one 0 ms token per output word
            lens = [0.0] * (j - i)
            ready = [float(t) for t in times[i:j]]
        else:  # the chunk's audio, merged, cut into tokens; each ready when its unit is
            lens = _split(float(sum(durations[i:j])), token_ms)
            unit_starts = list(accumulate(durations[i:j], initial=0.0))[:-1]
            offsets = list(accumulate(lens, initial=0.0))[: len(lens)]  # each token's start in the chunk
            ready = [float(times[i + bisect_right(unit_starts, o) - 1]) for o in offsets]
        tgt_sizes.append(len(lens))
        tgt_chunk += [len(chunk_delays) - 1] * len(lens)
        tgt_len += lens
        tgt_ready += ready
        i = j
    if not tgt_len:
        raise ValueError("the output speech has no duration")

    # Source tokens: the speech read before each output chunk, cut into tokens; their end times.
    src_sizes: list[int] = []
    src_end = [0.0]
    prev = 0.0
    for d in chunk_delays:
        pieces = _split(d - prev, token_ms)
        src_sizes.append(len(pieces))
        src_end += list(accumulate(pieces, initial=src_end[-1]))[1:]
        prev = d
    acc_src = list(accumulate(src_sizes, initial=0))  # acc_src[c] = source tokens before chunk c
    acc_tgt = list(accumulate(tgt_sizes, initial=0))

    lags = []
    end = 0.0
    for t, (c, length, at) in enumerate(zip(tgt_chunk, tgt_len, tgt_ready, strict=True), start=1):
        end = max(at, end) + length  # when this output token has been fully output
        s = min(t - max(0, acc_tgt[c] - acc_src[c]), acc_src[c + 1])
        lags.append(end - src_end[s])
    return fmean(lags)


def text_latency(
    delays: Sequence[float],
    elapsed: Sequence[float],
    source_ms: float,
    reference_len: int | None = None,
    *,
    computation_aware: bool,
) -> Latency | None:
    """All scores of one speech-to-text instance (one output unit per word); None if no output."""
    if not delays:
        return None
    times = elapsed if computation_aware else delays
    if len(times) != len(delays):
        raise ValueError(f"{len(elapsed)} elapsed for {len(delays)} delays")
    return Latency(
        computation_aware=computation_aware,
        start_offset=start_offset(times),
        end_offset=end_offset(times, source_ms),
        atd=average_token_delay(delays, times),
        al=average_lagging(times, source_ms, reference_len),
        laal=length_adaptive_average_lagging(times, source_ms, reference_len),
    )


def speech_latency(
    delays: Sequence[float],
    elapsed: Sequence[float],
    durations: Sequence[float],
    source_ms: float,
    *,
    computation_aware: bool,
    word_positions: Sequence[tuple[int, float]] | None = None,
    reference_len: int | None = None,
) -> Latency | None:
    """All scores of one speech-to-speech instance (one output unit per audio chunk); AL and LAAL
    only with ``word_positions`` (see :func:`aligned_word_delays`). None if no output."""
    if not delays:
        return None
    times = elapsed if computation_aware else delays
    if len(times) != len(delays):
        raise ValueError(f"{len(elapsed)} elapsed for {len(delays)} delays")
    intervals = playback_intervals(times, durations)
    al = laal = None
    if word_positions:
        words = aligned_word_delays(intervals, word_positions)
        al = average_lagging(words, source_ms, reference_len)
        laal = length_adaptive_average_lagging(words, source_ms, reference_len)
    last_start, last_dur = intervals[-1]
    return Latency(
        computation_aware=computation_aware,
        start_offset=start_offset(times),
        end_offset=last_start + last_dur - source_ms,
        atd=average_token_delay(delays, times, durations),
        al=al,
        laal=laal,
    )
