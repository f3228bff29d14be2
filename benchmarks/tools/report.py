"""Statistics of a load-generator run: pure functions on plain values (no I/O, no clocks, no gRPC).

The load generator (``loadgen/``) only measures (when things were sent and arrived, what batches
ran); every number it reports is computed here, so the arithmetic is unit-tested
(tests/benchmarks/test_report.py).

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
- **First-caption latency** (live captions, ``interim_interval_ms``): for each segment that got at
  least one ``interim``, arrival of its first interim - the (scheduled) time the stream had sent its
  audio up to the segment's ``start_ms``. It includes the interval itself (the server translates
  the speech so far once that much of it has arrived), so it is never below ``interim_interval_ms``.
- **Segments expected** = the segments the server says it cut (``StreamEnd.segments_total``) of the
  streams that ended; **lost** = expected - received on those streams. A stream that never ended
  is a failed stream (its status code is counted), not lost segments.
- **Flood streams** send unpaced-ish (``flood_speed`` x real time) beside the real-time streams; their
  latency is measured from the *actual* send of the message carrying ``end_ms`` (a flooding stream
  may be slowed by flow control, so its schedule means nothing).
- **Server CPU** (external server, ``--server-pid``): utime + stime of the process from
  /proc/PID/stat; **cores** = CPU seconds / wall seconds; **CPU us per message** = CPU seconds /
  audio messages sent by all streams. The *steady* window is from the last stream's start to the
  first stream's last send (all streams live); the *phase* window covers everything.
- A front-end ramp step **kept up** (``kept_up``) when the server used < ``max_cores`` cores and
  the step is "streams sustained" (p95 segment latency <= slo_ms, no stream behind or failed, no
  segment failed) with no segment lost; a step whose streams cut no segment at all (a VAD
  threshold of 0.99) has no latency to judge and is judged on the rest.
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
    "first_caption_latency_ms": "per segment with >= 1 interim: arrival of its first interim - scheduled time "
    "the stream had sent audio up to the segment's start_ms (includes the interim interval)",
    "interim_latency_ms": "per interim: arrival - scheduled time the stream had sent audio up to the interim's end_ms",
    "segments_expected": "sum of StreamEnd.segments_total (the segments the server cut) over streams that ended",
    "segments_lost": "segments_expected - segment results received, over streams that ended",
    "stream_failures": "streams whose call ended with an error, by status code (RESOURCE_EXHAUSTED = refused)",
    "flood_latency_ms": "flood streams: arrival of the segment - actual send time of the message carrying end_ms",
    "server_cores": "server CPU seconds (utime+stime, /proc/PID/stat) / wall seconds; steady = all streams live",
    "cpu_us_per_message": "server CPU microseconds / audio messages sent by all streams in the same window",
    "batches_not_measured": "an external server (--target) reports no batches: batch statistics are null, not zero",
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
    start_ms: int | None = None
    #: of ``server_total_ms``, the server's Timing.queue_ms (closed -> the model took it) and
    #: Timing.model_ms (in the model): where a slow segment's time went
    queue_ms: float = 0.0
    model_ms: float = 0.0


@dataclass(frozen=True)
class InterimObs:
    """One ``interim`` (live caption) as it arrived."""

    segment_id: int
    start_ms: int
    end_ms: int
    arrival_s: float


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
    interims: tuple[InterimObs, ...] = ()
    segments_total: int | None = None  # StreamEnd.segments_total (None: no `ended`)
    audio_messages: int = 0  # audio messages sent
    chunk_ms: float = 0.0  # audio per message (the actual send of message k carries [k*c, (k+1)*c))
    sent_s: tuple[float, ...] = ()  # actual send time of each audio message (kept for flood streams)


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


def batch_summary(batches: Sequence[BatchObs] | None) -> dict[str, Any] | None:
    """Batch statistics; ``None`` when batches were not observed (an external server), never zeros."""
    if batches is None:
        return None
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
    batches: Sequence[BatchObs] | None,
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
    queue = summarize([seg.queue_ms for seg, _ in lat])
    model = summarize([seg.model_ms for seg, _ in lat])
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
        "server_queue_ms": asdict(queue),
        "server_model_ms": asdict(model),
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
        **segment_accounting(streams),
        "stream_failures": stream_failures(streams),
        "captions": caption_summary(streams, speed=speed, chunk_ms=chunk_ms),
    }


def segment_failures(streams: Sequence[StreamObs]) -> dict[str, int]:
    return dict(sorted(Counter(seg.failure or "UNKNOWN" for s in streams for seg in s.segments if not seg.ok).items()))


def throughputs(audio: float, wall: float | None, failures: int) -> dict[str, float | None]:
    """A run where work was refused or failed measured overload, not capacity: no throughput then."""
    value = throughput(audio, wall)
    return {"throughput": value if failures == 0 else None, "throughput_with_failures": value}


def saturation_summary(streams: Sequence[StreamObs], batches: Sequence[BatchObs] | None) -> dict[str, Any]:
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
        **segment_accounting(streams),
        "stream_failures": stream_failures(streams),
    }


# -- accounting, captions, flood ---------------------------------------------------------------


def status_code(error: str | None) -> str:
    """``"RESOURCE_EXHAUSTED: too many streams"`` -> ``"RESOURCE_EXHAUSTED"``; None -> ``"OK"``."""
    if error is None:
        return "OK"
    return error.split(":", 1)[0].strip() or "UNKNOWN"


def stream_failures(streams: Sequence[StreamObs]) -> dict[str, int]:
    """Streams whose call failed, by status code."""
    return dict(sorted(Counter(status_code(s.error) for s in streams if s.error is not None).items()))


def segment_accounting(streams: Sequence[StreamObs]) -> dict[str, int]:
    """Segments the server cut (on streams that ended), results received, and the difference."""
    ended = [s for s in streams if s.segments_total is not None]
    expected = sum(s.segments_total or 0 for s in ended)
    received_ended = sum(len(s.segments) for s in ended)
    return {
        "segments_expected": expected,
        "segments_received": sum(len(s.segments) for s in streams),
        "segments_lost": sum(max(0, (s.segments_total or 0) - len(s.segments)) for s in ended),
        "segments_extra": max(0, received_ended - expected),  # more results than cut: a server bug
    }


def first_caption_latencies_ms(stream: StreamObs, *, speed: float, chunk_ms: int) -> list[tuple[int, float]]:
    """(segment_id, first-caption latency) for each segment of the stream with at least one interim.

    The segment's ``start_ms`` is its result's when that arrived, else its first interim's.
    """
    first: dict[int, InterimObs] = {}
    for it in stream.interims:
        if it.segment_id not in first or it.arrival_s < first[it.segment_id].arrival_s:
            first[it.segment_id] = it
    starts = {seg.segment_id: seg.start_ms for seg in stream.segments if seg.start_ms is not None}
    out = []
    for sid, it in sorted(first.items()):
        start_ms = starts.get(sid, it.start_ms)
        sent = audio_sent_at(stream.start_s, start_ms, speed=speed, chunk_ms=chunk_ms, total_ms=stream.audio_ms)
        out.append((sid, (it.arrival_s - sent) * 1000.0))
    return out


def caption_summary(streams: Sequence[StreamObs], *, speed: float, chunk_ms: int) -> dict[str, Any]:
    """Live captions: how many interims arrived, how soon the first one of a segment came."""
    first = [ms for s in streams for _, ms in first_caption_latencies_ms(s, speed=speed, chunk_ms=chunk_ms)]
    staleness = [
        (it.arrival_s - audio_sent_at(s.start_s, it.end_ms, speed=speed, chunk_ms=chunk_ms, total_ms=s.audio_ms))
        * 1000.0
        for s in streams
        for it in s.interims
    ]
    after_final = 0
    for s in streams:
        final_at = {seg.segment_id: seg.arrival_s for seg in s.segments}
        after_final += sum(
            1 for it in s.interims if it.segment_id in final_at and it.arrival_s > final_at[it.segment_id]
        )
    return {
        "interims": sum(len(s.interims) for s in streams),
        "segments_with_caption": len(first),
        "first_caption_latency_ms": asdict(summarize(first)),
        "interim_latency_ms": asdict(summarize(staleness)),
        "interims_after_final": after_final,  # the contract says none
    }


def actual_send_latencies_ms(stream: StreamObs) -> list[float]:
    """Arrival of each segment - the actual send time of the message that carried its ``end_ms``."""
    if not stream.sent_s or stream.chunk_ms <= 0:
        return []
    out = []
    for seg in stream.segments:
        k = min(max(0, math.ceil(seg.end_ms / stream.chunk_ms) - 1), len(stream.sent_s) - 1)
        out.append((seg.arrival_s - stream.sent_s[k]) * 1000.0)
    return out


def flood_summary(streams: Sequence[StreamObs]) -> dict[str, Any]:
    """Flood streams: audio they got through, how they ended, their segments and latency."""
    audio_s = sum(s.audio_messages * s.chunk_ms for s in streams) / 1000.0
    ends = [s.ended_s if s.ended_s is not None else (s.sent_s[-1] if s.sent_s else s.start_s) for s in streams]
    wall = max(ends) - min(s.start_s for s in streams) if streams else None
    per_stream = [
        (s.audio_messages * s.chunk_ms / 1000.0) / ((e - s.start_s) or math.nan)
        for s, e in zip(streams, ends, strict=True)
    ]
    return {
        "streams": len(streams),
        "audio_messages": sum(s.audio_messages for s in streams),
        "audio_s": audio_s,
        "wall_s": wall,
        "throughput": throughput(audio_s, wall),
        "speed_per_stream": [None if math.isnan(x) else x for x in per_stream],
        "ended_with": dict(sorted(Counter(status_code(s.error) for s in streams).items())),
        "errors": sorted({s.error for s in streams if s.error is not None}),
        "segments": sum(len(s.segments) for s in streams),
        "failed_segments": sum(1 for s in streams for seg in s.segments if not seg.ok),
        "segment_failures": segment_failures(streams),
        **segment_accounting(streams),
        "interims": sum(len(s.interims) for s in streams),
        "latency_ms": asdict(summarize([ms for s in streams for ms in actual_send_latencies_ms(s)])),
    }


# -- CPU of a process --------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcCpu:
    """A process's CPU seconds at one moment (wall ``t_s``), with its threads' by name."""

    t_s: float
    cpu_s: float
    messages: int = 0  # audio messages sent by all streams so far (the client's counter)
    threads: tuple[tuple[str, float], ...] = ()


def parse_proc_stat(text: str, clock_ticks: int) -> tuple[str, float]:
    """(comm, utime + stime in seconds) from the text of /proc/PID/stat (or /proc/PID/task/TID/stat).

    The command name may hold spaces and parentheses: the fields start after the *last* ``)``.
    """
    open_, close = text.index("("), text.rindex(")")
    fields = text[close + 2 :].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15
    return text[open_ + 1 : close], (int(fields[11]) + int(fields[12])) / clock_ticks


def cpu_use(before: ProcCpu | None, after: ProcCpu | None) -> dict[str, Any]:
    """Cores used (CPU s / wall s) and CPU us per audio message between two snapshots."""
    if before is None or after is None or after.t_s <= before.t_s:
        return {"wall_s": None, "cpu_s": None, "cores": None, "messages": None, "cpu_us_per_message": None}
    cpu = max(0.0, after.cpu_s - before.cpu_s)
    messages = after.messages - before.messages
    return {
        "wall_s": after.t_s - before.t_s,
        "cpu_s": cpu,
        "cores": cpu / (after.t_s - before.t_s),
        "messages": messages,
        "cpu_us_per_message": cpu * 1e6 / messages if messages > 0 else None,
    }


def thread_cpu(before: ProcCpu | None, after: ProcCpu | None) -> dict[str, float]:
    """CPU seconds by thread name between two snapshots (threads that came and went included), largest first."""
    if before is None or after is None:
        return {}
    old: dict[str, float] = {}
    for name, s in before.threads:
        old[name] = old.get(name, 0.0) + s
    new: dict[str, float] = {}
    for name, s in after.threads:
        new[name] = new.get(name, 0.0) + s
    delta = {name: max(0.0, new[name] - old.get(name, 0.0)) for name in new}
    return dict(sorted(((k, round(v, 3)) for k, v in delta.items() if v > 0), key=lambda kv: -kv[1]))


def steady_window(samples: Sequence[ProcCpu], start_s: float, end_s: float) -> tuple[ProcCpu, ProcCpu] | None:
    """The first sample at or after ``start_s`` and the last at or before ``end_s``, if they span time."""
    inside = [x for x in samples if start_s <= x.t_s <= end_s]
    if len(inside) < 2 or inside[-1].t_s - inside[0].t_s <= 0:
        return None
    return inside[0], inside[-1]


# -- the front-end ramp ------------------------------------------------------------------------

DEFAULT_MAX_CORES = 0.9


def kept_up(step: Mapping[str, Any], *, max_cores: float = DEFAULT_MAX_CORES) -> tuple[bool, list[str]]:
    """Did the server keep up with this ramp step? (see ``kept_up`` in the module docstring)

    ``step`` holds ``streams``, ``server_cores``, ``p95_latency_ms``, ``slo_ms``, ``segments_expected``,
    ``segments_lost``, ``failed_segments``, ``streams_failed`` and ``streams_behind``. Returns the
    verdict and, when it failed, why (one short phrase per broken condition).
    """
    why = []
    cores = step.get("server_cores")
    if cores is None:
        why.append("server CPU not measured")
    elif cores >= max_cores:
        why.append(f"server used {cores:.2f} cores (>= {max_cores:g})")
    if step.get("streams_failed"):
        why.append(f"{step['streams_failed']} streams failed ({_fmt_counts(step.get('stream_failures'))})")
    if step.get("failed_segments"):
        why.append(f"{step['failed_segments']} segments failed ({_fmt_counts(step.get('segment_failures'))})")
    if step.get("segments_lost"):
        why.append(f"{step['segments_lost']} segments lost")
    if step.get("streams_behind"):
        why.append(f"{step['streams_behind']} streams fell behind")
    p95, slo = step.get("p95_latency_ms"), step.get("slo_ms", DEFAULT_SLO_MS)
    if p95 is None:
        if step.get("segments_expected"):
            why.append("no segment latency measured")
    elif p95 > slo:
        why.append(f"p95 latency {p95:,.0f} ms > {slo:g} ms")
    return not why, why


def _fmt_counts(counts: Mapping[str, int] | None) -> str:
    return ", ".join(f"{k} x{v}" for k, v in (counts or {}).items()) or "?"


def streams_per_core(steps: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The largest step (by stream count) that kept up, and the smallest one above it that did not."""
    ok = [s for s in steps if s.get("kept_up")]
    best = max(ok, key=lambda s: s["streams"], default=None)
    limit = best["streams"] if best else 0
    above = sorted((s for s in steps if not s.get("kept_up") and s["streams"] > limit), key=lambda s: s["streams"])
    first_fail = above[0] if above else None
    return {
        "streams_per_core": limit if best else None,
        "first_failure": None
        if first_fail is None
        else {"streams": first_fail["streams"], "reasons": list(first_fail.get("reasons", []))},
        "all_kept_up": bool(steps) and len(ok) == len(steps),
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
    parameters: int | None,
    forced_text_tokens_per_s: float | None = None,
    forced_units_per_s: float | None = None,
) -> str | None:
    """What a reader must know about timings taken on this model; None for real weights."""
    if not is_test_model:
        return None
    if parameters is None:  # an external server: its size is not known here
        return (
            "Random weights (the server says is_test_model; its size is not known to the client): every "
            "translation is noise, and these timings do not show SeamlessM4T v2's capacity."
        )
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
