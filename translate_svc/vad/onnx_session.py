"""The onnxruntime session of the VAD's small models (silero, Smart Turn): CPU, one intra-op and
one inter-op thread, run in order. These models are tiny; more threads only contend with the
model thread and the event loop. ``InferenceSession.run`` may be called from several threads."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort


def one_thread_session(path: Path, *, fuse: bool = True) -> ort.InferenceSession:
    """A CPU session of the ONNX file at ``path`` on one thread. ``fuse=False``: only onnxruntime's
    basic graph rewrites, none of its extended fusions: an int8 model (Smart Turn's) then sums its
    products exactly, as on every CPU. Fused, its int8 kernels on AVX2 (no VNNI) read jfk's "ask"
    alone 67 % complete where the unfused graph reads 10 %, as fused on AVX-512 VNNI (2026-12-01)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if not fuse:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
