"""Stages under captured CUDA graphs, one graph per bucket, and the host staging that feeds them
("the GPU does the work, not Python").

On CUDA a stage run eagerly costs the host one launch per kernel (tens of microseconds each: the
encoder alone is about a thousand for a segment); the same stage replayed from a captured graph
costs one. ``GraphedStage`` runs a stage's static path (a function of tensors whose shapes are a
bucket's: model/stages/shapes.py) inside a capture region (model/regions.py):

- on CUDA, while ``capturing`` (the warm-up: every bucket runs there before the server says
  ready), the first call of a bucket runs it eagerly twice (kernels loaded, plans made), then
  captures it into a graph with static input and output buffers; every later call copies its
  inputs into that bucket's buffers, replays, and returns copies of the outputs, queued right
  after the replay. Never the buffers themselves: the graphs of a thread share one memory pool,
  so a graph's outputs may lie in memory another graph (captured before it) uses for its
  intermediates, and any later replay of that other graph overwrites them (seen on an H200,
  2026-11-30: durations read as 10^18 frames). A bucket met after the warm-up runs eagerly
  (a graph miss, counted on every device: ``translate_svc_model_graph_misses_total{stage}``); a
  capture that fails leaves the bucket eager, logged and counted
  (``translate_svc_model_capture_failures_total{stage}``), never a failed start;
- elsewhere (CPU) the same function runs eagerly inside the region (with graphs on, the CUDA plan
  on a CPU, on the bucket's static buffers, copied in and out as on CUDA): CI runs the code the
  GPU replays, and the sync guard (``HostCosts(strict=True)``, tests/support/dispatch_count.py) checks
  that it never reads the device.

Graphs of one thread share one memory pool (``thread_pool``): one thread's replays never overlap,
so their intermediate buffers may; a graph's outputs are live only until the next replay of any
graph of the pool, hence the copy after each replay. A stage
that two threads run (text-to-unit and the vocoder: on the finish thread for segments, on the model
thread for texts) has graphs per thread, each warmed and captured on its own thread.

``HostStaging`` is a ring of pinned host buffers, each filled through numpy and copied to the device
in one non-blocking copy (a pageable ``torch.tensor(..., device=)`` blocks the host until the GPU
has run everything queued before it), and reused once its copy has run (an event asked, never
waited for). Model thread only, or the thread that owns the stage.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
from collections import deque
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
    #: the bucket's graph; None where it is counted, not captured (a CPU with graphs on: the same
    #: static buffers and copies, the stage run eagerly on them)
    graph: torch.cuda.CUDAGraph | None
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]


class GraphedStage:
    """One stage's static path, captured per bucket on CUDA (see the module docstring).

    ``run(*inputs)`` returns a tensor or a tuple of tensors; it must not read the device on the host
    nor make tensors from host data (what the sync guard checks), and its shapes must follow from
    its inputs' alone. A stage may run on several threads (the finish thread's text-to-unit and the
    model thread's, for texts): each thread captures and replays graphs of its own, in its own pool.

    With graphs on and no CUDA device (the CUDA plan on a CPU: model/build.py), each bucket keeps
    the static buffers a graph would have and every call copies its inputs in and its outputs out
    as on CUDA, running the stage eagerly on the static inputs: the copies are counted where the
    GPU's host pays them."""

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
        #: buffers, copies and bookkeeping count what the GPU would pay and miss). Off, the static
        #: path runs eagerly inside its region, never captured, never a miss
        self.enabled = self._cuda
        #: graphs captured (every thread's), buckets whose capture failed, and calls on a bucket
        #: first met after the warm-up (graph misses: eager on CUDA)
        self.captured = 0
        self.failures = 0
        self.misses = 0

    def _graphs(self) -> tuple[dict[Hashable, _Captured | None], GraphPool]:
        local = self._local
        if not hasattr(local, "graphs"):
            local.graphs, local.pool = {}, thread_pool()
        return local.graphs, local.pool

    def __call__(self, key: Hashable | None, *inputs: Tensor, **fixed: Any) -> tuple[Tensor, ...]:
        """The stage on ``inputs`` (``key``: their bucket, which ``fixed``, the stage's other
        arguments, are part of; None: shapes that do not repeat, never captured).

        The outputs are copies (a caller may keep them): the bucket's own output buffers are
        overwritten by later replays of this thread's graphs (the module docstring).

        A key this thread first meets after the warm-up (``capturing`` off) is a **graph miss**:
        on CUDA it runs eagerly, one launch a kernel; it is counted (``misses``,
        ``translate_svc_model_graph_misses_total{stage}``) on every device and runs outside the
        capture region, so the host-cost counters see it as the GPU would (model/regions.py). The
        copies into a bucket's inputs and out of its outputs run outside the region too: the GPU's
        host launches them one by one."""
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
            with regions.region(self.name):
                if not self._cuda:  # this call's results are the bucket's first outputs
                    counted = graphs[key] = _counted(inputs, run)
                    return tuple(o.clone() for o in counted.outputs)
                graphs[key] = self._capture(key, inputs, pool, run)
        entry = graphs[key]
        if entry is None:  # a failed capture: the bucket runs eagerly
            with regions.region(self.name):
                return _tuple(run(*inputs))
        for static, x in zip(entry.inputs, inputs, strict=True):
            static.copy_(x, non_blocking=True)
        with regions.region(self.name):
            if entry.graph is not None:
                entry.graph.replay()
            else:
                for out, got in zip(entry.outputs, _tuple(run(*entry.inputs)), strict=True):
                    out.copy_(got)
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


def _counted(inputs: Sequence[Tensor], run: Callable[..., Any]) -> _Captured:
    """A bucket met in the warm-up on a CPU with graphs on: the static buffers a graph would have
    (its inputs' copies, its outputs' shapes), nothing captured."""
    static = tuple(x.clone() for x in inputs)
    return _Captured(None, static, tuple(o.clone() for o in _tuple(run(*static))))


def _tuple(out: Tensor | tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    return out if isinstance(out, tuple) else (out,)


#: staging buffers a ``HostStaging`` keeps at most: an upload past them waits for the oldest's copy
RING = 32


class _Copies(threading.local):
    """This thread's copies out of staging buffers: ``queued`` so far, and how many of the first
    the host has waited past (``waited_past``). On CUDA an event says when a copy ran; on a CPU,
    where every copy runs at once, a count (``regions.observed``) takes a buffer as busy until
    then, as the GPU's host must."""

    queued = 0
    done = 0


_copies = _Copies()


def copies_mark() -> int:
    """A point in this thread's queue of work: the staging copies queued before it (a wait on an
    event recorded now is a wait for them too)."""
    return _copies.queued


def waited_past(mark: int) -> None:
    """The host waited for the device up to ``mark`` (``copies_mark`` where the work it waited
    for was queued): the staging copies before it have run."""
    _copies.done = max(_copies.done, mark)


def drained(device: torch.device) -> None:
    """The host waits for all the device's work queued so far (a start-up's end, never a request's:
    counted as a wait, ``regions.note_wait``): every staging copy of this thread has run since."""
    regions.note_wait("drained")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    waited_past(copies_mark())


@dataclass(eq=False)
class _Slot:
    """One staging buffer (pinned on CUDA), its numpy view, and its last copy: the event recorded
    after it (CUDA) and its place in the thread's copies (``copies_mark``)."""

    host: Tensor
    array: np.ndarray
    event: Any = None
    mark: int = -1


class HostStaging:
    """Pinned host buffers (named host buffers for the counters: model/regions.py) filled through
    numpy and copied to the device without blocking, used in turn: an upload takes the oldest
    buffer whose last copy has run (its event, asked without waiting), else a new one, so no
    upload waits for an earlier copy (a copy queued behind the encoder or a decode step may run
    late). Only past ``most`` buffers in flight does an upload wait, for the oldest (counted:
    ``regions.note_wait``). A buffer grows to the largest upload asked of it. The calling thread's
    own (one thread uploads through it: the copies of one stream run in order)."""

    def __init__(self, dtype: torch.dtype, device: torch.device, *, most: int = RING) -> None:
        self.dtype, self.device = dtype, device
        self._cuda = device.type == "cuda"
        self.most = most
        #: the buffers, oldest copy first
        self._slots: deque[_Slot] = deque()
        #: uploads that waited for a buffer (all ``most`` in flight)
        self.waits = 0

    @property
    def buffers(self) -> int:
        return len(self._slots)

    def _ran(self, slot: _Slot) -> bool:
        """Whether the buffer's last copy has run (without waiting)."""
        if self._cuda:
            return slot.event is None or bool(slot.event.query())
        return not regions.observed() or slot.mark < _copies.done

    def _take(self, n: int) -> _Slot:
        """A buffer for ``n`` values whose last copy has run."""
        slot = None
        if self._slots and self._ran(self._slots[0]):
            slot = self._slots.popleft()
        elif len(self._slots) >= self.most:
            slot = self._slots.popleft()
            self.waits += 1
            regions.note_wait("staging full")
            if slot.event is not None:
                slot.event.synchronize()
            waited_past(slot.mark + 1)
        if slot is None or slot.host.numel() < n:
            size = max(n, 2 * (0 if slot is None else slot.host.numel()))
            # empty: each upload zeroes what it takes (numpy, on the host), so no fill kernel here
            host = regions.host_buffer(torch.empty(size, dtype=self.dtype, pin_memory=self._cuda))
            slot = _Slot(host, host.numpy(), None if slot is None else slot.event)
        return slot

    def upload(self, shape: tuple[int, ...], fill: Callable[[np.ndarray], None]) -> Tensor:
        """``fill(array)`` writes the values into a staged array of ``shape`` (zeros where it writes
        nothing); they are copied to a new device tensor without blocking, which is returned."""
        n = math.prod(shape)
        slot = self._take(n)
        array = slot.array[:n].reshape(shape)
        array.fill(0)
        fill(array)
        dev = torch.empty(shape, dtype=self.dtype, device=self.device)
        dev.copy_(slot.host[:n].view(shape), non_blocking=True)
        slot.mark = _copies.queued
        _copies.queued += 1
        if self._cuda:
            if slot.event is None:
                slot.event = torch.cuda.Event()  # type: ignore[no-untyped-call]
            slot.event.record()
        self._slots.append(slot)
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
    waited_past(copies_mark())  # every copy this thread queued before has run
    return [h.numpy() for h in out]
