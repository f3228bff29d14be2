"""What the GPU's host would pay for the model's work, counted on CPU (issue 88).

``HostCosts`` is a ``TorchDispatchMode`` over the model's code run on CPU in the CUDA configuration.
Each aten op it sees is one of:

- a **kernel** (one launch on CUDA): any op but views and metadata (``func.is_view``, ``detach``,
  ``empty``: no kernel). Inside a capture region (``translate_svc/model/regions.py``) the region
  costs one graph launch, whatever it holds; outside, each kernel is an eager launch;
- a **sync**: a read of a device value on the host (``item``/``int()``/``bool()``: the ops
  ``_local_scalar_dense``, ``is_nonzero``, ``item``, ``equal``; ``nonzero``; boolean-mask
  indexing; ``repeat_interleave`` without ``output_size``; ``masked_select``; ``unique``), a
  ``graphs.host_read`` (one wait for several tensors), a wait the code notes where it is written
  (``regions.note_wait``: an event's or a stream's ``synchronize``, which the CPU never runs), or
  a read of a whole tensor (``tolist``, ``cpu``, ``numpy`` of a tensor that is not a named host
  buffer: patched while counting, since on CPU they dispatch nothing). The decode's wait for its
  read one step behind (``regions.READ_BEHIND``) is counted apart (``read_behind``);
- an **upload**: a tensor made from host data (``torch.tensor``, ``from_numpy``: the op
  ``lift_fresh``), a blocking host-to-device copy on CUDA.

Counts are kept per stage: the innermost ``stage(name)`` block open on the counting thread (the
tool wraps each stage's entry point), else ``other``. **New shapes** are the signatures (op, input
shapes and dtypes, other arguments) of convolutions, matrix products and attention first met after
``mark_warm``: on CUDA each is a kernel selection or a cuDNN plan on the request that meets it.

Only the thread that entered the mode is counted (dispatch modes are per thread): run the finish
inline while counting.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from translate_svc.model import regions

#: the read behind's wait (``regions.READ_BEHIND``; the same name where code before it is counted)
READ_BEHIND = getattr(regions, "READ_BEHIND", "read behind")

#: ops that launch nothing: they only make or describe tensors
_NO_KERNEL = {
    "aten::detach",
    "aten::lift_fresh",
    "aten::empty",
    "aten::empty_strided",
    "aten::empty_like",
    "aten::_local_scalar_dense",
    "aten::alias",
    "aten::sym_size",
    "aten::sym_stride",
    "aten::sym_numel",
    "aten::sym_storage_offset",
    "aten::is_nonzero",
    "aten::item",
    "aten::equal",
    "aten::_unsafe_view",
    "aten::set_",
}
#: ops that read a device value on the host (a sync on CUDA)
_SYNC = {
    "aten::_local_scalar_dense",
    "aten::is_nonzero",
    "aten::item",
    "aten::equal",
    "aten::nonzero",
    "aten::masked_select",
    "aten::_unique2",
    "aten::unique_dim",
    "aten::unique_consecutive",
    "aten::argwhere",
}
#: the op families whose new shapes cost a kernel selection or plan on CUDA
_SHAPED = (
    "conv",
    "mm",
    "addmm",
    "bmm",
    "baddbmm",
    "linear",
    "matmul",
    "scaled_dot_product",
    "einsum",
)


def _name(func: Any) -> str:
    return str(func._schema.name)


def _shaped(name: str) -> bool:
    base = name.split("::", 1)[-1]
    return any(base.startswith(f) or f"_{f}" in base for f in _SHAPED)


def _signature(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    def one(a: Any) -> Any:
        if isinstance(a, torch.Tensor):
            return ("T", tuple(a.shape), str(a.dtype))
        if isinstance(a, (list, tuple)):
            return tuple(one(x) for x in a)
        if isinstance(a, (int, float, bool, str)) or a is None:
            return a
        return type(a).__name__

    return (str(func), one(args), tuple(sorted((k, one(v)) for k, v in kwargs.items())))


@dataclass
class StageCounts:
    kernels: int = 0  # eager kernel launches (outside regions)
    in_regions: int = 0  # kernels inside capture regions
    graph_launches: int = 0  # regions entered (each one graph launch on CUDA)
    syncs: Counter[str] = field(default_factory=Counter)  # by what read
    #: the decode's waits for its read behind (one a step: the wait the design keeps)
    read_behind: int = 0
    uploads: int = 0
    new_shapes: Counter[str] = field(default_factory=Counter)  # by op family, after mark_warm
    #: bytes of the keys and values an attention inside a region read (the decode step's KV reads)
    kv_bytes: int = 0

    def add(self, other: StageCounts) -> None:
        self.kernels += other.kernels
        self.in_regions += other.in_regions
        self.graph_launches += other.graph_launches
        self.syncs.update(other.syncs)
        self.read_behind += other.read_behind
        self.uploads += other.uploads
        self.new_shapes.update(other.new_shapes)
        self.kv_bytes += other.kv_bytes


class SyncInRegion(AssertionError):
    """A host sync, an upload or a read inside a capture region (the sync guard's failure)."""


class HostCosts(TorchDispatchMode):
    """Counts per stage (see the module docstring). ``strict``: a sync or upload inside a capture
    region raises ``SyncInRegion`` (the sync guard); otherwise it is counted and recorded in
    ``region_syncs``."""

    def __init__(self, *, strict: bool = False) -> None:
        super().__init__()
        self.strict = strict
        self.by_stage: dict[str, StageCounts] = defaultdict(StageCounts)
        self.region_syncs: list[tuple[str, str]] = []  # (region, what)
        #: the capture regions entered, by name
        self.regions_seen: Counter[str] = Counter()
        #: the first new shapes' signatures and stages (what a warm-up missed), at most 200
        self.new_signatures: list[tuple[str, tuple[Any, ...]]] = []
        self._stages: list[str] = []
        self._regions: list[str] = []
        #: the shape signatures met so far (a count may start from another's)
        self.seen: set[tuple[Any, ...]] = set()
        self._warm = False
        self._thread = threading.get_ident()
        self._patches: list[tuple[Any, str, Any]] = []

    # -- what the tool calls ------------------------------------------------------------------

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self._stages.append(name)
        try:
            yield
        finally:
            self._stages.pop()

    def wrap(self, owner: Any, attr: str, name: str) -> None:
        """``owner.attr`` (a function or method) counted as stage ``name`` while this mode lives."""
        original = getattr(owner, attr)
        counter = self

        def staged(*args: Any, **kwargs: Any) -> Any:
            with counter.stage(name):
                return original(*args, **kwargs)

        setattr(owner, attr, staged)
        self._patches.append((owner, attr, original))

    def mark_warm(self) -> None:
        """Shapes met from now on are new (counted) unless seen before."""
        self._warm = True

    def reset(self) -> None:
        """Counts back to zero (the shapes seen are kept)."""
        self.by_stage = defaultdict(StageCounts)
        self.region_syncs = []

    def total(self) -> StageCounts:
        out = StageCounts()
        for c in self.by_stage.values():
            out.add(c)
        return out

    # -- the region observer ------------------------------------------------------------------

    def entered(self, name: str) -> None:
        if threading.get_ident() != self._thread:
            return
        if not self._regions:
            self._current().graph_launches += 1
        self.regions_seen[name] += 1
        self._regions.append(name)

    def left(self, name: str) -> None:
        if threading.get_ident() != self._thread:
            return
        self._regions.pop()

    def read(self, what: str) -> None:
        if threading.get_ident() == self._thread:
            self._sync(what)

    # -- the mode -----------------------------------------------------------------------------

    def __enter__(self) -> HostCosts:
        super().__enter__()
        self._observing = regions.observing(self)
        self._observing.__enter__()
        for attr in ("tolist", "cpu", "numpy"):
            self._patch_read(attr)
        return self

    def __exit__(self, *exc: Any) -> None:
        for owner, attr, original in reversed(self._patches):
            setattr(owner, attr, original)
        self._patches = []
        self._observing.__exit__(*exc)
        super().__exit__(*exc)

    def _patch_read(self, attr: str) -> None:
        original = getattr(torch.Tensor, attr)
        counter = self

        def read(t: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == counter._thread and not regions.is_host_buffer(t):
                counter._sync(attr)
            return original(t, *args, **kwargs)

        setattr(torch.Tensor, attr, read)
        self._patches.append((torch.Tensor, attr, original))

    def _current(self) -> StageCounts:
        return self.by_stage[self._stages[-1] if self._stages else "other"]

    def _sync(self, what: str) -> None:
        if what == READ_BEHIND and not self._regions:
            self._current().read_behind += 1
            return
        if self._regions:
            self.region_syncs.append((self._regions[-1], what))
            if self.strict:
                raise SyncInRegion(f"{what} inside the capture region {self._regions[-1]!r}")
        self._current().syncs[what] += 1

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        kwargs = kwargs or {}
        name = _name(func)
        counts = self._current()
        if name == "aten::lift_fresh":
            if self._regions:
                self.region_syncs.append((self._regions[-1], "upload"))
                if self.strict:
                    raise SyncInRegion(f"a tensor made from host data inside the capture region {self._regions[-1]!r}")
            counts.uploads += 1
        elif name in _SYNC:
            self._sync(name.split("::")[1])
        elif name == "aten::index" and any(
            isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in (args[1] or ())
        ):
            self._sync("boolean index")
        elif name == "aten::repeat_interleave" and kwargs.get("output_size") is None and len(args) < 3:
            if isinstance(args[0], torch.Tensor) and (len(args) < 2 or isinstance(args[1], torch.Tensor)):
                self._sync("repeat_interleave")
        if not func.is_view and name not in _NO_KERNEL:
            if self._regions:
                counts.in_regions += 1
                if "scaled_dot_product" in name:
                    counts.kv_bytes += sum(a.nbytes for a in args[1:3] if isinstance(a, torch.Tensor))
            else:
                counts.kernels += 1
            if _shaped(name):
                sig = _signature(func, args, kwargs)
                if sig not in self.seen:
                    self.seen.add(sig)
                    if self._warm:
                        counts.new_shapes[_family(name)] += 1
                        if len(self.new_signatures) < 200:
                            self.new_signatures.append((self._stages[-1] if self._stages else "other", sig))
        return func(*args, **kwargs)


def _family(name: str) -> str:
    base = name.split("::", 1)[-1]
    if "conv" in base:
        return "conv"
    if "scaled_dot_product" in base:
        return "attention"
    return "gemm"


def counted(fn: Callable[[], Any], costs: HostCosts) -> Any:
    """``fn()`` with ``costs`` counting (entered and left around it)."""
    with costs:
        return fn()
