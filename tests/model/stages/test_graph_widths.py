"""The widths text-to-unit and the vocoder run at under graphs (issue 88), on the test checkpoint.

A captured graph replays one bucket of input shapes; a part keyed by two widths that vary apart
(text positions and characters, characters and units, units and frames) has more pairs than any
warm-up can capture, and a pair the warm-up missed runs eagerly on CUDA (a graph miss). Under
graphs (``GraphedStage.enabled``) each part is keyed by one width: the text positions follow the
characters, the units part's characters are padded to its units, HiFi-GAN's units are cut or
padded to what its frames can hold (``unit_span``); and HiFi-GAN's width is guessed on the host
(``FrameGuess``) so the vocoder reads the device once. Each must give what the widths read from the
device give: counts and frames equal, waveforms within float noise. Nothing asserts the random
model's words or samples.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.support.speech import read_16k
from translate_svc.model.stages import hifigan_widths
from translate_svc.model.stages import vocoder as vocoder_module
from translate_svc.model.stages.hifigan_widths import FrameGuess
from translate_svc.model.stages.seamless import SeamlessStages
from translate_svc.model_api.rows import bare_rows

pytestmark = [pytest.mark.integration, pytest.mark.slow(40)]

LANGS = ("spa", "fra", "spa")
SPEAKERS = (0, 1, 2)


def stages_of(model: Path, graphs: bool) -> SeamlessStages:
    """Bucketed stages with the batched vocoder (the CUDA plan's), on this CPU; ``graphs``: the
    widths and bookkeeping of graphs (nothing is captured on a CPU)."""
    stages = SeamlessStages(model, device="cpu", dtype="float32", pad_shapes=True, batch_vocoder=True)
    for part in stages.graphed:
        part.enabled = graphs
    return stages


@pytest.fixture(scope="module")
def graphed(test_model_dir: Path) -> SeamlessStages:
    return stages_of(test_model_dir, True)


@pytest.fixture(scope="module")
def read(test_model_dir: Path) -> SeamlessStages:
    return stages_of(test_model_dir, False)


@pytest.fixture(scope="module")
def decoded(read: SeamlessStages, shared_audio: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Three spans of jfk.flac of different lengths, encoded and decoded (one row each)."""
    x = read_16k(shared_audio / "jfk.flac")
    spans = [x[int(a * 16000) : int(b * 16000)] for a, b in [(0.3, 2.3), (3.3, 4.4), (5.4, 7.7)]]
    with torch.inference_mode():
        batch = read.speech_encoder.features([read.extract_features(s) for s in spans])
        enc, mask = read.speech_encoder.encode(batch), batch.mask
        plan = bare_rows(["spa"] * len(spans), [()] * len(spans), [len(s) / 16000 for s in spans])
        seqs = read.decoder.decode(enc, mask, plan)
    return enc, mask, seqs


def keys(part: Any) -> set[Any]:
    """The buckets a graphed part met on this thread (model/capture.py)."""
    graphs, _ = part._graphs()
    return set(graphs)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The vocoder's reads of the device, counted (each ``host_read`` is one wait): its own, and
    its results' (``hifigan_widths.results``)."""
    count: list[int] = []
    real = vocoder_module.host_read

    def counted(tensors: Any) -> Any:
        count.append(len(tensors))
        return real(tensors)

    monkeypatch.setattr(vocoder_module, "host_read", counted)
    monkeypatch.setattr(hifigan_widths, "host_read", counted)
    yield count


def test_t2u_under_graphs_keys_each_part_by_one_width_and_gives_the_same_units(
    graphed: SeamlessStages, read: SeamlessStages, decoded: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
) -> None:
    enc, mask, seqs = decoded
    with torch.inference_mode():
        got = graphed.units(enc, mask, seqs)
        want = read.units(enc, mask, seqs)
    assert got.counts == want.counts and min(got.counts) > 0
    assert torch.equal(got.units, want.units) and torch.equal(got.char_durations, want.char_durations)
    chars = keys(graphed.t2u.chars)
    assert chars and all(text == width + 2 for _, text, width, _ in chars)  # the characters decide
    units = keys(graphed.t2u.units)
    assert units and all(len(k) == 2 for k in units)  # (rows, units): the characters padded to them
    assert all(len(k) == 3 for k in keys(read.t2u.units))  # without graphs: both widths as they are


@pytest.mark.parametrize("first", [4.0, 0.25])
def test_the_vocoder_under_graphs_reads_once_and_makes_what_the_read_width_makes(
    graphed: SeamlessStages,
    read: SeamlessStages,
    decoded: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    reads: list[int],
    first: float,
) -> None:
    """Rows at 1.5, 0.5 and 2.0 in one call: with a generous first guess one read of the device
    (the results'); with a short one every group is made again at its own width after it (a miss
    each, a second read). Either way each row's frames per unit and waveform length equal the
    read width's, its samples within float noise, and HiFi-GAN is keyed by its frames alone."""
    enc, mask, seqs = decoded
    speeds = [1.5, 0.5, 2.0]
    with torch.inference_mode():
        units = read.units(enc, mask, seqs)
        want = read.vocode(units.units, units.counts, LANGS, SPEAKERS, speeds)
        reads.clear()
        graphed._vocoder.guess = guess = FrameGuess(first=first)
        got = graphed.vocode(units.units, units.counts, LANGS, SPEAKERS, speeds)
    groups = reads[0] // 4  # the results' read: four tensors a group
    if first == 4.0:
        assert len(reads) == 1 and guess.misses == 0
    else:
        assert len(reads) == 2 and guess.misses == groups
    assert got.rates == want.rates == speeds
    for r in range(3):
        assert np.array_equal(got.frames[r], want.frames[r]), f"row {r}"
        assert got.waves[r].shape == want.waves[r].shape
        np.testing.assert_allclose(got.waves[r], want.waves[r], atol=1e-4, err_msg=f"row {r}")
    assert all(len(k) == 2 for k in keys(graphed._vocoder.second))  # (rows, frames)
    # what it learned: the frames a unit takes at rate 1, at most, over the rows made
    natural = max(float(f.sum()) * s / len(f) for f, s in zip(got.frames, speeds, strict=True))
    assert guess.per_unit == pytest.approx(natural)
