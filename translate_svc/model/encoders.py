"""The encoder stages: speech features and the speech encoder, and the text encoder for text in.

``SpeechEncoder`` pads per-segment features into one batch (``EncoderBatch``: the values, their
mask and each row's own frame count) and runs SeamlessM4T v2's speech encoder with our own walk
of its length adaptor: each adaptor layer's strided convolutions read up to 4 frames past a row's
end, which alone are the convolution's zero padding but in a padded batch are frames the batch
added; each row's frames past its **own** length are zeroed before those convolutions, so every
row sees what it sees alone (the parity tests). The own lengths are part of the batch handed in,
not state kept on the side, so two batches can be in flight and a captured graph replays them.

``TextEncoder`` tokenizes text inputs (each in its own source language) and runs the text
encoder with the model set to text meanwhile, as ``generate(input_ids=...)`` does.

Both take features, token ids and tensors, never a request. Model thread only, except
``SpeechEncoder.extract_features`` (numpy only: thread-safe).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import SeamlessM4Tv2Model
from transformers.masking_utils import create_bidirectional_mask
from transformers.models.seamless_m4t_v2.modeling_seamless_m4t_v2 import _compute_new_attention_mask

from translate_svc.engine.requests import Features, SourceText
from translate_svc.model.shapes import ShapeLog
from translate_svc.types import MODEL_SAMPLE_RATE


@dataclass(frozen=True, eq=False)
class EncoderBatch:
    """Segments' features padded into one batch, and what the encoder needs to treat each row as
    if it were alone."""

    #: (rows, frames, feature_dim) in the model's dtype, zero past each row's features
    values: torch.Tensor
    #: (rows, frames) int: 1 on each row's (unpadded) frames
    mask: torch.Tensor
    #: (rows,) each row's own frame count (its ``extract_features`` length, which includes the
    #: processor's own pad frame of an odd-length clip)
    own_frames: torch.Tensor


class SpeechEncoder:
    """Features and the speech encoder (see the module docstring)."""

    def __init__(
        self,
        model: SeamlessM4Tv2Model,
        processor: object,
        device: torch.device,
        dtype: torch.dtype,
        frame_bucket: Callable[[int], int] | None = None,
        *,
        shapes: ShapeLog | None = None,
    ) -> None:
        self.model = model
        self.encoder = model.speech_encoder
        self.feature_extractor = processor.feature_extractor  # type: ignore[attr-defined]
        self.device, self.dtype = device, dtype
        #: pad a batch's frames up to a length bucket (model/shapes.py), so shapes repeat; None: to
        #: the longest row
        self.frame_bucket = frame_bucket
        #: where the batches' shapes are recorded (model/shapes.py); None: nowhere
        self.shapes = shapes
        cfg = model.config
        self._kernel, self._stride = int(cfg.adaptor_kernel_size), int(cfg.adaptor_stride)

    def extract_features(self, audio: np.ndarray) -> Features:
        """The processor's features for one segment. Thread-safe (numpy only, no model state):
        the engine runs it on a CPU thread so it overlaps with the model's work."""
        f = self.feature_extractor(
            audio, sampling_rate=MODEL_SAMPLE_RATE, return_attention_mask=True, return_tensors="np"
        )
        return Features(values=f["input_features"][0], mask=f["attention_mask"][0])

    def features(self, per: Sequence[Features]) -> EncoderBatch:
        """Per-segment features padded with zeros and a zero mask: what the processor does for a
        list of clips (it normalises each clip on its own, then pads; with ``frame_bucket``, further,
        up to the longest row's bucket)."""
        own = [f.values.shape[0] for f in per]
        frames = max(own) if self.frame_bucket is None else self.frame_bucket(max(own))
        if self.shapes is not None:
            self.shapes.saw("encoder", (len(per), frames))
        values = np.zeros((len(per), frames, per[0].values.shape[1]), np.float32)
        mask = np.zeros((len(per), frames), np.int64)
        for row, f in enumerate(per):
            values[row, : len(f.values)] = f.values
            mask[row, : len(f.mask)] = f.mask
        return EncoderBatch(
            torch.from_numpy(values).to(self.device, self.dtype),
            torch.from_numpy(mask).to(self.device),
            torch.tensor(own, device=self.device),
        )

    def encode(self, batch: EncoderBatch) -> torch.Tensor:
        """The speech encoder on a batch: ``SeamlessM4Tv2SpeechEncoder.forward``'s steps, with the
        adaptor walked here (``_adaptor_layer``)."""
        enc = self.encoder
        hidden = enc.feature_projection(batch.values)
        hidden = enc.encoder(hidden, attention_mask=batch.mask)
        hidden = hidden + 0.5 * enc.intermediate_ffn(hidden)
        if enc.adapter is not None:
            own = batch.own_frames
            for layer in enc.adapter.layers:
                hidden = self._adaptor_layer(layer, hidden, batch.mask, own)
                own = (own + 2 * (self._stride // 2) - self._kernel) // self._stride + 1
        out: torch.Tensor = enc.inner_layer_norm(hidden)
        return out

    @staticmethod
    def _adaptor_layer(layer: Any, hidden: torch.Tensor, mask: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
        """``SeamlessM4Tv2ConformerAdapterLayer.forward``, with each row's frames past ``own`` (its
        own length at this layer's input) zeroed before both strided convolutions, after the layer
        norms: there a zeroed frame equals the convolution's zero padding, which is what the row
        reads alone. The boundary is the row's own length, not its mask: the processor pads an
        odd-length clip by one frame and masks it, yet alone the convolution reads the encoder's
        non-zero output there, so that frame must stay. A row the batch does not pad is untouched."""
        past = (torch.arange(hidden.shape[1], device=hidden.device) >= own.unsqueeze(1)).unsqueeze(1)

        def conv(norm: Any, conv: Any, x: torch.Tensor) -> torch.Tensor:
            x = norm(x).transpose(1, 2).masked_fill(past, 0.0)  # (batch, channels, frames)
            return layer.activation(conv(x)).transpose(1, 2)  # type: ignore[no-any-return]

        residual = conv(layer.residual_layer_norm, layer.residual_conv, hidden)
        hidden = conv(layer.self_attn_layer_norm, layer.self_attn_conv, hidden)
        lengths = layer._compute_sub_sample_lengths_from_attention_mask(mask).to(hidden.device)
        attention = _compute_new_attention_mask(hidden_states=hidden, seq_lens=lengths)
        attention = create_bidirectional_mask(config=layer.config, inputs_embeds=hidden, attention_mask=attention)
        hidden, _ = layer.self_attn(hidden, attention_mask=attention)
        hidden = layer.self_attn_dropout(hidden) + residual
        return layer.ffn(layer.ffn_layer_norm(hidden)) + hidden  # type: ignore[no-any-return]


class TextEncoder:
    """Text in: token ids and the text encoder (see the module docstring)."""

    def __init__(self, model: SeamlessM4Tv2Model, tokenizer: object, device: torch.device) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = device

    def tokenize(self, texts: Sequence[SourceText]) -> tuple[torch.Tensor, torch.Tensor]:
        """Texts' token ids (each with its own language as ``src_lang``, as the processor writes
        them alone), right-padded into one batch, and their mask."""
        tok = self.tokenizer
        per = [[int(i) for i in tok(t.text, src_lang=t.language)["input_ids"]] for t in texts]  # type: ignore[operator]
        width = max(len(ids) for ids in per)
        ids = torch.full((len(per), width), int(tok.pad_token_id), dtype=torch.long)  # type: ignore[attr-defined]
        mask = torch.zeros((len(per), width), dtype=torch.long)
        for row, own in enumerate(per):
            ids[row, : len(own)] = torch.tensor(own)
            mask[row, : len(own)] = 1
        return ids.to(self.device), mask.to(self.device)

    @contextlib.contextmanager
    def text_modality(self) -> Iterator[None]:
        """The model set to text meanwhile, and to speech again after, as
        ``generate(input_ids=...)`` does: its decoder then reads a text encoder's mask as it is."""
        self.model.set_modality("text")
        try:
            yield
        finally:
            self.model.set_modality("speech")

    def encode(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The text encoder on tokens from ``tokenize`` (inside ``text_modality``)."""
        hidden: torch.Tensor = self.model.text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        return hidden
