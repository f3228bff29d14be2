"""benchmarks/tools/agreement.py on the test checkpoint: float32 held to itself agrees on every row,
token for token and sample for sample (what the tool reports for another dtype is measured against
this), and the helpers find where two decodes part and how close their logits were there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from benchmarks.tools.agreement import app
from tests.support.near_ties import first_difference, relative_gap

pytestmark = pytest.mark.integration


def test_where_two_decodes_part_and_how_close_they_were() -> None:
    assert first_difference((1, 2, 3), (1, 2, 4)) == 2
    assert first_difference((1, 2), (1, 2, 5)) == 2  # one is the other's prefix
    assert relative_gap(torch.tensor([4.0, 3.0, -8.0]), 0, 1) == pytest.approx(0.25)
    assert relative_gap(torch.tensor([4.0, 3.0, -8.0]), 2, 0) == pytest.approx(1.5)


def test_float32_held_to_itself_agrees_everywhere(test_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "agreement.json"
    args = ["--model", str(test_model_dir), "--dtype", "float32", "--segments", "4", "--targets", "spa"]
    result = CliRunner().invoke(app, [*args, "--slots", "3", "--batch", "2", "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    tokens, speech = report["tokens"], report["speech"]
    assert report["segments"] == 4 and tokens["rows"] == 8  # the transcript and one target each
    assert tokens["identical"] == 8 and tokens["differing"] == [] and tokens["gap"] is None
    assert speech["transcripts_identical"] == 4 and speech["target_texts_identical"] == 4
    assert speech["speech_compared"] == 4 and speech["speech_within_one_frame"] == 4
    assert speech["speech_frames_apart"]["max"] == 0
