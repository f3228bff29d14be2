"""Text-to-unit's own bookkeeping (model/stages/text_to_unit.py, issues 69 and 88; its own test
module since issue 89 item 4) on the test checkpoint, float32, CPU, on hand-made token rows (no
decode): each row's durations cover exactly its characters and add up to its unit count, its units
past that count are padding, a row with no text speaks nothing, and the decoder's kept states give
what re-running the decoder gives. Random weights: counts and equalities only. Each row against
transformers' t2u is tests/model/stages/test_speech_stages.py's."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from translate_svc.model.stages.seamless import SeamlessStages

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stages(test_model_dir: Path) -> SeamlessStages:
    return SeamlessStages(test_model_dir, device="cpu", dtype="float32", pad_shapes=False)


def rows(stages: SeamlessStages, *texts: list[str]) -> torch.Tensor:
    """Each text's pieces as ``generate`` writes a Spanish row: start, language, text, EOS, padding."""
    gen = stages.model.generation_config
    tok = stages.processor.tokenizer
    start, eos, pad = int(gen.decoder_start_token_id), int(gen.eos_token_id), int(gen.pad_token_id)
    seqs = [[start, stages.text_lang_ids["spa"], *tok.convert_tokens_to_ids(t), eos] for t in texts]
    width = max(len(s) for s in seqs)
    return torch.tensor([s + [pad] * (width - len(s)) for s in seqs])


def encoded(stages: SeamlessStages, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    hidden = int(stages.model.config.hidden_size)
    enc = torch.randn(n, 6, hidden, generator=torch.Generator().manual_seed(5))
    return enc, torch.ones(n, 6, dtype=torch.long)


def test_each_rows_durations_cover_its_characters_and_add_up_to_its_units(stages: SeamlessStages) -> None:
    seqs = rows(stages, ["▁h", "o", "l", "a", ","], ["▁s", "i"], [])
    enc, mask = encoded(stages, 3)
    gen = stages.model.generation_config
    chars = stages.t2u.tables.char_totals(seqs.tolist(), int(gen.eos_token_id))
    with torch.inference_mode():
        units = stages.t2u(enc, mask, seqs)
    assert chars[2] == 0 and chars[0] > chars[1] > 0
    assert units.char_durations.shape == (3, max(chars))
    for row, count in enumerate(units.counts):
        durations = units.char_durations[row]
        assert durations[: chars[row]].ge(1).all() and durations[chars[row] :].eq(0).all()
        assert int(durations.sum()) == count
        assert units.units[row, count:].eq(stages.model.config.t2u_pad_token_id).all()
    assert units.counts[2] == 0  # no text, no speech
    assert units.units.shape[1] == max(units.counts)


def test_the_decoders_kept_states_give_what_re_running_it_gives(stages: SeamlessStages) -> None:
    seqs = rows(stages, ["▁b", "u", "e", "n", "o", "s"], ["▁d", "i", "a", "s"])
    enc, mask = encoded(stages, 2)
    with torch.inference_mode():
        kept = stages.t2u.text_states(enc, mask, seqs)
        again = stages.t2u(enc, mask, seqs)
        from_kept = stages.t2u(enc, mask, seqs, text_states=kept, tokens=seqs.tolist())
    assert kept.shape[:2] == (2, seqs.shape[1] - 1)
    assert from_kept.counts == again.counts
    assert torch.equal(from_kept.units, again.units)
    assert torch.equal(from_kept.char_durations, again.char_durations)
