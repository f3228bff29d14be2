"""The end-of-turn model's answers and cost, fused and unfused (issue 102, 2026-12-01).

    python -m benchmarks.studies.turn_model_cpu

Smart Turn v3.2's file is int8; onnxruntime's extended fusions run its products through kernels
whose sums saturate on a CPU without VNNI. Prints whether this CPU has VNNI
(``turn_end.exact_fused_int8``), the model's answer on four clips of jfk.flac at each optimization
level, and one 8 s window's thread CPU fused and unfused (best and median of 7, interleaved).
"""

from __future__ import annotations

import time

import numpy as np
import onnxruntime as ort

from tests.support.paths import SHARED_AUDIO
from tests.support.speech import shared_pcm
from translate_svc.vad import turn_end
from translate_svc.vad.onnx_session import one_thread_session


def main() -> None:
    content, _ = shared_pcm(SHARED_AUDIO, "jfk.flac")
    pcm = np.frombuffer(content, "<i2").astype(np.float32) / 32768
    at = 16  # samples a ms
    clips = {
        '"ask" alone (0.73 s)': pcm[3270 * at : 3270 * at + round(0.734 * 16000)],
        '"ask not" + 300 ms alone': pcm[3270 * at : (4450 + 300) * at],
        "jfk's first 4.4 s": pcm[: 4400 * at],
        "jfk whole (10.6 s)": pcm[: 10600 * at],
    }
    feats = {k: turn_end.features(v)[None] for k, v in clips.items()}
    print(f"VNNI (fused int8 sums exactly): {turn_end.exact_fused_int8()}")
    for level in ("ORT_DISABLE_ALL", "ORT_ENABLE_BASIC", "ORT_ENABLE_ALL"):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
        s = ort.InferenceSession(str(turn_end.model_path()), opts, providers=["CPUExecutionProvider"])
        name = s.get_inputs()[0].name
        print(level, {k: round(float(np.ravel(s.run(None, {name: f})[0])[0]), 4) for k, f in feats.items()})
    window = turn_end.features(pcm)[None]
    sessions = {fuse: one_thread_session(turn_end.model_path(), fuse=fuse) for fuse in (True, False)}
    name = sessions[True].get_inputs()[0].name
    spent: dict[bool, list[float]] = {True: [], False: []}
    for s in sessions.values():
        s.run(None, {name: window})
    for _ in range(7):
        for fuse, s in sessions.items():
            t = time.thread_time()
            s.run(None, {name: window})
            spent[fuse].append((time.thread_time() - t) * 1000)
    for fuse, ms in spent.items():
        print(f"{'fused' if fuse else 'unfused'}: {min(ms):.1f} ms best, {float(np.median(ms)):.1f} ms median a window")


if __name__ == "__main__":
    main()
