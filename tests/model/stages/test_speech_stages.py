"""The speech stage's own forwards on the test checkpoint (model/stages/text_to_unit.py, model/stages/vocoder.py):
each equals transformers' module on the same inputs, returns its durations and frames instead of
recording them, and a batch's rows equal each row alone. Nothing here asserts the random model's
words: only equalities and the counts' own arithmetic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.support.reference import has_hooks
from tests.support.speech import read_16k
from translate_svc.model.runner import SeamlessRunner
from translate_svc.model.stages.forced import ForcedLengths
from translate_svc.model.stages.seamless import SeamlessStages
from translate_svc.model.stages.shapes import bucket_length
from translate_svc.model_api.rows import bare_rows

pytestmark = [pytest.mark.integration, pytest.mark.slow(20)]

LANG = "spa"


@pytest.fixture(scope="module")
def stages(test_model_dir: Path) -> SeamlessStages:
    return SeamlessStages(test_model_dir, device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def plain(test_model_dir: Path) -> SeamlessStages:
    """No length buckets: t2u's and the vocoder's shapes are the upstream's (model/stages/shapes.py)."""
    return SeamlessStages(test_model_dir, device="cpu", dtype="float32", pad_shapes=False)


@pytest.fixture(scope="module")
def spans(shared_audio: Path) -> list[np.ndarray]:
    """Three spans of jfk.flac of different lengths (so batches are padded)."""
    x = read_16k(shared_audio / "jfk.flac")
    return [x[int(a * 16000) : int(b * 16000)] for a, b in [(0.3, 2.3), (3.3, 4.4), (5.4, 7.7)]]


def decoded(stages: SeamlessStages, spans: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Encoder rows, their features' mask and the decoded sequences, one row per span."""
    with torch.inference_mode():
        batch = stages.speech_encoder.features([stages.extract_features(s) for s in spans])
        enc, mask = stages.speech_encoder.encode(batch), batch.mask
        plan = bare_rows([LANG] * len(spans), [()] * len(spans), [len(s) / 16000 for s in spans])
        seqs = stages.decoder.decode(enc, mask, plan)
    return enc, mask, seqs


def own_row(seqs: torch.Tensor, row: int, pad: int) -> torch.Tensor:
    """Row ``row`` of ``seqs`` alone: its trailing padding cut, as ``generate`` returns it alone."""
    seq = seqs[row : row + 1]
    return seq[:, : int((seq != pad).sum())]


def test_t2u_parts_equal_transformers_t2u_model(plain: SeamlessStages, spans: list[np.ndarray]) -> None:
    """``TextToUnit``'s two parts (the characters, then the units: issue 88) on the inputs a padded
    batch gives them (without length buckets, so the upstream takes the same widths): the same
    logits, bit for bit, and padding mask as ``SeamlessM4Tv2TextToUnitForConditionalGeneration``
    on the character ids and counts of the same tables; the durations are the ones that made that
    mask (each row's sum is its unit count), and the characters' width, known on the host from
    the tokens, is the upstream's."""
    stages = plain
    t2u = stages.t2u
    enc, mask, seqs = decoded(stages, spans)
    seen: dict[str, Any] = {}
    real = t2u.chars._run

    def spy(sequences: torch.Tensor, embeds: torch.Tensor, *args: Any, **kw: Any) -> Any:
        seen["sequences"], seen["embeds"], seen["chars"] = sequences, embeds, kw["chars"]
        return real(sequences, embeds, *args, **kw)

    head = stages.model.t2u_model.lm_head.register_forward_hook(lambda m, i, o: seen.__setitem__("logits", o))
    t2u.chars._run = spy
    try:
        with torch.inference_mode():
            units = stages.units(enc, mask, seqs, [len(s) / 16000 for s in spans])
    finally:
        t2u.chars._run = real
        head.remove()
    gen = stages.model.generation_config
    sequences, pad = seen["sequences"], gen.pad_token_id
    own = (sequences != pad).int().sum(1)
    ids = sequences[:, 2:-1]
    ids = ids.masked_fill(torch.arange(ids.shape[1])[None, :] >= (own - 3)[:, None], pad)
    ids = ids.masked_fill(ids == gen.eos_token_id, pad)
    count = t2u.tables.char_counts(ids)
    zero = count.new_zeros((count.shape[0], 1))
    count = torch.cat([zero, count, zero], dim=1)
    assert seen["chars"] == int(count.sum(1).max())  # the host's width is the device's
    char_ids = t2u.tables.char_ids(ids, seen["chars"])
    attention = (torch.arange(seen["embeds"].shape[1])[None, :] < (own - 1)[:, None]).float()
    with torch.inference_mode():
        upstream = stages.model.t2u_model(
            inputs_embeds=seen["embeds"], char_input_ids=char_ids, char_count_per_id=count, attention_mask=attention
        )
    assert torch.equal(seen["logits"], upstream[0])
    assert upstream[1].sum(1).long().tolist() == units.counts
    assert units.char_durations.sum(1).tolist() == units.counts


def test_units_of_a_batch_equal_each_row_alone(stages: SeamlessStages, spans: list[np.ndarray]) -> None:
    """Per row: the same units, count and per-character durations alone as in the batch; the
    durations cover exactly the row's characters (at least one unit each) and sum to its count;
    the units past the count are padding."""
    enc, mask, seqs = decoded(stages, spans)
    pad = int(stages.model.generation_config.pad_token_id)
    unit_pad = int(stages.model.config.t2u_pad_token_id or 0)
    with torch.inference_mode():
        batch = stages.units(enc, mask, seqs)
    assert len(batch.counts) == len(spans) and batch.char_durations.shape[0] == len(spans)
    for row in range(len(spans)):
        with torch.inference_mode():
            alone = stages.units(enc[row : row + 1], mask[row : row + 1], own_row(seqs, row, pad))
        n = batch.counts[row]
        assert alone.counts == [n] and n > 0
        assert torch.equal(batch.units[row, :n], alone.units[0, :n])
        assert bool((batch.units[row, n:] == unit_pad).all())
        chars = int((alone.char_durations[0] > 0).sum())
        assert chars == alone.char_durations.shape[1]  # alone: no padding characters
        assert torch.equal(batch.char_durations[row, :chars], alone.char_durations[0])
        assert bool((batch.char_durations[row, chars:] == 0).all())
        assert int(batch.char_durations[row].sum()) == n


def test_forced_unit_counts_split_evenly_over_characters(test_model_dir: Path, spans: list[np.ndarray]) -> None:
    """Benchmark mode's forced counts are a parameter: every character of a row gets the same
    duration (the row's total over its characters, rounded, at least one), summing to its count;
    the vocoder then gives every unit one frame."""
    forced = SeamlessStages(test_model_dir, device="cpu", dtype="float32", forced=ForcedLengths(4.0, 50.0))
    enc, mask, seqs = decoded(forced, spans)
    seconds = [len(s) / 16000 for s in spans]
    with torch.inference_mode():
        units = forced.units(enc, mask, seqs, seconds)
        voc = forced.vocode(units.units, units.counts, [LANG] * len(spans), [0] * len(spans))
    for row, s in enumerate(seconds):
        durations = units.char_durations[row]
        chars = durations[durations > 0]
        share = max(1.0, forced.forced.units(s) / len(chars))  # type: ignore[union-attr]
        assert len(set(chars.tolist())) == 1 and abs(int(chars[0]) - share) <= 0.5 + 1e-6
        assert int(durations.sum()) == units.counts[row] == len(voc.frames[row])
        assert voc.frames[row].tolist() == [1] * units.counts[row]
    assert not has_hooks(forced.model.t2u_model) and not has_hooks(forced.model.vocoder)


def some_units(stages: SeamlessStages, spans: list[np.ndarray]) -> tuple[torch.Tensor, list[int]]:
    enc, mask, seqs = decoded(stages, spans)
    with torch.inference_mode():
        got = stages.units(enc, mask, seqs)
    return got.units, got.counts


def test_vocoder_forward_of_one_row_equals_transformers_vocoder(
    stages: SeamlessStages, spans: list[np.ndarray]
) -> None:
    """One unpadded row (no masks): the waveform, its length and the frames per unit are
    ``SeamlessM4Tv2CodeHifiGan``'s, bit for bit."""
    units, counts = some_units(stages, spans[:1])
    row = units[:, : counts[0]]
    lang = stages.model.generation_config.vocoder_lang_code_to_id[LANG]  # type: ignore[attr-defined]
    seen: dict[str, torch.Tensor] = {}

    def hook(module: Any, args: Any, out: torch.Tensor) -> None:
        seen["frames"] = torch.clamp(torch.round(torch.expm1(out)).long(), min=1)[0]

    handle = stages.model.vocoder.dur_predictor.register_forward_hook(hook)
    try:
        with torch.inference_mode():
            wav, length = stages.model.vocoder(
                input_ids=row, speaker_id=torch.tensor([[1]]), lang_id=torch.tensor([[lang]])
            )
    finally:
        handle.remove()
    voc = stages._vocoder
    saved = voc.bucket
    voc.bucket = None
    try:
        with torch.inference_mode():
            got = stages.vocode(row, counts, [LANG], [1])
    finally:
        voc.bucket = saved
    expected = wav[0, : int(length.reshape(-1)[0])].float().numpy()
    assert np.array_equal(got.waves[0], expected)
    assert got.frames[0].tolist() == seen["frames"].tolist()


@pytest.mark.parametrize("buckets", [False, True])
def test_vocoded_batch_rows_equal_each_row_alone(
    stages: SeamlessStages, spans: list[np.ndarray], buckets: bool
) -> None:
    """One masked call for all rows (with and without length buckets): each row's frames per unit
    are what its own unpadded call gives, one per unit, and its waveform has the same length and
    samples (within float summation order)."""
    units, counts = some_units(stages, spans)
    voc = stages._vocoder
    saved = voc.batched, voc.max_padding, voc.bucket
    try:
        voc.batched, voc.max_padding, voc.bucket = True, 1000.0, bucket_length if buckets else None
        with torch.inference_mode():
            batch = stages.vocode(units, counts, [LANG, "fra", LANG], [0, 1, 0])
        voc.batched, voc.bucket = False, None
        alone = []
        for row, (lang, speaker) in enumerate([(LANG, 0), ("fra", 1), (LANG, 0)]):
            with torch.inference_mode():
                alone.append(
                    stages.vocode(units[row : row + 1, : counts[row]], counts[row : row + 1], [lang], [speaker])
                )
    finally:
        voc.batched, voc.max_padding, voc.bucket = saved
    for row, one in enumerate(alone):
        assert len(batch.frames[row]) == counts[row]
        assert np.array_equal(batch.frames[row], one.frames[0])
        assert batch.waves[row].shape == one.waves[0].shape, f"row {row}"
        # a padded batch's convolutions may sum in another order: the house's waveform tolerance
        np.testing.assert_allclose(batch.waves[row], one.waves[0], atol=1e-4, err_msg=f"row {row}")
        assert len(batch.waves[row]) > 0
    assert not has_hooks(stages.model.t2u_model) and not has_hooks(stages.model.vocoder)


def test_word_timings_and_retranslator_hook_nothing(stages: SeamlessStages) -> None:
    """The word timer and the retranslator read what the speech stage returns: made, they
    leave t2u and the vocoder without a forward hook (no per-batch state on the side)."""
    runner = SeamlessRunner(stages)
    assert runner.timer is not None and runner.retranslator is not None
    assert not has_hooks(stages.model.t2u_model) and not has_hooks(stages.model.vocoder)
