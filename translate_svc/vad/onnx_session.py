"""The onnxruntime session of the VAD's small models (silero, Smart Turn): CPU, one intra-op and
one inter-op thread, run in order. These models are tiny; more threads only contend with the
model thread and the event loop. ``InferenceSession.run`` may be called from several threads."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort


def one_thread_session(path: Path) -> ort.InferenceSession:
    """A CPU session of the ONNX file at ``path`` on one thread."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
