"""SeamlessM4T v2 inference through ``transformers``: the only module that runs the model.

``SeamlessRunner.run`` takes a batch of segments and does, in one pass per stage:

1. features for every segment (the model's own processor), padded into one batch;
2. the speech encoder **once** per segment;
3. greedy text decoding of one row per (segment, language): every target language plus the
   source language for the transcript, each row starting with its own language token, all rows
   reusing their segment's encoder output (so mixed-language batches are correct and stay full);
4. text-to-unit for the rows that want speech, batched;
5. the vocoder, each row with its own language and speaker: masked and batched on CUDA, one call
   per row on CPU (measured faster there; ``batch_vocoder`` overrides, see model/vocoder.py).

Stages 3-5 follow ``SeamlessM4Tv2Model.generate`` step for step (same trimming of the language
and EOS tokens, same unit offset), so results equal ``generate`` on each segment alone; the
parity tests prove it. Two upstream padding leaks are closed with hooks so batching changes
nothing: the speech encoder's length adaptor (``_zero_padded_frames``) and the vocoder
(``model/vocoder.py``).

Thread safety: not thread-safe. Exactly one thread (the engine's model thread) calls ``run``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import AutoProcessor, GenerationMixin, LogitsProcessorList, SeamlessM4Tv2Model
from transformers.modeling_outputs import BaseModelOutput

from translate_svc.model.forced import ForcedLengths, ForceTextLength, UnitDurations
from translate_svc.model.languages import LanguageCatalog
from translate_svc.model.loading import describe_model, validate_model_dir
from translate_svc.model.shapes import bucket_length
from translate_svc.model.vocoder import MaskedVocoder
from translate_svc.types import MODEL_SAMPLE_RATE, ModelInfo

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Features:
    """One segment's model input features (``SeamlessRunner.extract_features``), unpadded."""

    values: np.ndarray  # (frames, feature_dim) float32
    mask: np.ndarray  # (frames,) int


@dataclass(frozen=True, eq=False)
class ModelInput:
    """One segment: 16 kHz mono float32 samples and what to produce from them."""

    audio: np.ndarray
    targets: tuple[str, ...]
    transcript_language: str | None = None
    speech: bool = True
    speaker_id: int = 0
    #: computed ahead (off the model thread) when given; else computed in ``run``
    features: Features | None = None


@dataclass(frozen=True, eq=False)
class ModelOutput:
    transcript: str | None
    texts: dict[str, str]
    #: language -> float32 waveform at MODEL_SAMPLE_RATE (absent when speech was not asked for)
    waveforms: dict[str, np.ndarray] = field(default_factory=dict)


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]


class SeamlessRunner:
    """Owns the loaded model, processor and language maps. See the module docstring."""

    def __init__(
        self,
        model_dir: str | Path,
        device: str = "auto",
        dtype: str = "auto",
        *,
        forced: ForcedLengths | None = None,
        cpu_threads: int | None = None,
        batch_vocoder: bool | None = None,
        pad_shapes: bool | None = None,
    ) -> None:
        path = Path(model_dir)
        validate_model_dir(path)
        self.info: ModelInfo = describe_model(path)
        self.device = pick_device(device)
        if cpu_threads is None and self.device.type == "cpu":
            cpu_threads = max(1, (os.cpu_count() or 2) - 1)
        if cpu_threads is not None:
            torch.set_num_threads(cpu_threads)  # process-wide; set once, at load, by the one runner
        self.dtype = pick_dtype(dtype, self.device)
        self.processor = AutoProcessor.from_pretrained(path, local_files_only=True)
        model = SeamlessM4Tv2Model.from_pretrained(
            path, local_files_only=True, use_safetensors=True, dtype=self.dtype, trust_remote_code=False
        )
        self.model: SeamlessM4Tv2Model = model.to(self.device).eval()  # type: ignore[arg-type]
        self.model.set_modality("speech")
        if self.model.speech_encoder.adapter is not None:
            self.model.speech_encoder.adapter.register_forward_pre_hook(_zero_padded_frames, with_kwargs=True)
        gen = self.model.generation_config
        if not getattr(gen, "text_decoder_lang_to_code_id", None):
            raise ValueError(f"{path}/generation_config.json has no text_decoder_lang_to_code_id map")
        self._text_lang_ids: dict[str, int] = dict(gen.text_decoder_lang_to_code_id)
        self._vocoder_lang_ids: dict[str, int] = dict(getattr(gen, "vocoder_lang_code_to_id", None) or {})
        self.catalog = LanguageCatalog.from_generation_config(
            gen.text_decoder_lang_to_code_id,
            getattr(gen, "t2u_lang_code_to_id", None),
            getattr(gen, "vocoder_lang_code_to_id", None),
        )
        self.num_speakers = int(self.model.config.vocoder_num_spkrs)
        self.forced = forced
        self._durations = UnitDurations()
        if forced is not None:
            logger.warning("forced decode lengths %s: benchmark mode, the output is not a translation", forced)
            t2u_decoder = self.model.t2u_model.model.decoder
            t2u_decoder.duration_predictor.register_forward_hook(self._durations.t2u_hook, with_kwargs=True)
            self.model.vocoder.dur_predictor.register_forward_hook(UnitDurations.vocoder_hook)
        # after the forced-duration hook (it reads that hook's output); batched by default on CUDA only
        batched = self.device.type == "cuda" if batch_vocoder is None else batch_vocoder
        #: pad lengths to buckets so shapes repeat (model/shapes.py): CPU only, where each new
        #: convolution shape costs a oneDNN kernel build
        self.bucket = bucket_length if (self.device.type == "cpu" if pad_shapes is None else pad_shapes) else None
        self._vocoder = MaskedVocoder(
            self.model.vocoder, batched=batched, pad_id=int(self.model.config.t2u_pad_token_id), bucket=self.bucket
        )
        self.sample_rate = MODEL_SAMPLE_RATE
        logger.info(
            "loaded %s (%s) on %s as %s: %d text languages, %d speech languages",
            self.info.name, self.info.revision, self.device, self.dtype,
            len(self.catalog.text_codes), len(self.catalog.speech_codes),
        )  # fmt: skip

    # -- stages ---------------------------------------------------------------------------

    def extract_features(self, audio: np.ndarray) -> Features:
        """The processor's features for one segment. Thread-safe (numpy only, no model state):
        the engine runs it on a CPU thread so it overlaps with the model's work."""
        f = self.processor.feature_extractor(
            audio, sampling_rate=MODEL_SAMPLE_RATE, return_attention_mask=True, return_tensors="np"
        )
        return Features(values=f["input_features"][0], mask=f["attention_mask"][0])

    def features(self, inputs: Sequence[ModelInput]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-segment features padded with zeros and a zero mask: what the processor does for a
        list of clips (it normalises each clip on its own, then pads)."""
        per = [i.features if i.features is not None else self.extract_features(i.audio) for i in inputs]
        frames = max(f.values.shape[0] for f in per)
        values = np.zeros((len(per), frames, per[0].values.shape[1]), np.float32)
        mask = np.zeros((len(per), frames), np.int64)
        for row, f in enumerate(per):
            values[row, : len(f.values)] = f.values
            mask[row, : len(f.mask)] = f.mask
        return (
            torch.from_numpy(values).to(self.device, self.dtype),
            torch.from_numpy(mask).to(self.device),
        )

    def encode(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.model.speech_encoder(input_features=features, attention_mask=mask).last_hidden_state

    def decode_text(
        self, enc: torch.Tensor, mask: torch.Tensor, langs: Sequence[str], audio_s: Sequence[float]
    ) -> torch.Tensor:
        """Greedy text decoding, one row per language; ``enc``/``mask`` already expanded to rows."""
        lang_ids = torch.tensor([[self._text_lang_ids[lang]] for lang in langs], device=self.device)
        extra: dict[str, object] = {}
        if self.forced is not None:
            lengths = [self.forced.text_tokens(s) for s in audio_s]
            eos = int(self.model.generation_config.eos_token_id)
            extra = {"logits_processor": LogitsProcessorList([ForceTextLength(lengths, eos)])}
            extra["max_new_tokens"] = max(lengths) + 1
        out = GenerationMixin.generate(
            self.model,  # type: ignore[arg-type]
            encoder_outputs=BaseModelOutput(last_hidden_state=enc),
            attention_mask=mask,
            decoder_input_ids=lang_ids,
            return_dict_in_generate=True,
            **extra,  # type: ignore[arg-type]
        )
        return out.sequences  # type: ignore[union-attr]

    def speech(
        self,
        enc: torch.Tensor,
        mask: torch.Tensor,
        sequences: torch.Tensor,
        langs: Sequence[str],
        speakers: Sequence[int],
        audio_s: Sequence[float] = (),
    ) -> list[np.ndarray]:
        """Units and waveforms for text rows, exactly as ``SeamlessM4Tv2Model.generate`` does it."""
        if self.forced is not None:
            self._durations.row_units = torch.tensor([self.forced.units(s) for s in audio_s])
        m, gen, cfg = self.model, self.model.generation_config, self.model.config
        pad = gen.pad_token_id
        sub_lens = m._compute_sub_sample_lengths_from_attention_mask(mask).to(enc.device)
        enc_mask = _new_attention_mask(enc, sub_lens)
        t2u_embeds = m.text_decoder(
            input_ids=sequences[:, :-1], encoder_hidden_states=enc, encoder_attention_mask=enc_mask
        ).last_hidden_state
        # Alone, a row's sequence ends at its EOS (or its last token) and generate drops that last
        # token; in a batch a shorter row's EOS sits inside ``[:, :-1]``, followed by padding. Count
        # each row's own tokens minus its last, so t2u never attends to a batch-only EOS.
        seq_lens = (sequences != pad).int().sum(1) - 1
        t2u_ids = sequences[:, 2:-1]
        t2u_ids = torch.masked_fill(t2u_ids, t2u_ids == gen.eos_token_id, pad)
        subwords = m._indices_to_subwords(t2u_ids)
        char_count = m._count_character_length_in_subword(t2u_ids, subwords, pad_token_id=pad)
        zero = char_count.new_zeros((char_count.shape[0], 1))
        char_count = torch.cat([zero, char_count, zero], dim=1)
        char_ids = m._get_char_input_ids(t2u_ids, subwords, char_count, pad_token_id=pad)
        t2u_out = m.t2u_model(
            inputs_embeds=t2u_embeds,
            char_input_ids=char_ids,
            char_count_per_id=char_count,
            attention_mask=_new_attention_mask(t2u_embeds, seq_lens),
        )
        units = t2u_out[0].argmax(dim=-1)
        replace = (units == cfg.t2u_eos_token_id) | ~t2u_out[1].bool()
        units = units.masked_fill(replace, cfg.t2u_pad_token_id)
        units = torch.where(units == cfg.t2u_pad_token_id, units, units - cfg.vocoder_offset)
        # Each row's own unit span: what generate would have produced for that row alone.
        unit_lens = t2u_out[1].bool().sum(1).tolist()
        return self._vocoder(units, unit_lens, [self._vocoder_lang_ids[lang] for lang in langs], speakers)

    # -- the batch ------------------------------------------------------------------------

    @torch.inference_mode()
    def run(self, inputs: Sequence[ModelInput]) -> list[ModelOutput]:
        if not inputs:
            return []
        feats, mask = self.features(inputs)
        enc = self.encode(feats, mask)

        rows: list[tuple[int, str]] = []  # (segment index, language) per text row
        for k, item in enumerate(inputs):
            langs = list(dict.fromkeys(item.targets))
            if item.transcript_language and item.transcript_language not in langs:
                langs.append(item.transcript_language)
            rows.extend((k, lang) for lang in langs)
        index = torch.tensor([k for k, _ in rows], device=self.device)
        row_enc, row_mask = enc.index_select(0, index), mask.index_select(0, index)
        seconds = [len(i.audio) / MODEL_SAMPLE_RATE for i in inputs]
        sequences = self.decode_text(row_enc, row_mask, [lang for _, lang in rows], [seconds[k] for k, _ in rows])
        texts = self.processor.batch_decode(sequences, skip_special_tokens=True)

        # Speech for target rows that asked for it and have at least one text token.
        speech_rows = [
            r for r, (k, lang) in enumerate(rows)
            if inputs[k].speech and lang in inputs[k].targets and _has_text(sequences[r], self.model.generation_config)
        ]  # fmt: skip
        waves: dict[int, np.ndarray] = {}
        if speech_rows:
            sel = torch.tensor(speech_rows, device=self.device)
            seqs = _trim_right_padding(sequences.index_select(0, sel), self.model.generation_config.pad_token_id)
            out = self.speech(
                row_enc.index_select(0, sel),
                row_mask.index_select(0, sel),
                seqs,
                [rows[r][1] for r in speech_rows],
                [inputs[rows[r][0]].speaker_id for r in speech_rows],
                [seconds[rows[r][0]] for r in speech_rows],
            )
            waves = dict(zip(speech_rows, out, strict=True))

        outputs = []
        for k, item in enumerate(inputs):
            mine = [(r, lang) for r, (kk, lang) in enumerate(rows) if kk == k]
            outputs.append(
                ModelOutput(
                    transcript=next((texts[r] for r, lang in mine if lang == item.transcript_language), None),
                    texts={lang: texts[r] for r, lang in mine if lang in item.targets},
                    waveforms={
                        lang: waves.get(r, np.zeros(0, np.float32))
                        for r, lang in mine
                        if item.speech and lang in item.targets
                    },
                )
            )
        return outputs


def _zero_padded_frames(module, args, kwargs):  # type: ignore[no-untyped-def]
    """Zero padded frames before the speech encoder's length adaptor.

    The adaptor's strided convolution (kernel 8, stride 8, padding 4) reads up to 4 frames past a
    segment's end. Alone, those are the convolution's zero padding; in a padded batch they would be
    the encoder's (non-zero) outputs at padded frames, which changes the segment's last adaptor
    frame and, through attention, all of its output. Zeroing them makes a padded row compute
    exactly what the segment computes alone. A no-op when nothing is padded.
    """
    hidden = args[0]
    mask = kwargs.get("attention_mask")
    if mask is None or mask.shape[1] != hidden.shape[1] or bool(mask.all()):
        return None
    return (hidden.masked_fill(~mask.bool().unsqueeze(-1), 0.0), *args[1:]), kwargs


def _has_text(seq: torch.Tensor, gen) -> bool:  # type: ignore[no-untyped-def]
    """True if the row has any token after ``[start, lang]`` before EOS/padding."""
    body = seq[2:]
    return bool(body.numel()) and int(body[0]) not in (gen.eos_token_id, gen.pad_token_id)


def _trim_right_padding(seqs: torch.Tensor, pad: int) -> torch.Tensor:
    """Drop trailing all-pad columns, so a sub-batch looks like generate's own output for it."""
    keep = int((seqs != pad).sum(1).max())
    return seqs[:, :keep]


def _new_attention_mask(hidden: torch.Tensor, seq_lens: torch.Tensor) -> torch.Tensor:
    from transformers.models.seamless_m4t_v2.modeling_seamless_m4t_v2 import _compute_new_attention_mask

    return _compute_new_attention_mask(hidden_states=hidden, seq_lens=seq_lens)
