"""The shared speech as the tests and benchmarks use it: the first seconds of a file as a client
would send them, and the segments a server's VAD cuts from a whole clip."""

from __future__ import annotations

from pathlib import Path
from typing import Any


async def vad_segments(samples16k: Any) -> list[Any]:
    """The segments (``SegmentReady``) a server cuts from a whole 16 kHz float32 clip at the default
    VAD settings, the session's way: the ``VadWorker`` scores a fresh silero state, a ``Segmenter``
    cuts. No model runs: the spans a Translate call of the clip would return, in VAD time only."""
    from translate_svc.vad.segmenter import Segmenter, SegmenterConfig, SegmentReady
    from translate_svc.vad.silero import SileroVad
    from translate_svc.vad.worker import VadWorker

    vad = SileroVad()
    worker = VadWorker(vad)
    try:
        probs = await worker.probabilities(vad.new_state(), samples16k, last=True)
    finally:
        worker.close()
    segmenter = Segmenter(SegmenterConfig())
    return [e for e in segmenter.push(samples16k, probs) + segmenter.finish() if isinstance(e, SegmentReady)]


def speech_pcm16(path: Path, seconds: float, rate: int) -> Any:
    """The first ``seconds`` of a shared speech file as mono PCM16 (int16 samples) at ``rate``:
    what the doors' tests stream as a client or a microphone would."""
    import numpy as np
    import soxr

    from translate_svc.client_cli.decode import load_pcm16k

    pcm = load_pcm16k(path)[: int(16000 * seconds)].astype(np.float32) / 32768.0
    if rate != 16000:
        pcm = soxr.resample(pcm, 16000, rate)
    return np.clip(np.round(pcm * 32767), -32768, 32767).astype("<i2")
