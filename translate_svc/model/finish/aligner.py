"""The model's side of word timings (the method is model/finish/timings.py's docstring):
text-to-unit's per-character durations and the vocoder's per-unit frames, both as the speech
stage returns them (model/stages/text_to_unit.py, model/stages/vocoder.py), and a teacher-forced decoder pass for the
cross-attention of a transcript. Model thread only, like the stages it runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from translate_svc.model.finish.timings import (
    attention_words,
    chunk_words,
    speech_words,
    upsampled_samples,
    word_groups,
)
from translate_svc.model.stages.seamless import SeamlessStages, _new_attention_mask
from translate_svc.types import WordTiming


class WordTimer:
    """Word timings from what the speech stage returns and from one decoder pass. Holds no
    per-batch state (a cache of samples per frame count only). One thread at a time: a second
    thread makes its own, with its own ``tokenizer`` (``SeamlessRunner.finisher``)."""

    def __init__(self, stages: SeamlessStages, *, tokenizer: Any = None) -> None:
        self.stages = stages
        self.tokenizer = stages.processor.tokenizer if tokenizer is None else tokenizer
        gen = stages.model.generation_config
        self._eos, self._pad = int(gen.eos_token_id), int(gen.pad_token_id)
        self._id_to_text: dict[str, str] = dict(getattr(gen, "id_to_text", None) or {})
        self._samples: list[int] = [0]

    def words_of(self, ids: Sequence[int]) -> list[tuple[str, int, int]]:
        """(text, first token, end token) of each word of ``ids`` (text tokens, no specials)."""
        pieces = self.tokenizer.convert_ids_to_tokens(list(ids))
        return [
            (self.tokenizer.decode(list(ids[a:b]), skip_special_tokens=True).strip(), a, b)
            for a, b in word_groups(pieces)
        ]

    def text_ids(self, seq: Sequence[int]) -> list[int]:
        """A decoded row's text tokens: after ``[start, language]``, up to EOS or padding."""
        body = list(seq[2:])
        end = next((i for i, t in enumerate(body) if t in (self._eos, self._pad)), len(body))
        return body[:end]

    def speech(
        self,
        sequences: torch.Tensor,
        waves: Sequence[np.ndarray],
        char_units: torch.Tensor,
        frames: Sequence[np.ndarray],
    ) -> list[tuple[WordTiming, ...]]:
        """Each spoken row's words in its waveform, from what the speech stage returned for
        ``sequences`` (its rows, in its order): t2u's units per character (``Units.char_durations``)
        and the vocoder's frames per unit (``Vocoded.frames``)."""
        if not len(sequences) == len(waves) == len(frames) == char_units.shape[0]:
            raise ValueError("word timings need one waveform, durations and frames per row")
        cpu_units = char_units.cpu().numpy()
        out = []
        for row, (seq, wave) in enumerate(zip(sequences.tolist(), waves, strict=True)):
            ids = self.text_ids(seq)
            own = sum(1 for t in seq if t != self._pad)  # start, language, text, the unspoken last token
            spoken = ids[: max(0, own - 3)]
            chars = [self._chars(t) for t in spoken]
            unit_frames = frames[row]
            samples = self.samples_upto(int(np.sum(unit_frames)))
            out.append(speech_words(self.words_of(ids), chars, cpu_units[row], unit_frames, samples, len(wave)))
        return out

    def chunk(
        self,
        committed: Sequence[int],
        token_ends: Sequence[int],
        spoken_tokens: int,
        spoken_units: int,
        unit_frames: np.ndarray,
        wave_len: int,
    ) -> tuple[WordTiming, ...]:
        """A simultaneous step's chunk's words (``chunk_words``), right after the vocoder spoke it:
        ``committed`` the row's committed tokens, ``token_ends`` their units in this step's t2u run
        (``CommittedSpeech``), the chunk their units from ``spoken_units`` on, ``unit_frames`` its
        units' frames (the vocoder's, for this chunk)."""
        samples = self.samples_upto(int(np.sum(unit_frames)))
        words = self.words_of(committed)
        return chunk_words(words, token_ends, spoken_tokens, spoken_units, unit_frames, samples, wave_len)

    def samples_upto(self, frames: int) -> list[int]:
        """``samples[f]``: the samples ``f`` frames make, for ``f`` up to at least ``frames``."""
        if len(self._samples) <= frames:
            self._samples = upsampled_samples(frames, self.stages.vocoder_stages)
        return self._samples

    def transcript(
        self, enc: torch.Tensor, mask: torch.Tensor, sequences: torch.Tensor, seconds: Sequence[float]
    ) -> list[tuple[WordTiming, ...]]:
        """Each transcript row's words on its segment (ms from its start): one teacher-forced pass
        of the text decoder with eager attention (SDPA returns no weights), its cross-attention
        averaged over layers and heads, aligned by ``attention_words``."""
        m = self.stages.model
        sub = m._compute_sub_sample_lengths_from_attention_mask(mask).to(enc.device)
        config = m.text_decoder.config
        before = config._attn_implementation
        config._attn_implementation = "eager"
        try:
            out = m.text_decoder(
                input_ids=sequences,
                encoder_hidden_states=enc,
                encoder_attention_mask=_new_attention_mask(enc, sub),
                output_attentions=True,
            )
        finally:
            config._attn_implementation = before
        attention = torch.stack(list(out.cross_attentions)).float().mean(dim=(0, 2)).cpu().numpy()  # rows, tgt, src
        words = []
        for row, seq in enumerate(sequences.tolist()):
            ids = self.text_ids(seq)
            frames = int(sub[row])
            # the query at position p predicts token p + 1: text token i (input 2 + i) is row 1 + i
            weights = attention[row, 1 : 1 + len(ids), :frames]
            span_ms = round(seconds[row] * 1000)
            words.append(attention_words(self.words_of(ids), weights, span_ms / max(1, frames), span_ms))
        return words

    def _chars(self, token: int) -> int:
        """Characters t2u gives a token: ``SeamlessM4Tv2Model._get_char_input_ids``'s rule."""
        return 1 if token == 1 else len(str(self._id_to_text.get(str(token))))
