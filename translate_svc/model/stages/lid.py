"""Spoken-language identification with Meta's MMS-LID (``facebook/mms-lid-126`` and its larger siblings).

Why a second model: SeamlessM4T v2 has no language-identification head (it must be told the source
language for a transcript), and its maintainers point to MMS-LID for that (seamless_communication
issue #183). MMS-LID is a wav2vec 2.0 encoder with a classifier over ISO 639-3 labels, loaded here by
transformers as ``Wav2Vec2ForSequenceClassification`` from a local directory (offline, safetensors).

Its labels become SeamlessM4T's codes through ``translate_svc.languages.MACRO_TO_MODEL`` (``ara`` ->
``arb``, ``zho`` -> ``cmn``; any other label stays itself, also one SeamlessM4T lacks: the runner
offers only languages both models have). Labels that land on one code add up.

Cost is bounded: each segment is cropped to its first ``max_seconds`` (10 s by default; the
encoder's attention grows with the square of the length, and a few seconds of speech are plenty to
tell languages apart), so a long segment costs what a 10 s one does.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import AutoFeatureExtractor, Wav2Vec2ForSequenceClassification

from translate_svc.errors import ModelNotFound
from translate_svc.languages import MACRO_TO_MODEL
from translate_svc.model.stages.loading import _missing_weights, describe_model
from translate_svc.types import MODEL_SAMPLE_RATE, ModelInfo

logger = logging.getLogger(__name__)

LID_REPO_ID = "facebook/mms-lid-126"
#: What ``download-lid-model`` fetches: configs and safetensors (not the pickled pytorch_model.bin).
LID_DOWNLOAD_PATTERNS = ("*.json", "*.safetensors")
_ARCHITECTURE = "Wav2Vec2ForSequenceClassification"

_HOW_TO_GET = (
    "Get MMS-LID on a machine with internet access with `translate-svc download-lid-model` "
    f"(fetches {LID_REPO_ID} into model_cache/mms-lid-126), copy it here, or point "
    "TRANSLATE_SVC_MODEL__LID_PATH at a directory holding one. For tests and demos without weights, "
    "`translate-svc make-test-lid-model DIR` builds a tiny random-weight one (its choices are noise)."
)


def validate_lid_dir(path: Path) -> None:
    """Raise ModelNotFound, saying what is missing and how to get it, unless ``path`` holds a complete
    MMS-LID checkpoint (config, feature extractor config, safetensors weights)."""
    if not path.is_dir():
        raise ModelNotFound(f"language-identifier directory {path} does not exist. {_HOW_TO_GET}")
    missing = [name for name in ("config.json", "preprocessor_config.json") if not (path / name).is_file()]
    missing.extend(_missing_weights(path))
    if missing:
        raise ModelNotFound(
            f"language-identifier directory {path} is incomplete: missing {', '.join(missing)}. {_HOW_TO_GET}"
        )
    architectures = json.loads((path / "config.json").read_text()).get("architectures") or []
    if _ARCHITECTURE not in architectures:
        raise ModelNotFound(
            f"language-identifier directory {path} holds no MMS-LID checkpoint: config.json's architectures "
            f"are {architectures[:3]}, not {_ARCHITECTURE}. {_HOW_TO_GET}"
        )


def describe_lid(path: Path) -> ModelInfo:
    """Name and revision for ListLanguages: the download's repo and commit, else a content hash."""
    info = describe_model(path)
    if info.is_test_model:
        return dataclasses.replace(info, name="translate-svc-test-lid-model (random weights)")
    return info


class MmsLid:
    """MMS-LID behind the engine's ``LanguageIdentifier`` Protocol. See the module docstring.

    Not thread-safe: load and call it on the engine's model thread only (like the runner).
    """

    def __init__(
        self,
        model_dir: str | Path,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        *,
        max_seconds: float = 10.0,
    ) -> None:
        if max_seconds <= 0:
            raise ValueError(f"max_seconds must be positive, got {max_seconds}")
        path = Path(model_dir)
        validate_lid_dir(path)
        self.info = describe_lid(path)
        self.device = torch.device(device)
        self.dtype = dtype
        self.max_samples = int(max_seconds * MODEL_SAMPLE_RATE)
        self.feature_extractor = AutoFeatureExtractor.from_pretrained(path, local_files_only=True)
        if self.feature_extractor.sampling_rate != MODEL_SAMPLE_RATE:
            raise ValueError(
                f"{path}/preprocessor_config.json: sampling_rate {self.feature_extractor.sampling_rate}, "
                f"expected {MODEL_SAMPLE_RATE}"
            )
        model = Wav2Vec2ForSequenceClassification.from_pretrained(
            path, local_files_only=True, use_safetensors=True, dtype=dtype, trust_remote_code=False
        )
        self.model: Wav2Vec2ForSequenceClassification = model.to(self.device).eval()  # type: ignore[arg-type]
        # Without an attention mask (wav2vec2 checkpoints with group norm) padding changes the
        # answer: such a checkpoint runs one segment per forward pass instead.
        self.batched = bool(self.feature_extractor.return_attention_mask)
        config = self.model.config
        #: the shortest input that yields one encoder frame (400 samples, 25 ms, for wav2vec 2.0)
        self.min_samples = _receptive_field(config.conv_kernel, config.conv_stride)

        labels = [str(config.id2label[i]) for i in range(config.num_labels)]
        codes = [MACRO_TO_MODEL.get(label, label) for label in labels]
        #: column order of the grouped scores: one per model code, sorted
        self._codes = tuple(sorted(set(codes)))
        self._column = {code: k for k, code in enumerate(self._codes)}
        #: per label, the column of its model code
        self._label_column = torch.tensor([self._column[code] for code in codes])
        logger.info(
            "loaded language identifier %s: %d labels -> %d languages, on %s (%s)",
            self.info.name,
            len(labels),
            len(self._codes),
            self.device,
            dtype,
        )

    @property
    def languages(self) -> frozenset[str]:
        return frozenset(self._codes)

    @property
    def name(self) -> str:
        return self.info.name

    def identify(self, audios: Sequence[np.ndarray], candidates: Sequence[tuple[str, ...]]) -> list[dict[str, float]]:
        """Per 16 kHz mono float32 segment, each candidate's probability: the softmax over all labels,
        summed per model code, restricted to the candidates and renormalised (an empty tuple: every
        language). One forward pass for the batch; each segment is cropped to its first
        ``max_seconds``."""
        if len(audios) != len(candidates):
            raise ValueError(f"{len(audios)} segments but {len(candidates)} candidate lists")
        wanted = [tuple(dict.fromkeys(c)) if c else self._codes for c in candidates]
        unknown = sorted({code for codes in wanted for code in codes if code not in self._column})
        if unknown:
            raise ValueError(f"the language identifier cannot pick {', '.join(unknown[:8])}")
        if not audios:
            return []
        crops = [self._crop(a) for a in audios]
        batches = [crops] if self.batched else [[c] for c in crops]
        probs = torch.cat([self._code_probs(batch) for batch in batches])
        scores = []
        for row, codes in zip(probs, wanted, strict=True):
            picked = row[[self._column[c] for c in codes]]
            scores.append(dict(zip(codes, (picked / picked.sum()).tolist(), strict=True)))
        return scores

    def _crop(self, audio: np.ndarray) -> np.ndarray:
        """The first ``max_seconds``, zero-padded to one encoder frame if shorter."""
        crop = np.asarray(audio, dtype=np.float32)[: self.max_samples]
        if len(crop) < self.min_samples:
            crop = np.pad(crop, (0, self.min_samples - len(crop)))
        return crop

    @torch.inference_mode()
    def _code_probs(self, audios: list[np.ndarray]) -> torch.Tensor:
        """(segments, codes): the softmax over all labels, summed per model code. In float64, so the
        candidates' share never underflows to 0 (that would take a logit gap of about 700)."""
        features = self.feature_extractor(
            audios,
            sampling_rate=MODEL_SAMPLE_RATE,
            padding=True,
            return_attention_mask=self.batched,
            return_tensors="pt",
        )
        values = features["input_values"].to(self.device, self.dtype)
        mask = features["attention_mask"].to(self.device) if self.batched else None
        logits = self.model(values, attention_mask=mask).logits
        probs = torch.softmax(logits.cpu().double(), dim=-1)
        by_code = torch.zeros(len(probs), len(self._codes), dtype=torch.float64)
        return by_code.index_add_(1, self._label_column, probs)


def _receptive_field(kernels: Sequence[int], strides: Sequence[int]) -> int:
    """Input samples one output frame of the convolutional feature encoder sees."""
    field, hop = 1, 1
    for kernel, stride in zip(kernels, strides, strict=True):
        field += (kernel - 1) * hop
        hop *= stride
    return field
