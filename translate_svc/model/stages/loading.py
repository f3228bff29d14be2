"""Find, validate and describe a SeamlessM4T v2 model directory (no torch import here)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from translate_svc.errors import ModelNotFound
from translate_svc.types import ModelInfo

HF_REPO_ID = "facebook/seamless-m4t-v2-large"
#: Written by ``make-test-model`` beside the random-weight test checkpoint (model/testing/checkpoint.py).
TEST_MODEL_MARKER = "translate_svc_test_model.json"
#: Written by ``translate-svc download-model``: the repo and the commit the weights came from.
DOWNLOAD_MARKER = "translate_svc_download.json"
#: What ``download-model`` fetches: configs, safetensors shards, tokenizer. Not the 10 GB .pt.
DOWNLOAD_PATTERNS = ("*.json", "*.safetensors", "*.model", "*.txt")

_HOW_TO_GET = (
    "Get the weights on a machine with internet access with `translate-svc download-model` "
    f"(fetches {HF_REPO_ID} into model_cache/), copy model_cache/ here, or point --model / "
    "TRANSLATE_SVC_MODEL__PATH at a directory holding them. For tests and demos without weights, "
    "`translate-svc make-test-model DIR` builds a tiny random-weight checkpoint (its output is noise)."
)


def validate_model_dir(path: Path) -> None:
    """Raise ModelNotFound, saying what is missing and how to get it, unless ``path`` is complete."""
    if not path.is_dir():
        raise ModelNotFound(f"model directory {path} does not exist. {_HOW_TO_GET}")
    missing: list[str] = []
    for name in ("config.json", "generation_config.json"):
        if not (path / name).is_file():
            missing.append(name)
    if not any((path / n).is_file() for n in ("preprocessor_config.json", "processor_config.json")):
        missing.append("preprocessor_config.json")
    if not any((path / n).is_file() for n in ("tokenizer.json", "sentencepiece.bpe.model")):
        missing.append("tokenizer.json or sentencepiece.bpe.model")
    missing.extend(_missing_weights(path))
    if missing:
        raise ModelNotFound(f"model directory {path} is incomplete: missing {', '.join(missing)}. {_HOW_TO_GET}")


def _missing_weights(path: Path) -> list[str]:
    index = path / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [s for s in shards if not (path / s).is_file()]
    if (path / "model.safetensors").is_file():
        return []
    return ["model.safetensors (or model.safetensors.index.json and its shards; only safetensors are loaded)"]


def describe_model(path: Path) -> ModelInfo:
    """Name and revision reported to clients: the download commit if known, else a content hash."""
    is_test = (path / TEST_MODEL_MARKER).is_file()
    marker = path / DOWNLOAD_MARKER
    if marker.is_file():
        meta = json.loads(marker.read_text())
        return ModelInfo(name=meta.get("repo_id", HF_REPO_ID), revision=meta.get("revision", ""), is_test_model=is_test)
    digest = hashlib.sha256((path / "config.json").read_bytes())
    for f in sorted(path.glob("*.safetensors")):
        digest.update(f"{f.name}:{f.stat().st_size}".encode())
    name = "translate-svc-test-model (random weights)" if is_test else path.name
    return ModelInfo(name=name, revision=f"sha256:{digest.hexdigest()[:16]}", is_test_model=is_test)
