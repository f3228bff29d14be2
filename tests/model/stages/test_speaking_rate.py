"""The speaking rate in the vocoder (issue 90 item 1, model/stages/vocoder.py ``at_rate``) on the test
checkpoint: each row's frames per unit are the differences of ``round(cumsum(frames) / speed)``
of the model's own, so a row's speech is ``round(frames / speed)`` frames long; speed 1 is the
tensor of no speed, bit for bit; rows at different rates in one call (every vocoder mode: per row
or batched, with or without length buckets, the plain call exact rows use) each get what they get
alone. Nothing here asserts the random model's words or samples' values: only lengths, counts and
equalities.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.support.runner_inputs import VOCODER_MODES, vocoder_mode
from tests.support.speech import read_16k
from translate_svc.model.runner import SeamlessRunner
from translate_svc.model.stages.padding import hard_upsample
from translate_svc.model.stages.seamless import SeamlessStages
from translate_svc.model.stages.vocoder import at_rate
from translate_svc.model_api.requests import ModelInput
from translate_svc.model_api.rows import bare_rows

pytestmark = [pytest.mark.integration, pytest.mark.slow(30)]

LANGS = ("spa", "fra", "spa")
SPEAKERS = (0, 1, 2)


@pytest.fixture(scope="module")
def runner(test_model_dir: Path) -> SeamlessRunner:
    """A runner of its own: the vocoder modes are switched on its stages."""
    return SeamlessRunner(SeamlessStages(test_model_dir, device="cpu", dtype="float32"))


@pytest.fixture(scope="module")
def spans(shared_audio: Path) -> list[np.ndarray]:
    """Three spans of jfk.flac of different lengths (so batches are padded)."""
    x = read_16k(shared_audio / "jfk.flac")
    return [x[int(a * 16000) : int(b * 16000)] for a, b in [(0.3, 2.3), (3.3, 4.4), (5.4, 7.7)]]


def hop(stages: SeamlessStages) -> int:
    """Samples per vocoder frame (each HiFi-GAN stage's kernel - 2 x padding is its stride)."""
    out = 1
    for stride, pad, kernel in stages.vocoder_stages:
        assert kernel - 2 * pad == stride
        out *= stride
    return out


def scaled(frames: np.ndarray, speed: float) -> np.ndarray:
    """The rule written out in numpy: the differences of round(cumsum / speed), at least one frame."""
    ends = np.cumsum(frames.astype(np.int64))
    moved = np.maximum(np.rint(ends / speed).astype(np.int64), (ends > 0).astype(np.int64))
    return np.diff(moved, prepend=0)


def units_of(stages: SeamlessStages, spans: list[np.ndarray]) -> tuple[torch.Tensor, list[int]]:
    """t2u's units for the spans' decodes (one row each), as the speech stage hands the vocoder."""
    with torch.inference_mode():
        batch = stages.speech_encoder.features([stages.extract_features(s) for s in spans])
        enc, mask = stages.speech_encoder.encode(batch), batch.mask
        plan = bare_rows(["spa"] * len(spans), [()] * len(spans), [len(s) / 16000 for s in spans])
        got = stages.units(enc, mask, stages.decoder.decode(enc, mask, plan))
    assert min(got.counts) > 0
    return got.units, got.counts


def test_the_rate_is_cumulative_rounding_of_the_models_durations() -> None:
    """``at_rate`` on a table of durations (zero past each row's units): speed 1 returns the same
    tensor; else each row's frames are round(total / speed), every unit's end within half a frame
    of its exact place, units skipped (0 frames) above 1; and the hard upsampling of t2u and the
    vocoder (one gather) takes zero durations as ``repeat_interleave`` does."""
    durations = torch.tensor([[3, 1, 2, 5, 0, 0], [1, 1, 1, 1, 1, 1], [2, 7, 1, 1, 4, 0], [1, 0, 0, 0, 0, 0]])
    for speed in (1.0, 1.5, 0.5, 2.0, 0.75, 1.25):
        rate = torch.full((durations.shape[0],), speed, dtype=torch.float64)
        got = at_rate(durations, rate)
        if speed == 1.0:
            assert torch.equal(got, durations)
        for row, want in zip(got.numpy(), durations.numpy(), strict=True):
            assert row.tolist() == scaled(want, speed).tolist()
            assert int(row.sum()) == max(1, round(int(want.sum()) / speed))
            exact = np.cumsum(want) / speed
            assert np.all(np.abs(np.cumsum(row) - exact) <= 0.5 + 1e-9)
        hidden = torch.arange(durations.shape[0] * 2 * 6, dtype=torch.float32).view(durations.shape[0], 2, 6)
        width = int(got.sum(1).max())
        wide = hard_upsample(hidden, got, width, dim=2)
        for r in range(durations.shape[0]):
            one = torch.repeat_interleave(hidden[r], got[r], dim=1)
            assert torch.equal(wide[r, :, : one.shape[1]], one) and not wide[r, :, one.shape[1] :].any()
    skipped = at_rate(durations, torch.full((4,), 1.5, dtype=torch.float64))
    assert (skipped[1] == 0).any()  # a unit of one frame is skipped at 1.5
    mixed = at_rate(durations, torch.tensor([1.0, 1.5, 0.5, 2.0], dtype=torch.float64))
    for r, speed in enumerate((1.0, 1.5, 0.5, 2.0)):  # each row at its own rate
        assert torch.equal(mixed[r], at_rate(durations[r : r + 1], torch.tensor([speed], dtype=torch.float64))[0])


@pytest.mark.parametrize(("batched", "buckets"), VOCODER_MODES)
def test_frames_per_unit_and_the_waveform_follow_each_rows_rate(
    runner: SeamlessRunner, spans: list[np.ndarray], batched: bool, buckets: bool
) -> None:
    """Rows at 1.5, 0.5 and 2.0 in one vocoder call: each row's frames per unit are its own at
    speed 1 scaled by its rate (``scaled``), its waveform that many frames long (cut where the
    vocoder cuts a row at speed 1, scaled the same way), and what it gets alone; speed 1 is
    bit-identical to no speed."""
    stages = runner.stages
    units, counts = units_of(stages, spans)
    speeds = [1.5, 0.5, 2.0]
    with vocoder_mode(runner, batched, buckets), torch.inference_mode():
        base = stages.vocode(units, counts, LANGS, SPEAKERS)
        ones = stages.vocode(units, counts, LANGS, SPEAKERS, [1.0] * 3)
        got = stages.vocode(units, counts, LANGS, SPEAKERS, speeds)
        alone = [
            stages.vocode(units[r : r + 1, : counts[r]], counts[r : r + 1], LANGS[r : r + 1], SPEAKERS[r : r + 1], [s])
            for r, s in enumerate(speeds)
        ]
    samples = hop(stages)
    skipped = 0
    for r, speed in enumerate(speeds):
        assert np.array_equal(ones.frames[r], base.frames[r]) and np.array_equal(ones.waves[r], base.waves[r])
        frames1 = base.frames[r]
        assert len(frames1) == len(got.frames[r]) == counts[r]
        assert got.frames[r].tolist() == scaled(frames1, speed).tolist(), f"row {r}"
        assert int(got.frames[r].sum()) == max(1, round(int(frames1.sum()) / speed))
        cut1 = len(base.waves[r]) // samples  # the frames the vocoder keeps at speed 1
        assert len(base.waves[r]) == cut1 * samples > 0
        assert len(got.waves[r]) == samples * max(1, round(cut1 / speed)), f"row {r} at {speed}"
        assert np.array_equal(alone[r].frames[0], got.frames[r])
        assert alone[r].waves[0].shape == got.waves[r].shape
        np.testing.assert_allclose(got.waves[r], alone[r].waves[0], atol=1e-4, err_msg=f"row {r}")
        skipped += int((got.frames[r] == 0).sum())
    assert skipped > 0  # some unit got no frame at 2.0: zero durations went through the upsampling


@pytest.mark.parametrize(("batched", "buckets"), VOCODER_MODES)
def test_a_batch_at_mixed_rates_speaks_each_row_at_its_own(
    runner: SeamlessRunner, spans: list[np.ndarray], batched: bool, buckets: bool
) -> None:
    """Through the runner (``ModelInput.speed``): inputs at 1.0, 1.5 and 0.75 in one batch; each
    target's speech is round(frames at 1 / speed) frames (1/1.5 as long, 4/3 as long) and what the
    input gets alone at its rate; an input at speed 1 is what it is with no speed, bit for bit."""
    speeds = [1.0, 1.5, 0.75]
    samples = hop(runner.stages)
    with vocoder_mode(runner, batched, buckets):
        base = runner.run([ModelInput(a, ("spa", "fra"), "eng") for a in spans])
        ones = runner.run([ModelInput(a, ("spa", "fra"), "eng", speed=1.0) for a in spans])
        items = [ModelInput(a, ("spa", "fra"), "eng", speed=s) for a, s in zip(spans, speeds, strict=True)]
        mixed = runner.run(items)
        alone = [runner.run([item])[0] for item in items]
    for k, speed in enumerate(speeds):
        for lang in ("spa", "fra"):
            assert np.array_equal(ones[k].waveforms[lang], base[k].waveforms[lang])
            frames1 = len(base[k].waveforms[lang]) // samples
            assert frames1 > 0
            assert len(mixed[k].waveforms[lang]) == samples * round(frames1 / speed), (k, lang, speed)
            assert alone[k].waveforms[lang].shape == mixed[k].waveforms[lang].shape
            np.testing.assert_allclose(mixed[k].waveforms[lang], alone[k].waveforms[lang], atol=1e-4)
        assert mixed[k].texts == base[k].texts  # the rate changes the speech, not the words


def test_the_rates_are_an_input_of_the_first_parts_graph_not_its_key(
    runner: SeamlessRunner, spans: list[np.ndarray]
) -> None:
    """The vocoder's first part (a CUDA graph per bucket: model/capture.py) takes each row's rate
    as a tensor input beside its ``meta``: calls at different rates give it the same key (one
    graph replays any mix of rates), and the rates it is given are the rows' own."""
    stages = runner.stages
    units, counts = units_of(stages, spans)
    voc = stages._vocoder
    real = voc.first
    seen: list[tuple[object, list[float]]] = []

    def spy(key: object, *inputs: torch.Tensor, **fixed: object) -> tuple[torch.Tensor, ...]:
        rates = [x for x in inputs if x.dtype == torch.float64 and x.dim() == 1]
        assert len(rates) == 1  # the rates travel as one float row, one per row of the call
        seen.append((key, rates[0].tolist()))
        return real(key, *inputs, **fixed)

    with vocoder_mode(runner, True, True), torch.inference_mode():
        voc.first = spy  # type: ignore[method-assign]
        try:
            stages.vocode(units, counts, LANGS, SPEAKERS)
            stages.vocode(units, counts, LANGS, SPEAKERS, [1.5, 0.5, 2.0])
        finally:
            voc.first = real  # type: ignore[method-assign]
    assert len(seen) == 2 and seen[0][0] is not None and seen[0][0] == seen[1][0]
    order = sorted(range(3), key=lambda r: counts[r])  # a batched group's rows, shortest first
    assert seen[0][1][:3] == [1.0, 1.0, 1.0] and seen[1][1][:3] == [[1.5, 0.5, 2.0][r] for r in order]
    assert len(seen[1][1]) >= 3  # the row bucket's padding rows repeat the first row's rate
