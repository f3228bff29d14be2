"""The test checkpoint is deterministic and loads through the product's own loading code."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from translate_svc.errors import ModelNotFound
from translate_svc.model.stages.loading import describe_model, validate_model_dir
from translate_svc.model.testing.checkpoint import TEST_LANGUAGES, build_test_checkpoint

pytestmark = pytest.mark.unit


def _digest(path: Path) -> str:
    return hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()


def test_same_seed_same_weights(tmp_path: Path) -> None:
    a = build_test_checkpoint(tmp_path / "a", seed=0)
    b = build_test_checkpoint(tmp_path / "b", seed=0)
    c = build_test_checkpoint(tmp_path / "c", seed=1)
    assert _digest(a) == _digest(b) != _digest(c)
    validate_model_dir(a)
    info = describe_model(a)
    assert info.is_test_model and info.revision.startswith("sha256:")
    assert describe_model(b).revision == info.revision


def test_languages_come_from_the_checkpoint(runner) -> None:  # type: ignore[no-untyped-def]
    langs = {lang.code: lang for lang in runner.stages.catalog.languages()}
    for code in ("eng", "spa", "fra", "deu"):
        assert langs[code].text_output and langs[code].speech_output
    assert set(TEST_LANGUAGES) <= set(langs)
    assert langs["cmn"].text_output and not langs["cmn"].speech_output
    assert langs["spa"].name == "Spanish"


@pytest.mark.parametrize("remove", ["config.json", "model.safetensors", "tokenizer.json", "generation_config.json"])
def test_an_incomplete_model_dir_says_what_is_missing_and_how_to_get_it(tmp_path: Path, remove: str) -> None:
    d = build_test_checkpoint(tmp_path / "m")
    (d / remove).unlink()
    with pytest.raises(ModelNotFound) as e:
        validate_model_dir(d)
    assert remove.split(".")[0] in str(e.value) and "translate-svc download-model" in str(e.value)


def test_a_missing_model_dir_says_how_to_get_the_weights(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match=r"does not exist.*download-model"):
        validate_model_dir(tmp_path / "nope")


def test_the_real_layers_checkpoint_has_the_real_models_layer_counts(tmp_path: Path) -> None:
    """``make-test-model --real-layers`` (issue 70): the real model's layer and head counts at tiny
    widths, so a decode step's host cost on a CPU is the full model's; it loads like any other."""
    from transformers import SeamlessM4Tv2Config

    real = SeamlessM4Tv2Config()
    out = build_test_checkpoint(tmp_path / "r", real_layers=True)
    config = SeamlessM4Tv2Config.from_pretrained(out)
    for name in (
        "decoder_layers",
        "encoder_layers",
        "speech_encoder_layers",
        "t2u_decoder_layers",
        "t2u_encoder_layers",
    ):
        assert getattr(config, name) == getattr(real, name), name
    assert config.decoder_attention_heads == real.decoder_attention_heads
    assert config.hidden_size < 100  # tiny widths
    validate_model_dir(out)
    assert describe_model(out).is_test_model
    with pytest.raises(ValueError, match="pick one"):
        build_test_checkpoint(tmp_path / "both", full_size=True, real_layers=True)
