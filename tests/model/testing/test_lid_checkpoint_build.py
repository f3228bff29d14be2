"""The tiny language-identifier checkpoint (model/testing/lid_checkpoint.py, issue 57; its own test
module since issue 89 item 4): its labels as given, in order; a biased label raised by exactly
``BIAS_LOGIT`` over the same seed's unbiased weights and named in its marker; labels that repeat,
none, or a bias that is no label refused. Built into a temporary directory and read back as files
and a state dict: no forward pass. The identifier on it is tests/model/stages/test_lid.py's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from translate_svc.model.stages.loading import TEST_MODEL_MARKER
from translate_svc.model.testing.lid_checkpoint import BIAS_LOGIT, TEST_LID_LABELS, build_lid_test_checkpoint

pytestmark = pytest.mark.unit


def test_the_labels_are_the_checkpoints_classes_in_order(tmp_path: Path) -> None:
    out = build_lid_test_checkpoint(tmp_path / "lid", labels=("fra", "eng", "haw"))
    config = json.loads((out / "config.json").read_text())
    assert [config["id2label"][str(k)] for k in range(3)] == ["fra", "eng", "haw"]
    assert json.loads((out / "preprocessor_config.json").read_text())["return_attention_mask"] is True
    marker = json.loads((out / TEST_MODEL_MARKER).read_text())
    assert (marker["kind"], marker["seed"], marker["bias"]) == ("mms-lid", 0, None)
    assert "noise" in marker["note"]


def test_a_biased_label_is_raised_by_the_bias_logit_alone(tmp_path: Path) -> None:
    plain = load_file(build_lid_test_checkpoint(tmp_path / "plain", seed=3) / "model.safetensors")
    biased_dir = build_lid_test_checkpoint(tmp_path / "spa", seed=3, bias="spa")
    biased = load_file(biased_dir / "model.safetensors")
    k = TEST_LID_LABELS.index("spa")
    raised = biased["classifier.bias"] - plain["classifier.bias"]
    assert raised[k].item() == pytest.approx(BIAS_LOGIT)
    assert raised.abs().sum().item() == pytest.approx(BIAS_LOGIT)  # no other label moved
    assert all((biased[name] == weights).all() for name, weights in plain.items() if name != "classifier.bias")
    assert json.loads((biased_dir / TEST_MODEL_MARKER).read_text())["bias"] == "spa"


@pytest.mark.parametrize(
    ("labels", "bias", "message"),
    [
        (("eng", "eng"), None, "distinct and not empty"),
        ((), None, "distinct and not empty"),
        (("eng", "spa"), "cmn", "not one of the labels eng, spa"),
    ],
)
def test_labels_that_cannot_make_a_classifier_are_refused(
    tmp_path: Path, labels: tuple[str, ...], bias: str | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build_lid_test_checkpoint(tmp_path / "bad", labels=labels, bias=bias)
    assert not (tmp_path / "bad").exists()  # refused before anything is written
