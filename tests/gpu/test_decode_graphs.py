"""The decode loop's captured step (model/decode/graphs.py) on CUDA (issue 70): replayed graphs write
what the same static step writes eagerly, row for row, with rows joining in waves and one
dropped, in float32 on the test checkpoint (random weights: tokens only, never words)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.gpu]

SPANS = ((0.3, 2.3), (3.3, 4.4), (5.4, 7.7), (8.2, 10.6))


def decode(loop, enc, mask, plan):  # type: ignore[no-untyped-def]
    """The plan's rows joining in two waves, the second row dropped after two steps."""
    import torch

    waves = {0: [0, 3, 5], 2: [1, 2, 4, 6, 7]}
    out, steps = {}, 0
    while waves or len(loop):
        if steps in waves:
            index = torch.tensor(waves.pop(steps), device=enc.device)
            loop.admit([plan.rows[i] for i in index.tolist()], enc.index_select(0, index), mask.index_select(0, index))
        if steps == 3:
            loop.drop(plan.rows[1].id)
        out.update((f.id, f.tokens) for f in loop.step())
        steps += 1
    return out


def test_captured_steps_write_the_static_steps_tokens(test_model_dir: Path, shared_audio: Path) -> None:
    import torch

    from tests.support.speech import read_16k
    from translate_svc.model.decode.graphs import StepGraphs
    from translate_svc.model.decode.loop import DecodeLoop
    from translate_svc.model.stages.seamless import SeamlessStages
    from translate_svc.model_api.rows import bare_rows

    stages = SeamlessStages(test_model_dir, device="cuda", dtype="float32")
    x = read_16k(shared_audio / "jfk.flac")
    audio = [x[int(a * 16000) : int(b * 16000)] for a, b in SPANS]
    batch = stages.speech_encoder.features([stages.extract_features(a) for a in audio])
    with torch.inference_mode():
        enc = stages.speech_encoder.encode(batch)
    items = [k for k in range(len(SPANS)) for _ in ("eng", "fra")]
    index = torch.tensor(items, device=enc.device)
    enc, mask = enc.index_select(0, index), batch.mask.index_select(0, index)
    plan = bare_rows(["eng", "fra"] * len(SPANS), [()] * len(items), [2.0] * len(items))

    eager = DecodeLoop(stages.decoder, slots=8, max_frames=enc.shape[1], static=True)
    captured = DecodeLoop(stages.decoder, slots=8, max_frames=enc.shape[1], static=True)
    graphs = StepGraphs(captured)
    graphs.capture()
    assert {shape.rows for shape, _ in graphs.graphs} == set(captured.buckets) and captured.replay is not None
    want = decode(eager, enc, mask, plan)
    got = decode(captured, enc, mask, plan)
    assert got == want and plan.rows[1].id not in got
