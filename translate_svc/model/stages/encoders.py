"""The encoder stages: speech features and the speech encoder, and the text encoder for text in.

``SpeechEncoder`` pads per-segment features into one batch (``EncoderBatch``: the values, their
mask and each row's own frame count) and runs SeamlessM4T v2's speech encoder with our own walk
of its length adaptor: each adaptor layer's strided convolutions read up to 4 frames past a row's
end, which alone are the convolution's zero padding but in a padded batch are frames the batch
added; each row's frames past its **own** length are zeroed before those convolutions, so every
row sees what it sees alone (the parity tests). The own lengths are part of the batch handed in,
not state kept on the side, so two batches can be in flight and a captured graph replays them.

A segment's features are the feature extractor's (model/stages/fbank.py ``Fbank``: every frame in a
few tensor operations). Either the engine computes them ahead on its features thread
(``extract_features``) and the batch carries them, or, with ``device_features`` (the CUDA plan),
the batch carries the segments' padded audio and the encoder computes them on its device as the
first part of its static path: inside the captured graph of the batch's bucket, so a segment's
features cost the host no launch and no thread of the engine's process (``audio_batch``).

``TextEncoder`` tokenizes text inputs (each in its own source language) and runs the text
encoder with the model set to text meanwhile, as ``generate(input_ids=...)`` does.

Both take features, audio, token ids and tensors, never a request. Model thread only, except
``SpeechEncoder.extract_features`` (constant tensors only: thread-safe).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import SeamlessM4Tv2Model
from transformers.models.seamless_m4t_v2.modeling_seamless_m4t_v2 import _compute_new_attention_mask

from translate_svc.model.capture import GraphedStage, HostStaging
from translate_svc.model.stages.fbank import Fbank, frames_samples
from translate_svc.model.stages.padding import full_mask
from translate_svc.model.stages.shapes import ShapeLog, bucket_rows, ladder
from translate_svc.model_api.requests import Features, SourceText


@dataclass(frozen=True, eq=False)
class EncoderBatch:
    """Segments' features padded into one batch, and what the encoder needs to treat each row as
    if it were alone."""

    #: (rows, frames, feature_dim) in the model's dtype, zero past each row's features; None where
    #: the encoder computes them from ``audio``
    values: torch.Tensor | None
    #: (rows, frames) int: 1 on each row's (unpadded) frames
    mask: torch.Tensor
    #: (rows,) each row's own frame count (its ``extract_features`` length, which includes the
    #: processor's own pad frame of an odd-length clip)
    own_frames: torch.Tensor
    #: each input's frames its mask keeps (the host's count: the encoder's frames follow from it,
    #: ``SpeechEncoder.encoder_frames``, without a read of the device)
    mask_frames: tuple[int, ...] = ()
    #: (rows, samples) float32: each row's samples, zero past them, when the features are computed
    #: in ``SpeechEncoder.encode`` (``audio_batch``); None: ``values`` are the features
    audio: torch.Tensor | None = None
    #: (rows,) int: each row's 25 ms fbank frames (``fbank.frame_count``), with ``audio``
    fbank_frames: torch.Tensor | None = None


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
        pad_rows: bool = False,
        device_features: bool = False,
    ) -> None:
        self.model = model
        self.encoder = model.speech_encoder
        self.feature_extractor = processor.feature_extractor  # type: ignore[attr-defined]
        self.device, self.dtype = device, dtype
        #: pad a batch's frames up to a length bucket (model/stages/shapes.py), so shapes repeat; None: to
        #: the longest row
        self.frame_bucket = frame_bucket
        #: where the batches' shapes are recorded (model/stages/shapes.py); None: nowhere
        self.shapes = shapes
        #: pad a batch's rows up to a power of two (``bucket_rows``: copies of the first row, so
        #: they compute nothing out of range; nobody reads their outputs), so a batch's shapes are
        #: a (rows, frames) bucket pair
        self.pad_rows = pad_rows
        #: the features of segments that come without them computed on the device, inside
        #: ``encode`` (``audio_batch``); else on the host (``extract_features``)
        self.device_features = device_features
        #: the extractor's features on this device (inside ``encode``) and on the host (``extract_features``)
        self.fbank = Fbank(self.feature_extractor, device)
        self.host_fbank = self.fbank if device.type == "cpu" else Fbank(self.feature_extractor, torch.device("cpu"))
        cfg = model.config
        self._kernel, self._stride = int(cfg.adaptor_kernel_size), int(cfg.adaptor_stride)
        self._values = HostStaging(torch.float32, device)
        self._masks = HostStaging(torch.long, device)
        self._audio = HostStaging(torch.float32, device)
        #: the encoder's static path, a graph per (rows, frames) bucket on CUDA (model/capture.py)
        self.graphs = GraphedStage("encoder", self._static, device)

    def extract_features(self, audio: np.ndarray) -> Features:
        """The processor's features for one segment, on the host (``Fbank.features``). Thread-safe
        (constant tensors only, no model state): the engine runs it on a CPU thread so it overlaps
        with the model's work, and its large tensor operations release the GIL."""
        return self.host_fbank.features(audio)

    def features(self, per: Sequence[Features]) -> EncoderBatch:
        """Per-segment features padded with zeros and a zero mask: what the processor does for a
        list of clips (it normalises each clip on its own, then pads; with ``frame_bucket``, further,
        up to the longest row's bucket)."""
        own = [f.values.shape[0] for f in per]
        frames = max(own) if self.frame_bucket is None else self.frame_bucket(max(own))
        rows = bucket_rows(len(per)) if self.pad_rows else len(per)
        if self.shapes is not None:
            self.shapes.saw("encoder", (rows, frames))

        def fill_values(values: np.ndarray) -> None:
            for row, f in enumerate(per):
                values[row, : len(f.values)] = f.values
            values[len(per) :] = values[0]

        def fill_masks(masks: np.ndarray) -> None:  # each row's mask, then its own frames
            for row, f in enumerate(per):
                masks[row, : len(f.mask)] = f.mask
                masks[row, frames] = own[row]
            masks[len(per) :] = masks[0]

        # two non-blocking copies from pinned buffers (the host never waits for the GPU here)
        values = self._values.upload((rows, frames, per[0].values.shape[1]), fill_values).to(self.dtype)
        masks = self._masks.upload((rows, frames + 1), fill_masks)
        return EncoderBatch(values, masks[:, :frames], masks[:, frames], tuple(int(f.mask.sum()) for f in per))

    def audio_batch(self, audios: Sequence[np.ndarray]) -> EncoderBatch:
        """Segments' audio padded into one batch whose features ``encode`` computes on the device
        (``device_features``): the same frames, mask and own lengths as ``features`` of their
        ``extract_features``, known on the host from the lengths alone. Raises ``ValueError`` for a
        segment shorter than one 25 ms frame."""
        fb = self.fbank
        counts = [Fbank.checked_frames(len(a)) for a in audios]
        own = [fb.stacked(n) for n in counts]
        frames = max(own) if self.frame_bucket is None else self.frame_bucket(max(own))
        rows = bucket_rows(len(audios)) if self.pad_rows else len(audios)
        if self.shapes is not None:
            self.shapes.saw("encoder", (rows, frames))

        def fill_audio(out: np.ndarray) -> None:  # each row's samples its frames read
            for row, (a, n) in enumerate(zip(audios, counts, strict=True)):
                used = frames_samples(n)
                out[row, :used] = a[:used]
            out[len(audios) :] = out[0]

        def fill_masks(masks: np.ndarray) -> None:  # each row's mask, its own frames, its fbank frames
            for row, n in enumerate(counts):
                masks[row, : fb.masked(n)] = 1
                masks[row, frames] = own[row]
                masks[row, frames + 1] = n
            masks[len(audios) :] = masks[0]

        # two non-blocking copies from pinned buffers, as ``features``
        audio = self._audio.upload((rows, frames_samples(frames * fb.stride)), fill_audio)
        masks = self._masks.upload((rows, frames + 2), fill_masks)
        mask_frames = tuple(fb.masked(n) for n in counts)
        return EncoderBatch(
            None, masks[:, :frames], masks[:, frames], mask_frames, audio=audio, fbank_frames=masks[:, frames + 1]
        )

    def encoder_widths(self, longest_s: float) -> list[int]:
        """The encoder's output widths a batch of segments up to ``longest_s`` can have: one per
        frame bucket (what the decode's admission meets; the warm-up's)."""
        if self.frame_bucket is None:
            return []
        buckets = ladder(int(longest_s * 50) + 1, self.frame_bucket)
        return self.encoder_frames(buckets, max(buckets))

    def encoder_frames(self, mask_frames: Sequence[int], width: int) -> list[int]:
        """Each row's own encoder frames from its mask's frames (the model's
        ``_compute_sub_sample_lengths_from_attention_mask``, on the host), at most ``width``."""
        pad = self._kernel // 2
        return [min(width, math.floor((n + 2 * pad - self._kernel) / self._stride + 1)) for n in mask_frames]

    def encode(self, batch: EncoderBatch) -> torch.Tensor:
        """The speech encoder on a batch: ``SeamlessM4Tv2SpeechEncoder.forward``'s steps, with the
        adaptor walked here (``_adaptor_layer``); for a batch of audio (``audio_batch``), its
        features first. With buckets, under a captured graph per (rows, frames) bucket on CUDA
        (``graphs``; a batch of audio has graphs of its own); without, eagerly on the batch's own shapes."""
        key: tuple[int | str, ...] | None = tuple(batch.mask.shape) if self.frame_bucket is not None else None
        if batch.audio is not None:
            assert batch.fbank_frames is not None
            key = None if key is None else (*key, "audio")
            (out,) = self.graphs(key, batch.audio, batch.fbank_frames, batch.mask, batch.own_frames, audio=True)
        else:
            assert batch.values is not None
            (out,) = self.graphs(key, batch.values, batch.mask, batch.own_frames)
        return out

    def _static(self, *inputs: torch.Tensor, audio: bool = False) -> torch.Tensor:
        """``encode``'s static path: (values, mask, own frames), or with ``audio`` (samples, fbank
        frames, mask, own frames), the features computed first (``Fbank``)."""
        if not audio:
            return self._encode(*inputs)
        samples, counts, mask, own = inputs
        return self._encode(self.fbank(samples, counts).to(self.dtype), mask, own)

    def _encode(self, values: torch.Tensor, mask: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
        """``encode``'s static path: tensors in, tensors out, no read of the device."""
        enc = self.encoder
        hidden = enc.feature_projection(values)
        hidden = enc.encoder(hidden, attention_mask=mask)
        hidden = hidden + 0.5 * enc.intermediate_ffn(hidden)
        if enc.adapter is not None:
            for layer in enc.adapter.layers:
                hidden = self._adaptor_layer(layer, hidden, mask, own)
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
        attention = full_mask(layer.config, hidden, attention)
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

    def written(self, text: SourceText, eos: int) -> tuple[int, ...]:
        """A text spoken as written (``SourceText.as_written``): its decoder tokens, the text's own
        pieces (no language token: the row's prompt has it) and ``eos``, forced as the row's
        prefix, so the row decodes exactly them."""
        tok = self.tokenizer
        own = tok(text.text, src_lang=text.language, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
        return (*(int(i) for i in own), eos)

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
