"""Text-to-unit and the vocoder on shapes that repeat (issue 70), on the test checkpoint: the
subword tables equal the upstream's per-token loops, and the bucketed t2u (rows, text positions,
characters and units padded up to buckets, model/stages/shapes.py) gives each row what the unpadded one
gives. Only equalities; nothing asserts the random model's words.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.support.speech import read_16k
from translate_svc.model.stages.padding import hard_upsample, pad_rows
from translate_svc.model.stages.seamless import SeamlessStages
from translate_svc.model.stages.shapes import ShapeLog, bucket_length, bucket_rows, ladder
from translate_svc.model_api.rows import bare_rows

pytestmark = [pytest.mark.integration, pytest.mark.slow(20)]

LANG = "spa"


@pytest.fixture(scope="module")
def bucketed(test_model_dir: Path) -> SeamlessStages:
    return SeamlessStages(test_model_dir, device="cpu", dtype="float32", pad_shapes=True)


@pytest.fixture(scope="module")
def plain(test_model_dir: Path) -> SeamlessStages:
    return SeamlessStages(test_model_dir, device="cpu", dtype="float32", pad_shapes=False)


def test_subword_tables_equal_the_upstream_loops(plain: SeamlessStages) -> None:
    """Character counts and ids of random token rows (every id of the vocabulary, the unknown
    token, punctuation before spaced words, trailing padding) equal
    ``_count_character_length_in_subword`` and ``_get_char_input_ids``."""
    m = plain.model
    pad = int(m.generation_config.pad_token_id)
    n = int(m.config.vocab_size)
    gen = torch.Generator().manual_seed(7)
    ids = torch.randint(1, n, (6, 40), generator=gen)
    ids[1, 30:] = pad
    ids[2, 5:] = pad
    ids[3, :] = 1  # unknown tokens only
    subwords = m._indices_to_subwords(ids)
    expected = m._count_character_length_in_subword(ids, subwords, pad_token_id=pad)
    tables = plain.t2u.tables
    assert torch.equal(tables.char_counts(ids), expected)
    width = int(expected.sum(1).max())
    want = m._get_char_input_ids(ids, subwords, expected, pad_token_id=pad)
    assert torch.equal(tables.char_ids(ids, width), want)
    wider = tables.char_ids(ids, width + 9)
    assert torch.equal(wider[:, :width], want) and bool((wider[:, width:] == pad).all())


def test_hard_upsample_equals_repeat_interleave_per_row() -> None:
    hidden = torch.randn(3, 5, 4)
    durations = torch.tensor([[1, 0, 2, 3, 1], [2, 2, 0, 0, 0], [0, 1, 1, 1, 4]])
    got = hard_upsample(hidden, durations, 12)
    for row in range(3):
        own = torch.repeat_interleave(hidden[row], durations[row], dim=0)
        assert torch.equal(got[row, : len(own)], own) and bool((got[row, len(own) :] == 0).all())
    channels = hard_upsample(hidden.transpose(1, 2), durations, 12, dim=2)
    assert torch.equal(channels, got.transpose(1, 2))
    assert torch.equal(pad_rows(hidden, 4)[3], hidden[0]) and pad_rows(hidden, 2).shape[0] == 3


def test_ladders() -> None:
    assert [bucket_rows(n) for n in (1, 2, 3, 5, 8, 9, 32)] == [1, 2, 4, 8, 8, 16, 32]
    steps = ladder(300)
    assert steps[0] == 16 and steps[-1] >= 300 and all(bucket_length(n) in steps for n in range(1, 301))


def decoded(stages: SeamlessStages, spans: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    with torch.inference_mode():
        batch = stages.speech_encoder.features([stages.extract_features(s) for s in spans])
        enc, mask = stages.speech_encoder.encode(batch), batch.mask
        plan = bare_rows([LANG] * len(spans), [()] * len(spans), [len(s) / 16000 for s in spans])
        seqs = stages.decoder.decode(enc, mask, plan)
    return enc, mask, seqs


def test_bucketed_t2u_equals_unpadded(bucketed: SeamlessStages, plain: SeamlessStages, shared_audio: Path) -> None:
    """Three rows of different lengths (padded to 4 rows, and their text positions, characters
    and units to buckets): each row's units, count and per-character durations equal the unpadded
    call's, with the same widths; the recorded shapes are bucket sizes."""
    x = read_16k(shared_audio / "jfk.flac")
    spans = [x[int(a * 16000) : int(b * 16000)] for a, b in [(0.3, 2.3), (3.3, 4.4), (5.4, 7.7)]]
    enc, mask, seqs = decoded(plain, spans)
    log = ShapeLog()
    bucketed.t2u.shapes = log
    try:
        with torch.inference_mode():
            got = bucketed.units(enc, mask, seqs)
            want = plain.units(enc, mask, seqs)
    finally:
        bucketed.t2u.shapes = bucketed.shapes
    assert got.counts == want.counts and min(got.counts) > 0
    assert got.units.shape == want.units.shape and torch.equal(got.units, want.units)
    assert torch.equal(got.char_durations, want.char_durations)
    parts = {key[1][0]: key[1][1:] for key in log._seen}
    assert set(parts) == {0, 1, 2} and all(shape[0] == 4 for shape in parts.values())
    assert all(shape[1] == bucket_length(shape[1]) for shape in parts.values())
    # the same rows in another order: the same per row (row padding copies a real row)
    order = [2, 0, 1]
    with torch.inference_mode():
        again = bucketed.units(enc[order], mask[order], seqs[order])
    assert again.counts == [want.counts[r] for r in order]


def test_the_warm_ups_lengths_land_on_their_frame_buckets(plain: SeamlessStages) -> None:
    """Audio of ``frame_seconds(b)`` has exactly ``b`` feature frames: the warm-up's batches run
    each encoder bucket itself."""
    from translate_svc.model.stages.shapes import frame_bucket, frame_seconds

    for b in ladder(400, frame_bucket):
        audio = np.zeros(round(frame_seconds(b) * 16000), np.float32)
        assert len(plain.extract_features(audio).values) == b
