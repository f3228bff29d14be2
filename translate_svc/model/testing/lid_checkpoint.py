"""Build a tiny, random-weight MMS-LID checkpoint with the real architecture.

Why: MMS-LID's weights (about 4 GB for ``facebook/mms-lid-126``) cannot be fetched on CI or dev
machines. This checkpoint is a ``Wav2Vec2ForSequenceClassification`` configured like MMS (layer-norm
convolutions, stable layer norm, an attention mask from the feature extractor, the real 320-sample
frame hop) at tiny sizes, saved as safetensors beside its ``preprocessor_config.json``, so ``MmsLid``
loads and runs it through the same code as the real one. Its choices are noise, unless ``bias``
names a label: then that label's classifier bias is raised by ``BIAS_LOGIT`` and it always wins (a
deliberately biased test checkpoint, for tests that need a known answer).

The labels (``TEST_LID_LABELS``) are ISO 639-3 codes like MMS-LID's: the test SeamlessM4T
checkpoint's languages, plus labels that show the mapping onto SeamlessM4T's codes: ``zho`` (no
``cmn`` label) becomes ``cmn``; ``ara`` and ``arb`` both become ``arb`` (their probabilities add
up); ``haw`` (Hawaiian, which SeamlessM4T lacks) stays ``haw``, a language the identifier can pick
but the runner never offers.

Deterministic: the same seed and bias give byte-identical weights.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification

from translate_svc.model.stages.loading import TEST_MODEL_MARKER
from translate_svc.types import MODEL_SAMPLE_RATE

logger = logging.getLogger(__name__)

TEST_LID_LABELS = ("eng", "spa", "fra", "deu", "ita", "por", "jpn", "zho", "ara", "arb", "haw")
#: added to the ``bias`` label's classifier bias: far above what random weights produce
BIAS_LOGIT = 20.0


def _tiny_config(labels: Sequence[str]) -> Wav2Vec2Config:
    """MMS-LID's architecture (``facebook/mms-lid-126``'s config) at tiny sizes."""
    return Wav2Vec2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        # MMS's seven convolutions (kernel and stride: 400 samples seen, 320 between frames), narrow
        conv_dim=(16,) * 7,
        conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        conv_bias=True,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        classifier_proj_size=16,
        use_weighted_layer_sum=False,
        initializer_range=0.3,  # spreads the random choices (the default 0.02 gives a flat softmax)
        architectures=["Wav2Vec2ForSequenceClassification"],
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )


def build_lid_test_checkpoint(
    directory: str | Path,
    *,
    seed: int = 0,
    labels: Sequence[str] = TEST_LID_LABELS,
    bias: str | None = None,
) -> Path:
    """Write the test language identifier to ``directory`` (created) and return it. ``bias``: a label
    (ISO 639-3, one of ``labels``) that always wins."""
    labels = tuple(labels)
    if len(set(labels)) != len(labels) or not labels:
        raise ValueError(f"labels must be distinct and not empty, got {labels}")
    if bias is not None and bias not in labels:
        raise ValueError(f"bias {bias!r} is not one of the labels {', '.join(labels)}")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Wav2Vec2ForSequenceClassification(_tiny_config(labels)).eval()
    if bias is not None:
        with torch.no_grad():
            model.classifier.bias[labels.index(bias)] += BIAS_LOGIT
    model.save_pretrained(out, safe_serialization=True)
    Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=MODEL_SAMPLE_RATE,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=True,  # as MMS's preprocessor_config.json: batches are padded and masked
    ).save_pretrained(out)
    note = "random weights: its language choices are noise" + (f", except that {bias} always wins" if bias else "")
    (out / TEST_MODEL_MARKER).write_text(
        json.dumps({"kind": "mms-lid", "seed": seed, "bias": bias, "note": note}, indent=2) + "\n"
    )
    logger.info("wrote test language identifier to %s", out)
    return out
