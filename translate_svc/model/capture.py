"""Stages under captured CUDA graphs, one graph per bucket, and the host staging that feeds them
(issue 88: "the GPU does the work, not Python").

On CUDA a stage run eagerly costs the host one launch per kernel (tens of microseconds each: the
encoder alone is about a thousand for a segment); the same stage replayed from a captured graph
costs one. ``GraphedStage`` runs a stage's static path (a function of tensors whose shapes are a
bucket's: model/stages/shapes.py) inside a capture region (model/regions.py):

- on CUDA, while ``capturing`` (the warm-up: every bucket runs there before the server says
  ready), the first call of a bucket runs it eagerly twice (kernels loaded, plans made), then
  captures it into a graph with static input and output buffers; every later call copies its
  inputs into that bucket's buffers, replays, and returns copies of the outputs (so a later replay
  never overwrites what a caller holds). A bucket met after the warm-up runs eagerly (a graph
  miss, counted on every device: ``translate_svc_model_graph_misses_total{stage}``); a capture
  that fails leaves the bucket eager, logged and counted
  (``translate_svc_model_capture_failures_total{stage}``), never a failed start;
- elsewhere (CPU) the same function runs eagerly inside the region: CI runs the code the GPU
  replays, and the sync guard (tests/support/sync_guard.py) checks that it never reads the device.

Graphs of one thread share one memory pool (``thread_pool``): one thread's replays never overlap,
so their intermediate buffers may; each graph's outputs are its own and copied out at once. A stage
that two threads run (text-to-unit and the vocoder: on the finish thread for segments, on the model
thread for texts) has graphs per thread, each warmed and captured on its own thread.

``HostStaging`` is a pinned host buffer filled through numpy and copied to the device in one
non-blocking copy (a pageable ``torch.tensor(..., device=)`` blocks the host until the GPU has
run everything queued before it). Model thread only, or the thread that owns the stage.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from translate_svc.model import regions
from translate_svc.observability import metrics

logger = logging.getLogger(__name__)

#: eager runs of a bucket before its capture (kernels loaded, library handles and plans made)
WARM_RUNS = 2


class GraphPool:
    """The memory pool the graphs of one thread share (torch's handle, made by the first capture)."""

    def __init__(self) -> None:
        self.handle: Any = None


_pools: dict[int, GraphPool] = {}
_pools_lock = threading.Lock()


def thread_pool() -> GraphPool:
    """The calling thread's graph pool: its stages' graphs never replay at the same time."""
    with _pools_lock:
        return _pools.setdefault(threading.get_ident(), GraphPool())


@dataclass(eq=False)
class _Captured:
    graph: torch.cuda.CUDAGraph
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]


class GraphedStage:
    """One stage's static path, captured per bucket on CUDA (see the module docstring).

    ``run(*inputs)`` returns a tensor or a tuple of tensors; it must not read the device on the host
    nor make tensors from host data (what the sync guard checks), and its shapes must follow from
    its inputs' alone. A stage may run on several threads (the finish thread's text-to-unit and the
    model thread's, for texts): each thread captures and replays graphs of its own, in its own pool."""

    def __init__(self, name: str, run: Callable[..., Tensor | tuple[Tensor, ...]], device: torch.device) -> None:
        self.name = name
        self._run = run
        self._cuda = device.type == "cuda"
        self._local = threading.local()
        #: new buckets are captured, until the warm-up ends (``SeamlessRunner.warmed``); after it
        #: a bucket met for the first time runs eagerly (a capture mid-traffic would stall it)
        self.capturing = True
        #: graphs at all: on CUDA by default; set by the runner's plan (model/build.py: a CUDA plan
        #: with ``model.stage_graphs``, also on a CPU, where nothing is captured but the same
        #: bookkeeping counts what the GPU would miss). Off, the static path runs eagerly inside
        #: its region, never captured, never a miss
        self.enabled = self._cuda
        #: graphs captured (every thread's), buckets whose capture failed, and calls on a bucket
        #: first met after the warm-up (graph misses: eager on CUDA)
        self.captured = 0
        self.failures = 0
        self.misses = 0

    def _graphs(self) -> tuple[dict[Hashable, _Captured | bool | None], GraphPool]:
        local = self._local
        if not hasattr(local, "graphs"):
            local.graphs, local.pool = {}, thread_pool()
        return local.graphs, local.pool

    def __call__(self, key: Hashable | None, *inputs: Tensor, **fixed: Any) -> tuple[Tensor, ...]:
        """The stage on ``inputs`` (``key``: their bucket, which ``fixed``, the stage's other
        arguments, are part of; None: shapes that do not repeat, never captured).

        A key this thread first meets after the warm-up (``capturing`` off) is a **graph miss**:
        on CUDA it runs eagerly, one launch a kernel; it is counted (``misses``,
        ``translate_svc_model_graph_misses_total{stage}``) on every device and runs outside the
        capture region, so the host-cost counters see it as the GPU would (model/regions.py)."""
        run = functools.partial(self._run, **fixed) if fixed else self._run
        if key is None or not self.enabled:
            with regions.region(self.name):
                return _tuple(run(*inputs))
        graphs, pool = self._graphs()
        if key not in graphs:
            if not self.capturing:
                self.misses += 1
                metrics.graph_missed(self.name)
                return _tuple(run(*inputs))
            if not self._cuda:
                graphs[key] = True  # met in the warm-up: on CUDA it would be captured now
        with regions.region(self.name):
            if self._cuda and key not in graphs:
                graphs[key] = self._capture(key, inputs, pool, run)
            entry = graphs[key]
            if not isinstance(entry, _Captured):  # not CUDA (the static path eagerly), or a failed capture
                return _tuple(run(*inputs))
            for static, x in zip(entry.inputs, inputs, strict=True):
                static.copy_(x, non_blocking=True)
            entry.graph.replay()
            return tuple(o.clone() for o in entry.outputs)

    def _capture(
        self, key: Hashable, inputs: Sequence[Tensor], pool: GraphPool, run: Callable[..., Any]
    ) -> _Captured | None:
        """``key``'s graph, captured now on static copies of ``inputs``; None where it fails."""
        try:
            static = tuple(x.clone() for x in inputs)
            side = torch.cuda.Stream()  # type: ignore[no-untyped-call]
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(WARM_RUNS):
                    run(*static)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            # thread-local: the model thread and the finish thread capture and run at once (a
            # global capture would refuse the other thread's event waits meanwhile)
            with torch.cuda.graph(graph, pool=pool.handle, capture_error_mode="thread_local"):
                outputs = _tuple(run(*static))
            pool.handle = graph.pool()
        except Exception:
            logger.exception("capturing %s at %s failed: that bucket runs eagerly", self.name, key)
            self.failures += 1
            metrics.capture_failed(self.name)
            torch.cuda.synchronize()
            return None
        self.captured += 1
        return _Captured(graph, static, outputs)


def _tuple(out: Tensor | tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    return out if isinstance(out, tuple) else (out,)


class HostStaging:
    """A pinned host buffer (named a host buffer for the counters: model/regions.py) filled through
    numpy and copied to the device without blocking; reused once its last copy has run (a copy
    queued behind other work may read it late, so the host waits for that copy's event, not for
    the GPU's whole queue). It grows to the largest upload asked of it."""

    def __init__(self, dtype: torch.dtype, device: torch.device) -> None:
        self.dtype, self.device = dtype, device
        self._host: Tensor | None = None
        self._array: np.ndarray = np.zeros(0)
        self._done: Any = None

    def upload(self, shape: tuple[int, ...], fill: Callable[[np.ndarray], None]) -> Tensor:
        """``fill(array)`` writes the values into a staged array of ``shape`` (zeros where it writes
        nothing); they are copied to a new device tensor without blocking, which is returned."""
        if self._done is not None:
            self._done.synchronize()
        n = math.prod(shape)
        if self._host is None or self._host.numel() < n:
            size = max(n, 2 * (0 if self._host is None else self._host.numel()))
            pin = self.device.type == "cuda"
            self._host = regions.host_buffer(torch.zeros(size, dtype=self.dtype, pin_memory=pin))
            self._array = self._host.numpy()
        array = self._array[:n].reshape(shape)
        array.fill(0)
        fill(array)
        dev = torch.empty(shape, dtype=self.dtype, device=self.device)
        dev.copy_(self._host[:n].view(shape), non_blocking=True)
        if self.device.type == "cuda":
            self._done = torch.cuda.Event()  # type: ignore[no-untyped-call]
            self._done.record()
        return dev


_staging = threading.local()


def upload(values: Any, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Host ``values`` (a sequence, nested sequences or an array) as a new tensor on ``device``,
    through the calling thread's pinned staging (``HostStaging``): never a blocking copy."""
    array = np.asarray(values)
    stagings: dict[tuple[torch.dtype, torch.device], HostStaging] = getattr(_staging, "by_kind", None) or {}
    _staging.by_kind = stagings
    staging = stagings.get((dtype, device))
    if staging is None:
        staging = stagings[(dtype, device)] = HostStaging(dtype, device)

    def fill(out: np.ndarray) -> None:
        out[...] = array

    return staging.upload(array.shape, fill)


def host_read(tensors: Sequence[Tensor]) -> list[np.ndarray]:
    """Device tensors on the host after one wait: each copied without blocking into pinned memory,
    then the host waits once, for the last copy (a sync of the host with the GPU, counted once by
    the observers of model/regions.py), instead of once per tensor."""
    regions.note_read("host_read")
    out = []
    for t in tensors:
        host = torch.empty(t.shape, dtype=t.dtype, pin_memory=t.device.type == "cuda")
        host.copy_(t, non_blocking=True)
        out.append(regions.host_buffer(host))
    if tensors and tensors[0].device.type == "cuda":
        done = torch.cuda.Event()  # type: ignore[no-untyped-call]
        done.record()
        done.synchronize()
    return [h.numpy() for h in out]
