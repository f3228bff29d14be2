"""Pure: a ramp step's figures from what its streams measured, and the sizing they imply.

A step *keeps real time* when every stream ended without an error, no segment failed, no send was
held back more than ``MAX_LAG_MS`` (the server stopped reading: flow control), the p95 latency
of the finals is within the target, and, where the step's streams got commits (simultaneous mode),
so is the p95 commit lag. ``max_streams`` is the largest count kept with every smaller count of the
ramp kept too; the autoscaler's target (``translate_svc_streams_active`` per pod,
``k8s/overlays/gpu/hpa.yaml``) leaves ``headroom`` of it for the minutes a new pod needs to load.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from translate_svc.client_cli.load.streams import StreamObs
from translate_svc.client_cli.output import nearest_rank

#: a send held back longer than this means the server no longer kept up with the stream's audio
MAX_LAG_MS = 1000.0


@dataclass(frozen=True)
class ServerUse:
    """The server's own figures over a step, from its /metrics (None: not measured)."""

    cpu_cores: float | None = None  # process_cpu_seconds_total's growth / the step's wall time
    rss_max_mb: float | None = None  # process_resident_memory_bytes, the most seen while it ran
    #: translate_svc_simultaneous_steps_total's growth over the step, by outcome: the node's steps
    #: (every stream on it, not only the bench's); skipped: the engine or the reader was behind
    steps_run: int | None = None
    steps_skipped: int | None = None


@dataclass(frozen=True)
class Step:
    mode: str
    streams: int
    wall_s: float
    audio_s: float
    segments: int
    failed_segments: int
    errors: int
    commits: int
    p50_ms: float | None
    p95_ms: float | None
    max_ms: float | None
    #: simultaneous mode: each commit's arrival less the moment the audio up to its ``source_ms``
    #: was due to be sent (streams.py); None: no commit
    commit_lag_p50_ms: float | None
    commit_lag_p95_ms: float | None
    commit_lag_max_ms: float | None
    max_lag_ms: float
    queue_p50_ms: float | None
    #: the server's queue wait per final (its own timing): p95, where a final waits behind optional work
    queue_p95_ms: float | None
    model_p50_ms: float | None
    kept: bool
    server: ServerUse


def _q(values: Sequence[float], q: float) -> float | None:
    return round(nearest_rank(sorted(values), q), 1) if values else None


def summarize(mode: str, streams: Sequence[StreamObs], wall_s: float, p95_target_ms: float, server: ServerUse) -> Step:
    segs = [s for obs in streams for s in obs.segments]
    lat = [s.latency_ms for s in segs]
    commit_lag = [x for obs in streams for x in obs.commit_lags_ms]
    queue = [s.queue_ms for s in segs if s.queue_ms is not None]
    model = [s.model_ms for s in segs if s.model_ms is not None]
    errors = sum(obs.error is not None for obs in streams)
    failed = sum(not s.ok for s in segs)
    lag = max((obs.max_lag_ms for obs in streams), default=0.0)
    p95 = _q(lat, 0.95)
    commit_p95 = _q(commit_lag, 0.95)
    kept = (
        bool(segs)
        and not errors
        and not failed
        and lag <= MAX_LAG_MS
        and p95 is not None
        and p95 <= p95_target_ms
        and (commit_p95 is None or commit_p95 <= p95_target_ms)
    )
    return Step(
        mode=mode,
        streams=len(streams),
        wall_s=round(wall_s, 2),
        audio_s=round(sum(obs.audio_s for obs in streams), 2),
        segments=len(segs),
        failed_segments=failed,
        errors=errors,
        commits=len(commit_lag),
        p50_ms=_q(lat, 0.5),
        p95_ms=p95,
        max_ms=_q(lat, 1.0),
        commit_lag_p50_ms=_q(commit_lag, 0.5),
        commit_lag_p95_ms=commit_p95,
        commit_lag_max_ms=_q(commit_lag, 1.0),
        max_lag_ms=round(lag, 1),
        queue_p50_ms=_q(queue, 0.5),
        queue_p95_ms=_q(queue, 0.95),
        model_p50_ms=_q(model, 0.5),
        kept=kept,
        server=server,
    )


@dataclass(frozen=True)
class Suggestion:
    mode: str
    max_streams: int | None  # None: not even the ramp's smallest count kept real time
    autoscaler_target: int | None


def suggest(steps: Sequence[Step], headroom: float) -> Suggestion:
    """From one mode's steps (ascending counts): the largest count kept with every smaller one."""
    kept: int | None = None
    for step in sorted(steps, key=lambda s: s.streams):
        if not step.kept:
            break
        kept = step.streams
    target = max(1, math.floor(kept * (1.0 - headroom))) if kept else None
    return Suggestion(steps[0].mode if steps else "", kept, target)
