"""What the model tests give the runner (``model/runner.py``) beside audio: text rows, simultaneous
steps and a commit policy, and the vocoder's modes (per row or batched, with or without length
buckets) to run a batch in each."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from translate_svc.model.runner import SeamlessRunner
from translate_svc.model.simultaneous import CommitPolicy
from translate_svc.model.stages.shapes import bucket_length
from translate_svc.model_api.requests import (
    ModelInput,
    ModelOutput,
    SimulRequest,
    SimulRowOutput,
    SimulTarget,
    SourceText,
)

#: (text, its language): different lengths (so batches are padded) and two source languages
TEXTS = [
    ("Hello world, how are you today?", "eng"),
    ("Short.", "eng"),
    ("Una frase en español bastante más larga que las otras dos, con comas, y números: 42.", "spa"),
]
NO_AUDIO = np.zeros(0, np.float32)


def text_input(text: str, src: str, targets: tuple[str, ...], **kw: Any) -> ModelInput:
    return ModelInput(NO_AUDIO, targets, None, text=SourceText(text, src), **kw)


def step_input(
    audio: np.ndarray, *targets: SimulTarget, speech: bool = True, speaker_id: int = 0, **step: Any
) -> ModelInput:
    """A step of ``audio`` into ``targets`` (``step``: the rest of its ``SimulRequest``)."""
    request = SimulRequest(targets, **step)
    return ModelInput(audio, tuple(t.language for t in targets), speech=speech, speaker_id=speaker_id, simul=request)


def rows_of(out: ModelOutput) -> tuple[SimulRowOutput, ...]:
    assert out.simul is not None
    return tuple(out.simul.values())


def commit_first(k: int) -> CommitPolicy:
    """A commit policy that commits the hypothesis' first ``k`` tokens."""
    return lambda target, hypothesis, word_starts: hypothesis[:k]


#: (batched vocoder, length buckets): CPU's default, CUDA's default, and the other two
VOCODER_MODES = [(False, True), (True, False), (True, True), (False, False)]


@contextlib.contextmanager
def vocoder_mode(runner: SeamlessRunner, batched: bool, buckets: bool) -> Iterator[list[int]]:
    """Per-row (CPU default) or one padded, masked call for all rows (what CUDA does); with or
    without padding units and frames up to length buckets (CPU default)."""
    rows: list[int] = []  # rows per vocoder call: its unit embedding runs once a call
    hook = runner.stages.model.vocoder.unit_embedding.register_forward_hook(
        lambda mod, args, out: rows.append(out.shape[0])
    )
    voc = runner.stages._vocoder
    saved = voc.batched, voc.max_padding, voc.bucket
    voc.batched, voc.max_padding, voc.bucket = batched, 1000.0, bucket_length if buckets else None
    try:
        yield rows
    finally:
        voc.batched, voc.max_padding, voc.bucket = saved
        hook.remove()
