"""Build a tiny, random-weight SeamlessM4T v2 checkpoint with the real architecture.

Why: real weights (~10 GB) cannot be fetched on CI or dev machines. This checkpoint has the exact
module graph of ``SeamlessM4Tv2Model`` at tiny sizes, a real tokenizer with language tokens, the
generation-config language maps and a processor config, so the *same* loading and inference code
runs on it as on ``facebook/seamless-m4t-v2-large``. Its output is noise.

Deterministic: the same seed gives byte-identical weights.
"""

from __future__ import annotations

import json
import logging
import string
from pathlib import Path

import torch
from transformers import (
    SeamlessM4TFeatureExtractor,
    SeamlessM4TProcessor,
    SeamlessM4TTokenizer,
    SeamlessM4Tv2Config,
    SeamlessM4Tv2Model,
)

from translate_svc.model.stages.loading import TEST_MODEL_MARKER

logger = logging.getLogger(__name__)

#: Languages of the test checkpoint; every one supports text and speech output.
TEST_LANGUAGES = ("eng", "spa", "fra", "deu", "ita", "por")
#: Extra languages with text output only (like most of the real model's 96 text languages).
TEST_TEXT_ONLY_LANGUAGES = ("cmn", "jpn")


_SPECIALS = {"<pad>": 0, "<unk>": 1, "<s>": 2, "</s>": 3}
_UNIT_VOCAB = 96  # vocoder units (real model: 10000)
_VOCODER_OFFSET = 4  # t2u control symbols before the first unit (as in the real model)


def _build_vocab() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A small BPE vocabulary: letters, '▁'+letter merges, punctuation, then language tokens."""
    vocab = dict(_SPECIALS)
    merges: list[tuple[str, str]] = []
    pieces = ["▁", *string.ascii_lowercase, *".,?!'"]
    for p in pieces:
        vocab[p] = len(vocab)
    for c in string.ascii_lowercase:
        vocab["▁" + c] = len(vocab)
        merges.append(("▁", c))
    for lang in (*TEST_LANGUAGES, *TEST_TEXT_ONLY_LANGUAGES):
        vocab[f"__{lang}__"] = len(vocab)
    return vocab, merges


def _tiny_config(vocab_size: int, char_vocab_size: int) -> SeamlessM4Tv2Config:
    """Real architecture, tiny sizes. Field names are those of SeamlessM4Tv2Config."""
    return SeamlessM4Tv2Config(
        vocab_size=vocab_size,
        t2u_vocab_size=_UNIT_VOCAB + _VOCODER_OFFSET,
        char_vocab_size=char_vocab_size,
        hidden_size=32,
        initializer_range=0.3,
        max_position_embeddings=256,
        encoder_layers=1,
        encoder_ffn_dim=32,
        encoder_attention_heads=2,
        decoder_layers=2,
        decoder_ffn_dim=32,
        decoder_attention_heads=2,
        max_new_tokens=16,
        speech_encoder_layers=2,
        speech_encoder_attention_heads=2,
        speech_encoder_intermediate_size=32,
        conv_depthwise_kernel_size=5,
        left_max_position_embeddings=8,
        right_max_position_embeddings=4,
        speech_encoder_chunk_size=20000,
        speech_encoder_left_chunk_num=128,
        t2u_encoder_layers=1,
        t2u_encoder_ffn_dim=32,
        t2u_encoder_attention_heads=2,
        t2u_decoder_layers=1,
        t2u_decoder_ffn_dim=32,
        t2u_decoder_attention_heads=2,
        t2u_max_position_embeddings=512,
        t2u_variance_predictor_embed_dim=32,
        t2u_variance_predictor_hidden_dim=16,
        variance_predictor_kernel_size=3,
        upsample_initial_channel=32,
        unit_hifi_gan_vocab_size=_UNIT_VOCAB,
        unit_embed_dim=16,
        lang_embed_dim=8,
        spkr_embed_dim=8,
        vocoder_num_langs=len(TEST_LANGUAGES),
        vocoder_num_spkrs=4,
        vocoder_offset=_VOCODER_OFFSET,
    )


def _full_size_config(vocab_size: int, char_vocab_size: int) -> SeamlessM4Tv2Config:
    """seamless-m4t-v2-large's sizes (the config defaults), for capacity benchmarks on a GPU.

    The text vocabulary keeps its real size (256102) so the embedding and output projection cost
    what they cost; only our few tokenizer ids ever appear as inputs. t2u's vocabulary is cut to
    the vocoder's units plus the control symbols so random argmaxes stay embeddable.
    """
    del vocab_size, char_vocab_size
    base = SeamlessM4Tv2Config()
    return SeamlessM4Tv2Config(
        t2u_vocab_size=base.unit_hifi_gan_vocab_size + base.vocoder_offset,
        vocoder_num_langs=max(base.vocoder_num_langs, len(TEST_LANGUAGES)),
    )


def _real_layers_config(vocab_size: int, char_vocab_size: int) -> SeamlessM4Tv2Config:
    """The real model's layer counts (24 speech encoder, 24 text encoder, 24 text decoder, 6 + 6
    t2u layers, 16 decoder heads) at the tiny checkpoint's widths: what the host pays per decode
    step (one Python walk per layer and head count) is then the full model's, on a CPU, in
    seconds (docs/performance.md's decode-step figures)."""
    base = SeamlessM4Tv2Config()
    config = _tiny_config(vocab_size, char_vocab_size)
    for name in (
        "encoder_layers", "decoder_layers", "speech_encoder_layers", "t2u_encoder_layers", "t2u_decoder_layers",
        "num_adapter_layers",
    ):  # fmt: skip
        setattr(config, name, getattr(base, name))
    config.decoder_attention_heads = config.encoder_attention_heads = 16
    config.hidden_size = 64  # 16 heads of 4
    # t2u's duration predictor reads t2u's hidden states, whose width is hidden_size (the real
    # model: 1024 and 1024); left at the tiny 32, every segment with speech out failed
    config.t2u_variance_predictor_embed_dim = config.hidden_size
    config.decoder_ffn_dim = config.encoder_ffn_dim = config.speech_encoder_intermediate_size = 64
    config.t2u_encoder_ffn_dim = config.t2u_decoder_ffn_dim = 64
    return config


def build_test_checkpoint(
    out_dir: str | Path, seed: int = 0, *, full_size: bool = False, real_layers: bool = False
) -> Path:
    """Write the test checkpoint to ``out_dir`` (created) and return it.

    ``full_size``: the real model's dimensions (about 2.3 B parameters, saved in bf16, ~4.6 GB)
    with random weights, for GPU capacity benchmarks with forced decode lengths (model/stages/forced.py).
    ``real_layers``: the real model's layer counts at tiny widths (``_real_layers_config``).
    """
    if full_size and real_layers:
        raise ValueError("full_size already has the real layer counts: pick one")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vocab, merges = _build_vocab()
    lang_tokens = [f"__{lang}__" for lang in (*TEST_LANGUAGES, *TEST_TEXT_ONLY_LANGUAGES)]
    tokenizer = SeamlessM4TTokenizer(
        vocab=vocab,
        merges=merges,  # type: ignore[arg-type]  # (left, right) pairs are accepted at run time
        src_lang="eng",
        tgt_lang="spa",
        additional_special_tokens=lang_tokens,
    )
    feature_extractor = SeamlessM4TFeatureExtractor()
    processor = SeamlessM4TProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer)

    pieces = [tok for tok in vocab if tok not in _SPECIALS and not tok.startswith("__")]
    chars = [*_SPECIALS, *sorted({ch for tok in pieces for ch in tok})]
    char_to_id = {ch: i for i, ch in enumerate(chars)}

    torch.manual_seed(seed)
    make_config = _full_size_config if full_size else _real_layers_config if real_layers else _tiny_config
    config = make_config(vocab_size=len(vocab), char_vocab_size=len(chars))
    model = SeamlessM4Tv2Model(config).eval()
    _keep_units_in_vocoder_range(model)

    gen = model.generation_config
    gen.text_decoder_lang_to_code_id = {
        lang: vocab[f"__{lang}__"] for lang in (*TEST_LANGUAGES, *TEST_TEXT_ONLY_LANGUAGES)
    }
    # t2u ids of language tokens (only their presence is checked by v2's non-autoregressive t2u).
    gen.t2u_lang_code_to_id = {lang: _VOCODER_OFFSET + i for i, lang in enumerate(TEST_LANGUAGES)}
    gen.vocoder_lang_code_to_id = {lang: i for i, lang in enumerate(TEST_LANGUAGES)}
    gen.id_to_text = {str(i): tok for tok, i in vocab.items()}
    gen.char_to_id = char_to_id
    gen.max_new_tokens = config.max_new_tokens
    gen._from_model_config = False  # else from_pretrained rebuilds it from config.json, losing the maps

    if full_size:
        model = model.to(torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    (out / TEST_MODEL_MARKER).write_text(
        json.dumps(
            {
                "seed": seed,
                "full_size": full_size,
                "real_layers": real_layers,
                "note": "random weights: all output is noise",
            },
            indent=2,
        )
        + "\n"
    )
    logger.info("wrote test checkpoint to %s", out)
    return out


@torch.no_grad()
def _keep_units_in_vocoder_range(model: SeamlessM4Tv2Model) -> None:
    """Make t2u never predict unit ids 0 and 3, which the vocoder cannot embed.

    Trained weights never emit these control symbols as units; random weights would, and
    ``generate`` would then index the vocoder's unit embedding at -4 or -1. The t2u decoder's final
    layer norm gets one constant output channel (weight 0, bias 1) whose lm_head weight is strongly
    negative for those two ids and zero for all others, so only their logits move.
    """
    t2u = model.t2u_model
    norm = t2u.model.decoder.layer_norm
    norm.weight[0] = 0.0
    norm.bias[0] = 1.0
    head = t2u.lm_head.weight
    head[:, 0] = 0.0
    head[0, 0] = -1e4
    head[3, 0] = -1e4
