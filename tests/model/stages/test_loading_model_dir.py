"""A model directory found, checked and described (model/stages/loading.py; its own test module
since issue 89 item 4): an incomplete one is refused saying every file it lacks and how to get the
weights, shards named by the index must all be there, and the revision reported is the download's
commit or a content hash that changes with the weights. Files in a temporary directory: no torch.
The test checkpoint through the same code is tests/model/testing/test_test_checkpoint.py's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from translate_svc.errors import ModelNotFound
from translate_svc.model.stages.loading import (
    DOWNLOAD_MARKER,
    HF_REPO_ID,
    TEST_MODEL_MARKER,
    describe_model,
    validate_model_dir,
)

pytestmark = pytest.mark.unit


def complete(path: Path) -> Path:
    path.mkdir(exist_ok=True)
    for name in ("config.json", "generation_config.json", "preprocessor_config.json", "tokenizer.json"):
        (path / name).write_text("{}")
    (path / "model.safetensors").write_bytes(b"weights")
    return path


def test_a_complete_directory_passes(tmp_path: Path) -> None:
    validate_model_dir(complete(tmp_path / "m"))


def test_a_missing_directory_says_how_to_get_the_weights(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match="does not exist") as refused:
        validate_model_dir(tmp_path / "absent")
    assert "translate-svc download-model" in str(refused.value) and "make-test-model" in str(refused.value)


def test_an_incomplete_directory_names_everything_it_lacks(tmp_path: Path) -> None:
    path = tmp_path / "m"
    path.mkdir()
    (path / "config.json").write_text("{}")
    with pytest.raises(ModelNotFound) as refused:
        validate_model_dir(path)
    message = str(refused.value)
    for lacking in (
        "generation_config.json",
        "preprocessor_config.json",
        "tokenizer.json or sentencepiece.bpe.model",
        "model.safetensors",
    ):
        assert lacking in message
    assert "missing config.json" not in message


def test_every_shard_the_index_names_must_be_there(tmp_path: Path) -> None:
    path = complete(tmp_path / "m")
    (path / "model.safetensors").unlink()
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (path / "model.safetensors.index.json").write_text(json.dumps(index))
    (path / "model-00001-of-00002.safetensors").write_bytes(b"half")
    with pytest.raises(ModelNotFound, match=r"missing model-00002-of-00002\.safetensors"):
        validate_model_dir(path)
    (path / "model-00002-of-00002.safetensors").write_bytes(b"other half")
    validate_model_dir(path)


def test_a_download_is_described_by_its_repository_and_commit(tmp_path: Path) -> None:
    path = complete(tmp_path / "m")
    (path / DOWNLOAD_MARKER).write_text(json.dumps({"repo_id": "someone/model", "revision": "abc123"}))
    info = describe_model(path)
    assert (info.name, info.revision, info.is_test_model) == ("someone/model", "abc123", False)
    (path / DOWNLOAD_MARKER).write_text("{}")
    assert describe_model(path).name == HF_REPO_ID


def test_other_weights_are_described_by_a_hash_that_changes_with_them(tmp_path: Path) -> None:
    path = complete(tmp_path / "mine")
    first = describe_model(path)
    assert first.name == "mine" and first.revision.startswith("sha256:") and not first.is_test_model
    assert describe_model(path) == first
    (path / "model.safetensors").write_bytes(b"other weights, other size")
    assert describe_model(path).revision != first.revision
    (path / TEST_MODEL_MARKER).write_text("{}")
    test = describe_model(path)
    assert test.is_test_model and "random weights" in test.name
