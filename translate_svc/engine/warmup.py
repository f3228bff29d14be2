"""What the engine runs before it says it is ready: the warm-up plan. Pure; no torch, no clock.

``buckets`` is ``batches`` at one length per encoder frame bucket (the stages pad their
lengths to buckets, model/stages/shapes.py), followed by the runner's warm-up of t2u's and the vocoder's
buckets (``ShapeWarmable.warm_shapes``), all within ``max_s``: after it a segment up to
``longest_s`` meets no shape the warm-up did not run (``translate_svc_model_cold_shapes_total``).

On CUDA the first batch of a new shape pays for kernel selection and plan building in every
convolution and attention it runs (docs/performance.md, "GPU, first measurement": 39.1 ms per
segment at batch 32 against 11.5 ms once the same shapes had run). The shapes of a batch are its
rows (how many segments the scheduler put together: any number from 1 to ``max_batch_size``) and
its lengths (the longest segment's audio, which sets the encoder's frames, the decode and the
speech lengths). So ``batches`` warms **every batch size** the scheduler can form, each at a few
representative audio lengths, before the server says ready; ``one`` runs a single one-second
segment (the model loaded and every stage run once), the CPU default, where new shapes cost little
against a start that tests repeat hundreds of times.

Batch rows are not padded up to a few sizes: on CUDA a row's arithmetic may depend on how many rows
its matrix products hold, and each row must equal ``generate`` on it alone (the parity tests), so
every size is warmed as it is. The order spreads the sizes (1, the largest, then halves between
them: ``spread``), so a warm-up cut by its time budget (``WarmupConfig.max_s``) has covered the
range coarsely rather than only its small end.

A ``buckets`` batch runs one row at its length and the others at the plan's shortest
(``WarmShape.rest_s``): the encoder pads every row to the longest's frame bucket and the batch's
row bucket, so its shape is the same as a batch of equal rows, while the host's work per row (its
features, on the engine's GIL, about 3.7 ms a second of audio on a 2-core CPU; its finish) and the
decode's steps follow each row's own length; t2u's and the vocoder's buckets are the runner's own
``warm_shapes`` after the batches. At ``max_batch_size`` 128 that is 2,331 seconds of audio through
the route instead of 9,436, for the same 224 batches and the same encoder shapes.

What the warm-up did is reported (``WarmupReport``, the gauges ``translate_svc_warmup_*``):
planned and run batches, the stage calls and whether the budget cut it; a cut warm-up leaves shapes
cold and the server says so at WARNING (the runbook, benchmarks/gpu/capacity.py, fails on it).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class WarmupMode(str, Enum):
    #: one batch of one short segment
    ONE = "one"
    #: every batch size the scheduler can form, at each of ``WarmupConfig.lengths_s``
    BATCHES = "batches"
    #: every row bucket (powers of two: where the stages bucket lengths, the fast runner's static
    #: path pads rows too) at one length per encoder frame bucket up to ``WarmupConfig.longest_s``
    #: (the caller gives them as ``lengths_s``), then every t2u and vocoder bucket through the
    #: runner's own ``warm_shapes`` (model_api/runner.py ``ShapeWarmable``)
    BUCKETS = "buckets"


@dataclass(frozen=True)
class WarmShape:
    """One warm-up batch: ``rows`` segments, the first of ``seconds`` of audio, the others of
    ``rest_s`` (None: every row ``seconds``)."""

    rows: int
    seconds: float
    rest_s: float | None = None

    @property
    def audio_s(self) -> float:
        """The batch's audio, every row's own length summed (what the host's work per row follows)."""
        return self.seconds + (self.rows - 1) * (self.seconds if self.rest_s is None else self.rest_s)


@dataclass(frozen=True)
class WarmupReport:
    """What a warm-up did (``TranslationEngine`` logs it and sets the gauges from it)."""

    mode: WarmupMode
    planned: int  # batches planned
    run: int  # batches run
    stage_calls: int  # the runner's own bucket calls (``buckets``)
    seconds: float
    budget_s: float | None
    #: the budget stopped it: batches left unrun, or the stages' buckets still running at the deadline
    #: (their calls stop there; one ending just after it counts too: a cut is never hidden)
    cut: bool

    def line(self) -> str:
        """One log line: what ran, in how long, and a cut said as such."""
        cut = f"; CUT by its {self.budget_s:g} s budget, the rest run cold" if self.cut else ""
        return (
            f"warm-up ({self.mode.value}): {self.run} of {self.planned} planned batches, {self.stage_calls} stage"
            f" calls, in {self.seconds:.1f} s{cut}"
        )


@dataclass(frozen=True)
class WarmupConfig:
    mode: WarmupMode = WarmupMode.ONE
    #: the audio lengths each batch size is warmed at (``batches``)
    lengths_s: tuple[float, ...] = (1.0, 2.5, 6.0)
    #: no warm-up batch starts after this many seconds of warm-up (the server then says ready,
    #: with the rest of the plan cold); None: no limit
    max_s: float | None = None
    #: the longest segment the warm-up covers (``buckets``): what the segmenter cuts at by default
    longest_s: float = 15.0
    #: decode rows a segment may bring at most (its targets and its transcript): the stages'
    #: buckets are warmed up to a batch's segments times this (``buckets``)
    rows_per_segment: int = 1

    def __post_init__(self) -> None:
        if not self.lengths_s or any(not s > 0 for s in self.lengths_s):
            raise ValueError(f"warm-up lengths must be > 0 seconds, got {self.lengths_s}")
        if not self.longest_s > 0:
            raise ValueError(f"the longest segment warmed must be > 0 seconds, got {self.longest_s}")
        if self.max_s is not None and self.max_s < 0:
            raise ValueError(f"warm-up time budget must be >= 0, got {self.max_s}")
        if self.rows_per_segment < 1:
            raise ValueError(f"warm-up rows per segment must be >= 1, got {self.rows_per_segment}")


def spread(n: int) -> list[int]:
    """1..n, each once, in an order that covers the range coarsely first: 1, n, then the
    midpoints of the gaps left, widest gaps first (breadth-first bisection)."""
    if n < 1:
        return []
    order = [1] if n == 1 else [1, n]
    gaps = [(1, n)]
    while gaps:
        nxt = []
        for lo, hi in gaps:
            if hi - lo > 1:
                mid = (lo + hi) // 2
                order.append(mid)
                nxt += [(lo, mid), (mid, hi)]
        gaps = nxt
    return order


def plan(config: WarmupConfig, max_batch_size: int, max_batch_audio_s: float) -> list[WarmShape]:
    """The warm-up batches, in the order to run them. A batch the scheduler could never form
    (its rows x length over ``max_batch_audio_s``, the padded-audio budget) is left out."""
    if config.mode is WarmupMode.ONE:
        return [WarmShape(1, 1.0)]
    lengths = sorted(set(config.lengths_s))
    if config.mode is WarmupMode.BUCKETS:  # one row at the length, the others short (module docstring)
        shortest = lengths[0]
        return [
            WarmShape(rows, seconds, shortest if rows > 1 and seconds > shortest else None)
            for rows in row_buckets(max_batch_size)
            for seconds in lengths
            if rows * seconds <= max_batch_audio_s
        ]
    sizes = spread(max_batch_size)
    return [WarmShape(rows, seconds) for rows in sizes for seconds in lengths if rows * seconds <= max_batch_audio_s]


def row_buckets(n: int) -> list[int]:
    """The row counts a batch of up to ``n`` rows is padded to where rows are bucketed (powers of
    two, and ``n`` itself: model/stages/shapes.py ``bucket_rows``), largest first, so a warm-up cut by its
    time budget has run the costliest shapes."""
    out = {1 << k for k in range(max(n, 1).bit_length()) if 1 << k <= n} | {max(n, 1)}
    return sorted(out, reverse=True)
