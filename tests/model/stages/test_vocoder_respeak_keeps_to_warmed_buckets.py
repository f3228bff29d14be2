"""The batched vocoder under graphs keeps a call's groups to the (row bucket, units) pairs its
warm-up ran (model/stages/vocoder.py ``MaskedVocoder.warm`` tells ``RowGroups``): a respeak batch
(kept units at several rates, the vocoder alone) brings more rows of alike length than any batch
the warm-up ran, and a pair the warm-up did not run is a new shape, a graph miss on CUDA (eager:
hundreds of launches). Such a group is cut into parts that were warmed, each row still what it
gets alone. The CUDA plan's stages on this CPU (graphs on: their buckets and bookkeeping, nothing
captured), test checkpoint, benchmark mode's fixed frames per unit so that HiFi-GAN's width is
known; no assertion on the random model's samples beyond row against row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from translate_svc.model.stages.seamless import SeamlessStages

pytestmark = [pytest.mark.integration, pytest.mark.slow(20)]

UNITS, PER_UNIT = 33, 2


def test_a_respeak_batch_is_cut_to_the_pairs_the_warm_up_ran(test_model_dir: Path) -> None:
    stages = SeamlessStages(test_model_dir, device="cpu", dtype="float32", pad_shapes=True, batch_vocoder=True)
    for part in stages.graphed:
        part.enabled = True
    voc = stages._vocoder
    voc.unit_frames = PER_UNIT  # what the warm-up runs (benchmark mode)
    assert voc.bucket is not None
    units_bucket, frames_bucket = voc.bucket(UNITS), voc.bucket(UNITS * PER_UNIT + 1)
    with torch.inference_mode():
        for rows in (1, 2):  # the warm-up's groups: never 4 rows
            voc.warm(rows, units_bucket, frames_bucket)
        voc.first.capturing = voc.second.capturing = False  # the warm-up is over
        n = voc.vocoder.unit_embedding.num_embeddings
        units = torch.randint(4, n, (4, UNITS), generator=torch.Generator().manual_seed(2))
        got = voc(units, [UNITS] * 4, [0] * 4, [0] * 4, unit_frames=PER_UNIT)
        assert (voc.first.misses, voc.second.misses) == (0, 0)  # no pair the warm-up did not run
        alone = [voc(units[r : r + 1], [UNITS], [0], [0], unit_frames=PER_UNIT) for r in range(4)]
    assert all(f.tolist() == [PER_UNIT] * UNITS for f in got.frames)
    for r, one in enumerate(alone):
        assert got.waves[r].shape == one.waves[0].shape and got.waves[r].size > 0
        np.testing.assert_allclose(got.waves[r], one.waves[0], atol=1e-4, err_msg=f"row {r}")
