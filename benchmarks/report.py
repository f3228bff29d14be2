"""Statistics of a load-generator run: pure functions on plain values (no I/O, no clocks, no gRPC).

``loadgen.py`` only measures (when things were sent and arrived, what batches ran); every number it
reports is computed here, so the arithmetic is unit-tested (tests/unit/test_bench_report.py).

Definitions (``DEFINITIONS`` is copied into the JSON report):

- A paced stream sends chunk ``k`` (audio ``[k*c, (k+1)*c)`` ms) at ``start + (k+1)*c/speed``: the
  moment its last sample would exist in a live capture. Audio offset ``t`` on a chunk boundary is
  thus sent at ``start + t/speed``; inside a chunk, at the end of that chunk.
- **Segment latency** = arrival of the ``segment`` response - the (scheduled) time the stream had sent
  its audio up to ``segment.end_ms``. It includes the segmenter's wait for silence (``min_silence_ms``
  minus ``speech_pad_ms``), the queue, the model and the transport. A segment result carries its
  translated speech, so this is also the latency to the first translated audio of that segment.
- A stream **fell behind** if its ``ended`` response arrived more than ``behind_s`` after its last
  audio was sent (or never arrived).
- **Streams sustained** = N if the real-time phase ran all N streams with p95 segment latency <=
  ``slo_ms``, no stream fell behind, no call failed and no segment failed; otherwise 0 (this run does
  not show that N streams are sustained -- run fewer streams to find the capacity).
- **Throughput** = seconds of input audio of the completed streams / wall seconds from the first send
  (a stream's config message) to the last ``ended`` response. Real time = 1.0 per stream.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

DEFAULT_SLO_MS = 1000.0
DEFAULT_BEHIND_S = 2.0

DEFINITIONS = {
    "pacing": "paced chunk k (audio [k*c,(k+1)*c) ms) is sent at stream_start + (k+1)*c/speed",
    "segment_latency_ms": "arrival of the segment response - scheduled time the stream had sent audio up to end_ms",
    "first_audio_latency_ms": "segment latency of segments that carry translated speech (audio comes in the result)",
    "fell_behind": "the stream's `ended` arrived more than behind_s after its last audio was sent, or never",
    "streams_sustained": "N if real-time p95 latency <= slo_ms and no stream fell behind or failed and no "
    "segment failed, else 0",
    "throughput": "input audio seconds of completed streams / wall seconds from first send to last `ended`; "
    "null when any segment or stream failed (overload is not capacity): see throughput_with_failures",
    "segment_failures": "failed segments by status code",
    "ratio": "batching ON / batching OFF",
}


# -- basic statistics -------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100), linear between closest ranks (numpy's default method)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile {q} is outside 0..100")
    xs = sorted(values)
    rank = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(rank), math.ceil(rank)
    return xs[lo] + (xs[hi] - xs[lo]) * (rank - lo)


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


@dataclass(frozen=True)
class Summary:
    count: int
    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None
    mean: float | None


def summarize(values: Sequence[float]) -> Summary:
    """Count, p50/p95/p99, max and mean; ``None`` fields when there are no values."""
    if not values:
        return Summary(0, None, None, None, None, None)
    return Summary(
        len(values), percentile(values, 50), percentile(values, 95), percentile(values, 99), max(values), mean(values)
    )


def histogram(values: Iterable[int]) -> dict[int, int]:
    """Value -> count, in ascending order of value."""
    return dict(sorted(Counter(values).items()))


def format_histogram(hist: Mapping[int, int]) -> str:
    """``{1: 40, 2: 3}`` -> ``"1x40 2x3"`` (batch size x number of batches)."""
    return " ".join(f"{k}x{v}" for k, v in sorted(hist.items())) or "-"


def throughput(audio_s: float, wall_s: float | None) -> float | None:
    """Audio seconds processed per wall second; ``None`` when no time passed."""
    if wall_s is None or wall_s <= 0:
        return None
    return audio_s / wall_s


def ratio(on: float | None, off: float | None) -> float | None:
    if on is None or off is None or off == 0:
        return None
    return on / off


# -- pacing and the sustained decision --------------------------------------------------------


def audio_sent_at(start_s: float, offset_ms: float, *, speed: float, chunk_ms: int, total_ms: float) -> float:
    """Scheduled time at which a paced stream had sent all of its audio before ``offset_ms``."""
    if speed <= 0 or chunk_ms <= 0:
        raise ValueError("speed and chunk_ms must be positive")
    if offset_ms <= 0:
        return start_s
    covered = min(math.ceil(offset_ms / chunk_ms) * chunk_ms, total_ms)
    return start_s + covered / 1000.0 / speed


def fell_behind(last_audio_s: float, ended_s: float | None, behind_s: float = DEFAULT_BEHIND_S) -> bool:
    return ended_s is None or ended_s - last_audio_s > behind_s


def streams_sustained(
    n_streams: int,
    p95_ms: float | None,
    *,
    streams_behind: int,
    streams_failed: int,
    failed_segments: int,
    slo_ms: float = DEFAULT_SLO_MS,
) -> int:
    """N when the run sustained all N streams (see the module docstring), else 0."""
    ok = (
        p95_ms is not None and p95_ms <= slo_ms and streams_behind == 0 and streams_failed == 0 and failed_segments == 0
    )
    return n_streams if ok else 0


# -- observations of one phase ----------------------------------------------------------------


@dataclass(frozen=True)
class SegmentObs:
    segment_id: int
    end_ms: int
    arrival_s: float
    ok: bool
    speech_ms: int  # translated speech carried in the result (all targets)
    server_total_ms: float  # the server's own Timing.total_ms: segment closed -> result ready
    failure: str | None = None  # the segment's status code name when not OK
    vad_wait_ms: float = 0.0  # the server's Timing.vad_wait_ms: audio past end_ms before it closed


@dataclass(frozen=True)
class StreamObs:
    index: int
    file: str
    audio_ms: float  # input audio of the stream
    start_s: float  # the config message was sent
    last_audio_s: float  # last audio sent (scheduled time when paced)
    ended_s: float | None  # `ended` arrived (None: the call failed)
    segments: tuple[SegmentObs, ...]
    error: str | None = None
    max_send_lag_ms: float = 0.0  # worst lateness of a paced send against its schedule


@dataclass(frozen=True)
class BatchObs:
    size: int
    padded_audio_s: float
    model_ms: float
    queue_ms: tuple[float, ...]


def segment_latencies_ms(stream: StreamObs, *, speed: float, chunk_ms: int) -> list[tuple[SegmentObs, float]]:
    return [
        (
            seg,
            (
                seg.arrival_s
                - audio_sent_at(stream.start_s, seg.end_ms, speed=speed, chunk_ms=chunk_ms, total_ms=stream.audio_ms)
            )
            * 1000.0,
        )
        for seg in stream.segments
    ]


def phase_wall_s(streams: Sequence[StreamObs]) -> float | None:
    """First send to last ``ended`` over the completed streams."""
    done = [s for s in streams if s.ended_s is not None]
    if not done:
        return None
    return max(s.ended_s for s in done if s.ended_s is not None) - min(s.start_s for s in streams)


def completed_audio_s(streams: Sequence[StreamObs]) -> float:
    return sum(s.audio_ms for s in streams if s.ended_s is not None) / 1000.0


def batch_summary(batches: Sequence[BatchObs]) -> dict[str, Any]:
    sizes = [b.size for b in batches]
    queue = [q for b in batches for q in b.queue_ms]
    model = [b.model_ms for b in batches]
    return {
        "batches": len(batches),
        "segments": sum(sizes),
        "size_histogram": histogram(sizes),
        "mean_size": mean(sizes),
        "queue_ms": {"p50": percentile(queue, 50) if queue else None, "p95": percentile(queue, 95) if queue else None},
        "model_ms_per_batch": asdict(summarize(model)),
        "model_ms_per_segment": sum(model) / sum(sizes) if sizes else None,
        "model_busy_s": sum(model) / 1000.0,
    }


def realtime_summary(
    streams: Sequence[StreamObs],
    batches: Sequence[BatchObs],
    *,
    speed: float,
    chunk_ms: int,
    slo_ms: float = DEFAULT_SLO_MS,
    behind_s: float = DEFAULT_BEHIND_S,
) -> dict[str, Any]:
    lat = [(seg, ms) for s in streams for seg, ms in segment_latencies_ms(s, speed=speed, chunk_ms=chunk_ms)]
    latency = summarize([ms for _, ms in lat])
    first_audio = summarize([ms for seg, ms in lat if seg.speech_ms > 0])
    server_total = summarize([seg.server_total_ms for seg, _ in lat])
    vad_wait = summarize([seg.vad_wait_ms for seg, _ in lat])
    failed_segments = sum(1 for seg, _ in lat if not seg.ok)
    failed = sum(1 for s in streams if s.error is not None)
    behind = sum(1 for s in streams if fell_behind(s.last_audio_s, s.ended_s, behind_s))
    wall = phase_wall_s(streams)
    audio = completed_audio_s(streams)
    return {
        "streams": len(streams),
        "segments": len(lat),
        "failed_segments": failed_segments,
        "streams_failed": failed,
        "errors": sorted({s.error for s in streams if s.error is not None}),
        "latency_ms": asdict(latency),
        "first_audio_latency_ms": asdict(first_audio),
        "server_total_ms": asdict(server_total),
        "vad_wait_ms": asdict(vad_wait),
        "segment_failures": segment_failures(streams),
        "audio_s": audio,
        "wall_s": wall,
        **throughputs(audio, wall, failed_segments + failed),
        "max_send_lag_ms": max((s.max_send_lag_ms for s in streams), default=0.0),
        "streams_behind": behind,
        "slo_ms": slo_ms,
        "behind_s": behind_s,
        "streams_sustained": streams_sustained(
            len(streams),
            latency.p95,
            streams_behind=behind,
            streams_failed=failed,
            failed_segments=failed_segments,
            slo_ms=slo_ms,
        ),
        "batches": batch_summary(batches),
    }


def segment_failures(streams: Sequence[StreamObs]) -> dict[str, int]:
    return dict(sorted(Counter(seg.failure or "UNKNOWN" for s in streams for seg in s.segments if not seg.ok).items()))


def throughputs(audio: float, wall: float | None, failures: int) -> dict[str, float | None]:
    """A run where work was refused or failed measured overload, not capacity: no throughput then."""
    value = throughput(audio, wall)
    return {"throughput": value if failures == 0 else None, "throughput_with_failures": value}


def saturation_summary(streams: Sequence[StreamObs], batches: Sequence[BatchObs]) -> dict[str, Any]:
    wall = phase_wall_s(streams)
    audio = completed_audio_s(streams)
    failed_segments = sum(1 for s in streams for seg in s.segments if not seg.ok)
    failed = sum(1 for s in streams if s.error is not None)
    return {
        "streams": len(streams),
        "segments": sum(len(s.segments) for s in streams),
        "failed_segments": failed_segments,
        "streams_failed": failed,
        "errors": sorted({s.error for s in streams if s.error is not None}),
        "segment_failures": segment_failures(streams),
        "audio_s": audio,
        "wall_s": wall,
        **throughputs(audio, wall, failed_segments + failed),
        "batches": batch_summary(batches),
    }


# -- interference ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CpuSnapshot:
    machine_busy_s: float  # all processes, all CPUs
    process_s: float  # this process (user + system)


def foreign_cpu(
    before: CpuSnapshot | None, after: CpuSnapshot | None, wall_s: float | None, cpus: int
) -> dict[str, float | None]:
    """CPU seconds other processes used during a phase, and their share of the machine's capacity.

    A shared machine (other test runs, builds) slows the model thread; a share above a few percent
    means the phase's timings are disturbed.
    """
    if before is None or after is None:
        return {"seconds": None, "share": None}
    seconds = max(0.0, (after.machine_busy_s - before.machine_busy_s) - (after.process_s - before.process_s))
    share = seconds / (wall_s * cpus) if wall_s and cpus > 0 else None
    return {"seconds": seconds, "share": share}


# -- what was measured -------------------------------------------------------------------------

#: below this a random-weight checkpoint is the tiny test model (SeamlessM4T v2 large has ~2.3 B)
FULL_SIZE_PARAMETERS = 1_000_000_000


def model_caveat(
    is_test_model: bool,
    parameters: int,
    forced_text_tokens_per_s: float | None = None,
    forced_units_per_s: float | None = None,
) -> str | None:
    """What a reader must know about timings taken on this model; None for real weights."""
    if not is_test_model:
        return None
    if forced_text_tokens_per_s is not None:
        units = "" if forced_units_per_s is None else f", {forced_units_per_s:g} units/s"
        return (
            f"Random weights ({parameters / 1e9:.2f} B parameters) with FORCED decode lengths "
            f"({forced_text_tokens_per_s:g} text tokens/s{units}): the compute follows typical speech, "
            "but every translation is noise."
        )
    if parameters >= FULL_SIZE_PARAMETERS:
        return (
            f"Random full-size weights ({parameters / 1e9:.2f} B parameters) WITHOUT forced lengths: decoding "
            "stops at random points, so these timings do not represent real speech; every translation is noise."
        )
    return (
        f"The tiny random-weight TEST checkpoint ({parameters / 1e6:.1f} M parameters): every translation is "
        "noise, and these timings show the serving overhead, not SeamlessM4T v2's capacity."
    )


# -- ON vs OFF --------------------------------------------------------------------------------

#: (label, path into a config result, higher is better)
RATIO_METRICS: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("saturation throughput (audio s / s)", ("saturation", "throughput"), True),
    ("real-time throughput (audio s / s)", ("realtime", "throughput"), True),
    ("real-time p95 latency (ms)", ("realtime", "latency_ms", "p95"), False),
)


def lookup(result: Mapping[str, Any], path: Sequence[str]) -> Any:
    node: Any = result
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def ratio_table(
    on: Mapping[str, Any],
    off: Mapping[str, Any],
    metrics: Sequence[tuple[str, tuple[str, ...], bool]] = RATIO_METRICS,
) -> list[dict[str, Any]]:
    """One row per metric: its value with batching ON and OFF and ON/OFF."""
    rows = []
    for label, path, higher_is_better in metrics:
        a, b = lookup(on, path), lookup(off, path)
        rows.append(
            {
                "metric": label,
                "path": ".".join(path),
                "on": a,
                "off": b,
                "ratio": ratio(a, b),
                "higher_is_better": higher_is_better,
            }
        )
    return rows
