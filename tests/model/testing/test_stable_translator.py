"""The stable fake translator (model/testing/stable.py) with plain values: its words extend with the audio
except the last one, its speech has a known length per word, and LocalAgreement's commit points on
it are exact. No torch: it reads the test checkpoint's two JSON files only."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from translate_svc.model.testing import stable
from translate_svc.model.testing.stable import SAMPLES_PER_WORD, UNITS_PER_WORD, WORD_SAMPLES, StableTranslator
from translate_svc.model_api.requests import ModelInput, ModelOutput, SimulRequest, SimulRowOutput, SimulTarget

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def translator(tmp_path_factory: pytest.TempPathFactory, test_model_dir: Path) -> StableTranslator:
    """On a copy of the test checkpoint's configs (the weights are never read)."""
    src = test_model_dir
    out = tmp_path_factory.mktemp("stable")
    for name in ("config.json", "generation_config.json", "translate_svc_test_model.json"):
        shutil.copy(src / name, out / name)
    return StableTranslator(out)


def audio(samples: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(samples).astype(np.float32)


def step(t: StableTranslator, samples: int, *targets: SimulTarget, **req: object) -> ModelOutput:
    langs = tuple(x.language for x in targets)
    item = ModelInput(audio(samples), langs, "eng", simul=SimulRequest(targets, **req))  # type: ignore[arg-type]
    (out,) = t.run([item])
    return out


def row(out: ModelOutput, lang: str = "spa") -> SimulRowOutput:
    assert out.simul is not None
    return out.simul[lang]


def test_a_longer_prefix_extends_a_shorter_ones_hypothesis_but_its_last_word(translator: StableTranslator) -> None:
    lengths = [1, 100, WORD_SAMPLES - 1, WORD_SAMPLES, WORD_SAMPLES + 1, 3 * WORD_SAMPLES + 17, 7 * WORD_SAMPLES]
    hyps = [row(step(translator, n, SimulTarget("spa"))).token_ids for n in lengths]
    for n, ids in zip(lengths, hyps, strict=True):
        assert len(ids) == n // WORD_SAMPLES + 1  # a word per whole 400 ms, then the unstable last one
    for short, long in itertools.pairwise(hyps):
        assert long[: len(short) - 1] == short[:-1]  # all but its last word carry over
        assert long[len(short) - 1] != short[-1]  # the last word changes with the exact length
    texts = [row(step(translator, n, SimulTarget("spa"))).text for n in lengths]
    assert texts[5] == "w0 w1 w2 w3~" + str(3 * WORD_SAMPLES + 17)
    assert [row(step(translator, n, SimulTarget("spa"))).token_ids for n in lengths] == hyps  # deterministic
    # the audio's content does not matter, only its length
    (a, b) = (translator.run([ModelInput(audio(9000, seed), ("spa",), "eng")])[0] for seed in (1, 2))
    assert a.texts == b.texts and a.transcript == b.transcript


def test_commit_points_are_exact_and_speech_is_known_per_word(translator: StableTranslator) -> None:
    """LocalAgreement-2 over growing audio: a word is committed once two hypotheses agree on it
    and it is not the newest hypothesis's last word; every committed word is spoken once, as
    SAMPLES_PER_WORD samples and UNITS_PER_WORD units; the final step commits and speaks the rest."""
    target, recent, spoken = SimulTarget("spa"), (), []
    for seconds in (0.5, 1.0, 1.5, 2.0):
        n = int(seconds * 16000)
        out = row(step(translator, n, target, min_units=1))
        assert out.token_ids[: len(target.committed)] == target.committed
        if recent:  # the previous hypothesis's stable words, not the newest's last word
            prev = recent[-1]
            agreed = [k for k in range(min(len(prev), len(out.token_ids) - 1)) if prev[k] == out.token_ids[k]]
            assert out.committed == out.token_ids[: len(agreed)] == prev[: len(agreed)]
        else:
            assert out.committed == ()  # one hypothesis: nothing yet
        new = len(out.committed) - target.spoken_tokens
        if new:
            assert out.chunk is not None and out.chunk.dtype == np.float32
            assert out.chunk.size == new * SAMPLES_PER_WORD and len(out.chunk_units) == new * UNITS_PER_WORD
            spoken.append(out.chunk)
        else:
            assert out.chunk is None and out.chunk_units == ()
        assert out.units_total == UNITS_PER_WORD * len(out.committed)
        recent = (*recent, out.token_ids)[-1:]
        target = SimulTarget("spa", out.committed, out.spoken_tokens, out.spoken_units, recent)
    # 1.5 s said w0 w1 w2 w3~24000, 2.0 s said w0 .. w4 w5~32000: they agree on w0 w1 w2
    assert target.committed == tuple(range(1000, 1003))
    final = step(translator, 2 * 16000 + 5, target, final=True)
    last = row(final)
    assert last.committed == last.token_ids and len(last.committed) == 6
    assert final.texts == {"spa": last.committed_text} and final.transcript == last.text
    assert last.chunk is not None and last.chunk.size == 3 * SAMPLES_PER_WORD and last.spoken_tokens == 6
    whole = translator.run([ModelInput(audio(2 * 16000 + 5), ("spa",), "eng")])[0]
    assert np.array_equal(np.concatenate([*spoken, last.chunk]), whole.waveforms["spa"])  # chunks join into the whole
    assert whole.texts["spa"] == last.committed_text == whole.transcript


def test_min_units_and_agreement_n(translator: StableTranslator) -> None:
    n = 2 * WORD_SAMPLES + 5
    ids = row(step(translator, n, SimulTarget("spa"))).token_ids
    held = row(step(translator, n, SimulTarget("spa", recent=(ids,)), min_units=UNITS_PER_WORD * 2 + 1))
    assert held.committed == ids[:2] and held.chunk is None and held.spoken_tokens == 0  # committed, not spoken yet
    three = row(step(translator, n, SimulTarget("spa", recent=(ids,)), agreement=3))
    assert three.committed == ()
    three = row(step(translator, n, SimulTarget("spa", recent=(ids, ids)), agreement=3))
    assert three.committed == ids[:2]
    whole = row(step(translator, n, SimulTarget("spa", recent=(ids,)), hold_last_word=False))
    assert whole.committed == ids
    quiet = row(step(translator, n, SimulTarget("spa", recent=(ids,)), min_units=1), "spa")
    assert quiet.chunk is not None
    (text_only,) = translator.run(
        [ModelInput(audio(n), ("spa",), None, speech=False, simul=SimulRequest((SimulTarget("spa", recent=(ids,)),)))]
    )
    assert row(text_only).chunk is None and row(text_only).units_total == 0 and text_only.transcript is None


def test_the_card_is_a_test_model_with_the_checkpoints_languages(
    translator: StableTranslator, test_model_dir: Path
) -> None:
    card = translator.card
    assert card.info.is_test_model and "made-up" in card.info.name
    gen = json.loads((test_model_dir / "generation_config.json").read_text())
    assert card.text_codes == frozenset(gen["text_decoder_lang_to_code_id"])
    (out,) = translator.run([ModelInput(audio(WORD_SAMPLES * 2), ("spa", "fra"), None)])
    assert out.texts["spa"] == out.texts["fra"] and out.transcript is None
    assert {k: v.size for k, v in out.waveforms.items()} == {"spa": 3 * SAMPLES_PER_WORD, "fra": 3 * SAMPLES_PER_WORD}
    assert stable.text(()) == "" and translator.run([]) == []
