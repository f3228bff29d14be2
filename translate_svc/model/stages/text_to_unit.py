"""The speech stage's text-to-unit: UnitY2's t2u on tensors, everything it learns returned.

``TextToUnit`` takes a batch of text rows (the encoder rows they read, their mask at the encoder's
resolution, the rows' token sequences as ``generate`` returns them, and in benchmark mode each
row's forced unit count) and returns ``Units``: the vocoder unit ids, each row's unit count and each
row's per-character durations. It follows ``SeamlessM4Tv2Model.generate`` step for step (the text
decoder re-run over the sequences, the same trimming of the language and EOS tokens, the same unit
offset), so each row equals ``generate`` on it alone; batching is made exact by counting each
row's own tokens (the parity tests, tests/model/test_runner.py, prove it).

The t2u model itself runs through our own forward (``TextToUnit.forward``) of
``SeamlessM4Tv2TextToUnitForConditionalGeneration`` / ``SeamlessM4Tv2TextToUnitModel`` /
``SeamlessM4Tv2TextToUnitDecoder``: the same computation in the same order, calling the upstream
submodules (the t2u encoder, the character embeddings and positions, the duration predictor, the
decoder layers, the LM head). Owning it makes the durations a return value instead of something a
forward hook overhears: no hooks, no state between calls, so two batches may be in flight and a
captured graph replays it. Benchmark mode's forced durations are a parameter.

Not thread-safe (torch modules): the model thread only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers.models.seamless_m4t_v2.modeling_seamless_m4t_v2 import _compute_new_attention_mask

from translate_svc.model.capture import GraphedStage, host_read
from translate_svc.model.stages.forced import forced_log_durations
from translate_svc.model.stages.padding import full_mask, hard_upsample, pad_rows
from translate_svc.model.stages.shapes import ShapeLog, bucket_rows
from translate_svc.model.stages.subwords import SubwordTables
from translate_svc.model.stages.vocoder import Vocoded


@dataclass(frozen=True, eq=False)
class Units:
    """Text-to-unit's result for a batch of text rows, per row in order."""

    #: (rows, T) vocoder unit ids (t2u's ids minus the vocoder offset), padded with
    #: ``t2u_pad_token_id``; a row's units are its first ``counts[row]``
    units: torch.Tensor
    #: each row's own unit count: what ``generate`` gives that row alone
    counts: list[int]
    #: (rows, characters) units per character (t2u's rounding, or benchmark mode's forced split),
    #: 0 past each row's characters: each row sums to its count
    char_durations: torch.Tensor


@dataclass(frozen=True, eq=False)
class Speech:
    """The speech stage's result for a batch of text rows: text-to-unit's, then the vocoder's."""

    units: Units
    vocoded: Vocoded

    @property
    def waves(self) -> list[np.ndarray]:
        return self.vocoded.waves


class TextToUnit:
    """Text-to-unit on a loaded ``SeamlessM4Tv2Model`` (it reads its text decoder, t2u model and
    generation config). See the module docstring."""

    def __init__(
        self,
        model: Any,
        *,
        bucket: Callable[[int], int] | None = None,
        shapes: ShapeLog | None = None,
        forced: bool = False,
    ) -> None:  # SeamlessM4Tv2Model
        self.model = model
        #: when set, rows (``bucket_rows``), text positions, characters and units are padded up to
        #: ``bucket(length)`` so that shapes repeat (model/stages/shapes.py); the masks make it invisible
        #: and the outputs are cut back to the unpadded widths. None: padded to the longest row only
        self.bucket = bucket
        #: where each call's shapes are recorded, stage ``t2u`` (model/stages/shapes.py); None: nowhere
        self.shapes = shapes
        gen = model.generation_config
        device = next(model.t2u_model.parameters()).device
        #: subword -> characters as tables on the device: no per-token host sync (model/stages/subwords.py)
        self.tables = SubwordTables.build(gen, int(model.config.vocab_size), device, pad=int(gen.pad_token_id))
        #: the two parts (``__call__``), each a graph per bucket on CUDA (model/capture.py)
        self.chars = GraphedStage("t2u.chars", self._chars, device)
        self.units = GraphedStage("t2u.units", self._units, device)
        #: benchmark mode: every call forces its rows' unit totals (model/stages/forced.py)
        self.forced = forced

    def _width(self, n: int) -> int:
        return n if self.bucket is None else self.bucket(n)

    def _saw(self, part: int, shape: tuple[int, int]) -> None:
        """Record one part's shape: 0 the text positions (t2u's encoder, the text decoder re-run),
        1 the characters (their embeddings and duration predictor), 2 the units (the decoder layers
        and the LM head), each with the rows; a kernel's shape depends on one part alone."""
        if self.shapes is not None:
            self.shapes.saw("t2u", (part, *shape))

    def __call__(
        self,
        enc: torch.Tensor,
        enc_mask: torch.Tensor,
        sequences: torch.Tensor,
        forced_units: torch.Tensor | None = None,
        text_states: torch.Tensor | None = None,
        *,
        tokens: Sequence[Sequence[int]] | None = None,
    ) -> Units:
        """Text-to-unit for text rows. ``enc``: the encoder output each row reads (expanded to the
        rows), ``enc_mask`` its mask at the encoder's resolution (speech: the features' mask
        sub-sampled to the encoder's frames; text: the tokens' mask); ``sequences`` as ``generate``
        returns them (start, language, text, then a last token that is not spoken, then padding).
        ``forced_units``: each row's unit total (benchmark mode, model/stages/forced.py); None: predicted.
        ``text_states``: the text decoder's last hidden states over ``sequences[:, :-1]`` kept by
        the decode that wrote them (model/decode/loop.py); None: the decoder re-runs over them.
        ``tokens``: ``sequences`` on the host where the caller has them (else read once here).

        Two parts, each a captured graph per bucket on CUDA (``graphs``): the characters (t2u's
        encoder, the characters' embeddings and the duration predictor), then the units (the
        decoder layers and the LM head). Between them the host reads each row's unit total (the
        units' width depends on the predicted durations): one read a batch; the characters' width
        follows from the tokens on the host."""
        gen = self.model.generation_config
        pad = gen.pad_token_id
        real = sequences.shape[0]
        chars = self.tables.char_totals(sequences.tolist() if tokens is None else tokens, gen.eos_token_id)
        real_chars = max(chars, default=0)
        char_width = self._width(real_chars)
        if self.bucket is not None:  # rows and text positions up to their buckets (masked)
            rows = bucket_rows(real)
            width = self._text_width(sequences.shape[1] - 1, char_width)
            grow = width + 1 - sequences.shape[1]
            sequences = torch.nn.functional.pad(pad_rows(sequences, rows), (0, grow), value=pad)
            if text_states is None:
                enc, enc_mask = pad_rows(enc, rows), pad_rows(enc_mask, rows)
            else:
                text_states = pad_rows(text_states, rows)
                text_states = torch.nn.functional.pad(text_states, (0, 0, 0, width - text_states.shape[1]))
            if forced_units is not None:
                forced_units = pad_rows(forced_units, rows)
        rows, text = sequences.shape[0], sequences.shape[1] - 1
        self._saw(0, (rows, text))
        t2u_embeds = self.text_states(enc, enc_mask, sequences) if text_states is None else text_states
        self._saw(1, (rows, char_width))
        forced = forced_units is not None
        if forced_units is None:
            forced_units = torch.zeros(rows, dtype=torch.long, device=sequences.device)
        char_hidden, durations, totals = self.chars(
            (rows, text, char_width, forced) if self.bucket is not None else None,
            sequences,
            t2u_embeds,
            forced_units,
            chars=char_width,
            forced=forced,
        )
        counts_all: list[int] = host_read([totals])[0].tolist()  # the one read: each row's units
        unit_width = self._width(max(counts_all, default=0))
        self._saw(2, (rows, unit_width))
        (units,) = self._units_at(rows, unit_width, char_hidden, durations)
        counts = counts_all[:real]
        # the padding cut: the widths (and rows) the unpadded batch has
        return Units(units[:real, : max(counts, default=0)], counts, durations[:real, :real_chars])

    def _text_width(self, text: int, chars: int) -> int:
        """The text positions a bucketed call runs at. Under graphs (``GraphedStage.enabled``) the
        characters' bucket decides them, ``chars + 2``, so that the characters part's graph has
        one key per (rows, characters) bucket, not one per (text, characters) pair, which no
        warm-up could cover: every spoken token is at least one character, so a row's text
        positions (start, language, its tokens) are at most its characters plus two. (More
        positions cost t2u's encoder a little arithmetic, no launch.) Without graphs, the text's
        own bucket: the least arithmetic."""
        if self.chars.enabled and text <= chars + 2:
            return chars + 2
        return self._width(text)

    def _units_at(
        self, rows: int, width: int, char_hidden: torch.Tensor, durations: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        """The units part at ``width`` units. Under graphs the characters are padded to ``width``
        (a row has at least one unit a character, so they fit), so that its graph has one key
        per (rows, units) bucket; without graphs, keyed by both widths as they are."""
        chars = char_hidden.shape[1]
        key: tuple[int, ...] | None = None
        if self.bucket is not None:
            key = (rows, chars, width)
            if self.units.enabled and chars <= width:
                char_hidden = torch.nn.functional.pad(char_hidden, (0, 0, 0, width - chars))
                durations = torch.nn.functional.pad(durations, (0, width - chars))
                key = (rows, width)
        return self.units(key, char_hidden, durations, width=width)

    def warm(self, rows: int, text: int, chars: int, units: int) -> None:
        """Run every kernel of a call of ``rows`` rows at these widths once (the engine's warm-up,
        engine/warmup.py): t2u's encoder on ``text`` positions, the characters' layers on ``chars``,
        the decoder's on ``units`` (its durations forced to fill them); with buckets on CUDA, each
        part's graph is captured then (``graphs``)."""
        m = self.model
        dev = next(m.t2u_model.parameters()).device
        hidden = int(m.config.hidden_size)
        gen = m.generation_config
        # a row of ``text`` text tokens (token 4: any word piece) ending in EOS; states of zeros.
        # Under graphs the characters decide the text positions (``_text_width``)
        text = chars + 2 if self.chars.enabled else text
        seqs = torch.full((rows, text + 1), 4, dtype=torch.long, device=dev)
        seqs[:, -1] = int(gen.eos_token_id)
        self._saw(0, (rows, text))
        states = torch.zeros((rows, text, hidden), device=dev, dtype=m.dtype)
        totals = torch.full((rows,), units, dtype=torch.long, device=dev)
        self._saw(1, (rows, chars))
        char_hidden, durations, _ = self.chars(
            (rows, text, chars, self.forced), seqs, states, totals, chars=chars, forced=self.forced
        )
        self._saw(2, (rows, units))
        self._units_at(rows, units, char_hidden, durations)

    def text_states(self, enc: torch.Tensor, enc_mask: torch.Tensor, sequences: torch.Tensor) -> torch.Tensor:
        """The text decoder's last hidden states over ``sequences[:, :-1]``: what t2u reads (as
        ``generate`` re-runs it)."""
        hidden: torch.Tensor = self.model.text_decoder(
            input_ids=sequences[:, :-1], encoder_hidden_states=enc, encoder_attention_mask=enc_mask
        ).last_hidden_state
        return hidden

    def _chars(
        self,
        sequences: torch.Tensor,
        t2u_embeds: torch.Tensor,
        forced_units: torch.Tensor,
        *,
        chars: int,
        forced: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The characters part (``__call__``): from the rows' sequences and the text decoder's
        states, each character's hidden state (rows, ``chars``, hidden), its durations in units
        (rows, ``chars``; 0 past a row's characters) and each row's unit total. ``forced``: the
        durations replaced so each row's add up to ``forced_units`` (benchmark mode). No read of
        the device: its shapes follow from its inputs' and ``chars``."""
        gen = self.model.generation_config
        pad = gen.pad_token_id
        # Alone, a row's sequence ends at its EOS (or its last token) and generate drops that last
        # token; in a batch a shorter row's EOS sits inside ``[:, :-1]``, followed by padding. Count
        # each row's own tokens minus its last, so t2u never attends to a batch-only EOS.
        own = (sequences != pad).int().sum(1)  # each row's tokens: start, language, text, last
        seq_lens = own - 1
        t2u_ids = sequences[:, 2:-1]
        # Alone, generate drops a row's last token (its EOS, or the token max_new_tokens cut at);
        # drop each row's own last token here too, wherever it sits in the batch.
        cols = torch.arange(t2u_ids.shape[1], device=t2u_ids.device)
        t2u_ids = t2u_ids.masked_fill(cols[None, :] >= (own - 3)[:, None], pad)
        t2u_ids = torch.masked_fill(t2u_ids, t2u_ids == gen.eos_token_id, pad)
        # the upstream's _indices_to_subwords, _count_character_length_in_subword and
        # _get_char_input_ids as table look-ups (model/stages/subwords.py)
        char_count = self.tables.char_counts(t2u_ids)
        zero = char_count.new_zeros((char_count.shape[0], 1))
        char_count = torch.cat([zero, char_count, zero], dim=1)
        char_ids = self.tables.char_ids(t2u_ids, chars)
        attention_mask = _compute_new_attention_mask(t2u_embeds, seq_lens)
        t2u = self.model.t2u_model
        encoder_mask = full_mask(t2u.model.encoder.config, t2u_embeds, attention_mask)  # 4-D: used as it is
        encoded = t2u.model.encoder(attention_mask=encoder_mask, inputs_embeds=t2u_embeds).last_hidden_state
        dec = t2u.model.decoder
        # SeamlessM4Tv2TextToUnitDecoder.forward, step for step
        char_padding_mask = _compute_new_attention_mask(char_ids, char_count.sum(1))
        char_hidden = hard_upsample(encoded, char_count, chars)
        char_positions = dec.pos_emb_alpha_char * dec.embed_char_positions(inputs_embeds=char_hidden)
        char_hidden = dec.embed_char(char_ids) * dec.embed_scale + char_positions + char_hidden
        log_dur = dec.duration_predictor(char_hidden, padding_mask=char_padding_mask)
        if forced:
            log_dur = forced_log_durations(log_dur, char_padding_mask, forced_units)
        durations = torch.clamp(torch.round(torch.expm1(log_dur)).long(), min=1)
        durations = durations.masked_fill(~char_padding_mask.bool(), 0)
        return char_hidden, durations, durations.sum(1)

    def _units(self, char_hidden: torch.Tensor, durations: torch.Tensor, *, width: int) -> torch.Tensor:
        """The units part (``__call__``): the characters upsampled by their durations into
        ``width`` positions, the non-autoregressive decoder and the LM head, then each position's
        vocoder unit (t2u's pad past a row's units and at t2u's EOS). No read of the device."""
        cfg = self.model.config
        dec = self.model.t2u_model.model.decoder
        hidden = hard_upsample(char_hidden, durations, width)
        hidden = hidden + dec.pos_emb_alpha * dec.embed_positions(inputs_embeds=hidden)
        padding_mask = _compute_new_attention_mask(hidden, durations.sum(1))
        mask = full_mask(dec.config, hidden, padding_mask)
        hidden = nn.functional.dropout(hidden, p=dec.dropout, training=dec.training)
        for layer in dec.layers:
            hidden = layer(hidden, attention_mask=mask, padding_mask=padding_mask)
        hidden = dec.layer_norm(hidden)
        logits: torch.Tensor = self.model.t2u_model.lm_head(hidden)
        units = logits.argmax(dim=-1)
        replace = (units == cfg.t2u_eos_token_id) | ~padding_mask.bool()
        units = units.masked_fill(replace, cfg.t2u_pad_token_id)
        return torch.where(units == cfg.t2u_pad_token_id, units, units - cfg.vocoder_offset)
