"""What a submitted job gives back (``EngineResult``) and what the queue looks like (``EngineStats``).

A leaf module: sessions and remote engine clients read these without importing the engine. What a
batch reports to its observers (``BatchStats``) is in ``types.py``, below ``observability/``.
"""

from __future__ import annotations

from dataclasses import dataclass

from translate_svc.model_api.requests import ModelOutput
from translate_svc.types import SegmentError, TraceRef


@dataclass(frozen=True)
class EngineResult:
    """One job's outcome: the model's output, or the error of that one segment."""

    output: ModelOutput | None
    error: SegmentError | None
    queue_ms: float
    model_ms: float
    batch_size: int
    #: the batch's span (tracing on, and the batch sampled; ``observability/tracing.py``)
    batch_trace: TraceRef | None = None
    #: of ``queue_ms``: the model time of the optional batches (captions, simultaneous steps) that
    #: ran while this final waited, and how many (at most one: engine/scheduler.py); 0 for others
    optional_ms: float = 0.0
    optional_batches: int = 0


@dataclass(frozen=True)
class EngineStats:
    """A snapshot of the engine's queue, for flow control and fair share."""

    #: jobs waiting for the model (features being computed included), not the running batch
    queued: int
    #: the most jobs the queue holds; beyond it ``submit`` raises Overloaded
    max_queued: int
    #: jobs in the model right now
    running: int
    #: one session's share of the queue (``engine/shares.py``): ``max_queued`` // the sessions open
    #: on the node, at least 1; a session's final within it always gets a place
    share: int
    #: sessions open on the node (joined)
    sessions: int
