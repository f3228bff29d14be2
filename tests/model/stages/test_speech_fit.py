"""Speech fitted to a time in the vocoder (issue 90 item 2, dubbing to the source's clock:
``ModelInput.fit``, model/stages/vocoder.py ``fitted``) on the test checkpoint: a fitted row's rate
is chosen on the device from its natural frames and its budget in whole frames,
``clamp(natural / budget, slowest, fastest)``, and the row is then scaled as any rate. So under
the bound's fastest its speech is at most its budget (exactly it where it was sped up), at the
fastest it runs over, below the slowest it is slowed to it; the rate each row was made at comes
back (``Vocoded.rates``, ``ModelOutput.speech_rates``) for plain rows too; fitted and plain rows in
one call each get what they get alone, in every vocoder mode (the plain call exact rows use
among them); through the runner the exact and the fast decoder agree. Before the change the
vocoder had no fit and told no rate. Only lengths, counts, rates and equalities: never the random
model's words or samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.support.runner_inputs import VOCODER_MODES, vocoder_mode
from tests.support.speech import read_16k
from translate_svc.model.decode.batch import LoopDecoder
from translate_svc.model.runner import SeamlessRunner
from translate_svc.model.stages.seamless import SeamlessStages
from translate_svc.model_api.requests import ModelInput, SpeechFit
from translate_svc.model_api.rows import bare_rows

pytestmark = [pytest.mark.integration, pytest.mark.slow(40)]

LANGS = ("spa", "fra", "spa")
SPEAKERS = (0, 1, 2)
SLOWEST, FASTEST = 0.85, 1.35


@pytest.fixture(scope="module")
def stages(test_model_dir: Path) -> SeamlessStages:
    return SeamlessStages(test_model_dir, device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def runner(stages: SeamlessStages) -> SeamlessRunner:
    return SeamlessRunner(stages)


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


def units_of(stages: SeamlessStages, spans: list[np.ndarray]) -> tuple[torch.Tensor, list[int]]:
    """t2u's units for the spans' decodes (one row each), as the speech stage hands the vocoder."""
    with torch.inference_mode():
        batch = stages.speech_encoder.features([stages.extract_features(s) for s in spans])
        enc, mask = stages.speech_encoder.encode(batch), batch.mask
        plan = bare_rows(["spa"] * len(spans), [()] * len(spans), [len(s) / 16000 for s in spans])
        got = stages.units(enc, mask, stages.decoder.decode(enc, mask, plan))
    assert min(got.counts) > 0
    return got.units, got.counts


def expected_rate(natural: int, budget_frames: int) -> float:
    return min(max(natural / budget_frames, SLOWEST), FASTEST)


@pytest.mark.parametrize(("batched", "buckets"), VOCODER_MODES)
def test_a_fitted_rows_rate_is_its_natural_length_over_its_budget_within_its_bound(
    runner: SeamlessRunner, spans: list[np.ndarray], batched: bool, buckets: bool
) -> None:
    """Three rows in one call: one fitted to 1/1.2 of its natural frames (sped up to end on its
    budget), one not fitted at speed 1.5, one fitted to a third of its frames (past the bound: at
    1.35, over its budget); then the first two fitted to twice their frames (slowed to 0.85)."""
    stages = runner.stages
    units, counts = units_of(stages, spans)
    samples = hop(stages)
    with vocoder_mode(runner, batched, buckets), torch.inference_mode():
        base = stages.vocode(units, counts, LANGS, SPEAKERS)
        natural = [int(f.sum()) for f in base.frames]
        budgets = [max(1, round(natural[0] / 1.2)), 0, max(1, natural[2] // 3)]
        fits = [SpeechFit(budgets[0] * samples / 16, SLOWEST, FASTEST), None, SpeechFit(budgets[2] * samples / 16)]
        got = stages.vocode(units, counts, LANGS, SPEAKERS, [1.0, 1.5, 1.0], fits)
        alone = [
            stages.vocode(
                units[r : r + 1, : counts[r]],
                counts[r : r + 1],
                LANGS[r : r + 1],
                SPEAKERS[r : r + 1],
                [[1.0, 1.5, 1.0][r]],
                [fits[r]],
            )
            for r in range(3)
        ]
        long = [SpeechFit(2 * n * samples / 16, SLOWEST, FASTEST) for n in natural]
        slowed = stages.vocode(units, counts, LANGS, SPEAKERS, None, long)
    assert base.rates == [1.0, 1.0, 1.0]  # a plain row tells its rate too
    want = [expected_rate(natural[0], budgets[0]), 1.5, expected_rate(natural[2], budgets[2])]
    assert SLOWEST < want[0] < FASTEST and want[2] == FASTEST, (natural, budgets)
    np.testing.assert_allclose(got.rates, want, rtol=1e-12)
    assert int(got.frames[0].sum()) == budgets[0]  # sped up: exactly its budget
    assert len(got.waves[0]) <= budgets[0] * samples
    assert int(got.frames[2].sum()) == round(natural[2] / FASTEST) > budgets[2]  # past the bound: over
    assert int(got.frames[1].sum()) == round(natural[1] / 1.5)  # the plain row at its own speed
    for r in range(3):
        assert alone[r].rates == pytest.approx([got.rates[r]], rel=1e-12)
        assert np.array_equal(alone[r].frames[0], got.frames[r]), f"row {r}"
        np.testing.assert_allclose(got.waves[r], alone[r].waves[0], atol=1e-4, err_msg=f"row {r}")
    assert slowed.rates == pytest.approx([SLOWEST] * 3, rel=1e-12)
    for r in range(3):
        assert int(slowed.frames[r].sum()) == round(natural[r] / SLOWEST) <= 2 * natural[r]


def test_the_exact_and_the_fast_runner_fit_alike_and_tell_each_targets_rate(
    stages: SeamlessStages, spans: list[np.ndarray]
) -> None:
    """Through both runners, a batch of a fitted input (its budget 0.9 of its natural speech's),
    one at speed 1.5 and one plain: the same texts, rates and speech lengths; the fitted targets'
    rates each its own (the two targets' speech differ in length), their speech within budget
    when under the bound's fastest."""
    exact, fast = SeamlessRunner(stages), SeamlessRunner(stages, LoopDecoder(stages.decoder, stages.processor, slots=5))
    plain = exact.run([ModelInput(a, ("spa", "fra"), "eng") for a in spans])
    budget = 0.9 * len(plain[0].waveforms["spa"]) / 16  # ms
    items = [
        ModelInput(spans[0], ("spa", "fra"), "eng", fit=SpeechFit(budget, SLOWEST, FASTEST)),
        ModelInput(spans[1], ("spa", "fra"), "eng", speed=1.5),
        ModelInput(spans[2], ("spa", "fra"), "eng"),
    ]
    got = [runner.run(items) for runner in (exact, fast)]
    for a, b in zip(*got, strict=True):
        assert a.texts == b.texts
        assert a.speech_rates.keys() == b.speech_rates.keys() == {"spa", "fra"}
        assert a.speech_rates == pytest.approx(b.speech_rates, rel=1e-12)
        assert {k: len(w) for k, w in a.waveforms.items()} == {k: len(w) for k, w in b.waveforms.items()}
    out = got[0]
    assert out[1].speech_rates == {"spa": 1.5, "fra": 1.5} and out[2].speech_rates == {"spa": 1.0, "fra": 1.0}
    for lang, rate in out[0].speech_rates.items():
        assert SLOWEST <= rate <= FASTEST
        if rate < FASTEST:
            assert len(out[0].waveforms[lang]) <= budget * 16, (lang, rate)
    assert out[0].speech_rates["spa"] > 1.0  # 0.9 of its natural length: sped up
