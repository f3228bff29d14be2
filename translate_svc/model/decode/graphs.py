"""CUDA graphs of the decode loop's static step, one per row bucket.

``DecodeLoop(static=True)`` (model/decode/loop.py) runs every step on a row bucket over the pool's
whole windows, writing only its static buffers in place (model/decode/step.py). ``StepGraphs``
captures that step (``decode_step.step`` then ``decode_step.choose``) once per bucket, largest first
so the smaller ones fit in its memory pool, and hands the loop ``replay``: a step is then one graph
launch instead of hundreds of kernel launches from Python. A step with a row that has terms (host
processors between the logits and the choice) still runs eagerly.

Capture an empty pool, at start-up (the warm-up and the capture run the free slots; they are reset
after). CUDA only: on any other device the constructor refuses, and the same static path runs
eagerly (the CPU tests run it). ``decode_pool`` makes the fast runner's pools (model/decode/batch.py,
model/stepping.py) this way on CUDA (``model.decode_graphs``, model/build.py). Tested under tests/gpu/. Model
thread only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from translate_svc.model.capture import thread_pool
from translate_svc.model.decode.loop import DecodeLoop
from translate_svc.model.decode.step import StepShape
from translate_svc.model.stages.decoder import TextDecoder

#: eager runs of each bucket before its capture (kernels loaded, library handles made)
WARM_RUNS = 2


def decode_pool(
    decoder: TextDecoder, *, slots: int, max_frames: int, static: bool, graphs: bool, **kw: Any
) -> DecodeLoop:
    """A decode pool (``DecodeLoop``; ``kw``: its other arguments). ``static``: every step a row
    bucket over the pool's whole windows (the CUDA path, model/build.py), else each step on the
    active rows only (the CPU's faster path); with ``graphs`` too, on a CUDA device, the step is
    captured per row bucket now (the pool is empty)."""
    cuda = next(decoder.model.text_decoder.parameters()).device.type == "cuda"
    loop = DecodeLoop(decoder, slots=slots, max_frames=max_frames, static=static, **kw)
    if static and graphs and cuda:
        StepGraphs(loop).capture()
    return loop


class StepGraphs:
    """A captured static step per row bucket of one ``DecodeLoop`` (see the module docstring)."""

    def __init__(self, loop: DecodeLoop) -> None:
        if loop.device.type != "cuda":
            raise RuntimeError(f"CUDA graphs need the decode pool on a CUDA device (it is on {loop.device.type})")
        if not loop.static:
            raise ValueError("only the static step can be captured: DecodeLoop(static=True)")
        self.loop = loop
        self.graphs: dict[tuple[StepShape, int], torch.cuda.CUDAGraph] = {}

    def _run(self, shape: StepShape, parity: int) -> None:
        self.loop.static_step(shape, parity)

    @torch.inference_mode()
    def capture(self, buckets: Sequence[int] | None = None) -> None:
        """Capture ``buckets`` (default: the loop's), then let the loop replay them."""
        loop = self.loop
        if len(loop):
            raise RuntimeError("capture the decode pool while it is empty (the capture runs its free slots)")
        chosen = sorted(set(buckets or loop.buckets), reverse=True)
        if any(b not in loop.buckets for b in chosen):
            raise ValueError(f"buckets {chosen} are not all the loop's {loop.buckets}")
        parities = (0, 1) if loop.copy_in_step else (0,)  # a graph per read set it copies into
        # every (rows, token window, frame window) bucket of the chosen rows, largest first
        shapes = sorted(
            (s for s in loop.step_shapes if s.rows in chosen), key=lambda s: (-s.rows, -s.window, -s.frames)
        )
        side = torch.cuda.Stream()  # type: ignore[no-untyped-call]
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for shape in shapes:
                for _ in range(WARM_RUNS):
                    self._run(shape, 0)
        torch.cuda.current_stream().wait_stream(side)
        pool = thread_pool()  # shared with this thread's other stages' graphs (model/capture.py)
        for shape in shapes:
            for parity in parities:
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, pool=pool.handle, capture_error_mode="thread_local"):
                    self._run(shape, parity)
                pool.handle = graph.pool()
                self.graphs[(shape, parity)] = graph
        torch.cuda.synchronize()
        loop.reset_free()
        loop.replay = self.replay

    def replay(self, shape: StepShape, parity: int) -> None:
        self.graphs[(shape, parity if self.loop.copy_in_step else 0)].replay()
