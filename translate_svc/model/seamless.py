"""SeamlessM4T v2's stages through ``transformers``: the only module that runs the model.

``SeamlessStages`` loads the model and its processor and offers each stage on a batch of rows:
features (the model's own processor, padded into one batch), the speech encoder, the text encoder
(for text in), greedy text decoding of rows that each start with their own language token and
read their input's encoder output (so mixed-language batches are correct and stay full; with term
biases, ``decode_rows``), text-to-unit, the vocoder (masked and batched on CUDA, one call per row
on CPU: ``batch_vocoder``, model/vocoder.py) and spoken-language identification. It knows no kind
of work: the runner (model/runner.py) composes the stages for segments and texts, and the
simultaneous steps (model/simultaneous.py) for open speech.

The text and speech stages follow ``SeamlessM4Tv2Model.generate`` step for step (same trimming of
the language and EOS tokens, same unit offset), so results equal ``generate`` on each segment
alone; the parity tests prove it. Two upstream padding leaks are closed with hooks so batching
changes nothing: the speech encoder's length adaptor (``SeamlessStages._zero_past_own_frames``)
and the vocoder (``model/vocoder.py``).

Thread safety: not thread-safe, except ``extract_features``. Exactly one thread (the engine's
model thread) runs the stages.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import (
    AutoProcessor,
    GenerationMixin,
    LogitsProcessor,
    LogitsProcessorList,
    SeamlessM4Tv2Model,
    StoppingCriteria,
    StoppingCriteriaList,
)
from transformers.modeling_outputs import BaseModelOutput

from translate_svc.engine.runner import (
    Features,
    LanguageIdentifier,
    ModelInput,
)
from translate_svc.model.forced import ForcedLengths, ForceTextLength, UnitDurations
from translate_svc.model.languages import LanguageCatalog
from translate_svc.model.loading import describe_model, validate_model_dir
from translate_svc.model.shapes import bucket_length
from translate_svc.model.terms import (
    Bias,
    Glossary,
    GlossaryForce,
    RowSequenceBias,
    TermTokens,
    needs_source,
    row_glossary,
    row_terms,
)
from translate_svc.model.vocoder import MaskedVocoder
from translate_svc.types import MODEL_SAMPLE_RATE, ModelCard, ModelInfo

logger = logging.getLogger(__name__)


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


class SeamlessStages:
    """Owns the loaded model, processor and language maps, and runs its stages. See the module
    docstring."""

    def __init__(
        self,
        model_dir: str | Path,
        device: str = "auto",
        dtype: str = "auto",
        *,
        forced: ForcedLengths | None = None,
        text_cap: TextCap | None = None,
        cpu_threads: int | None = None,
        batch_vocoder: bool | None = None,
        pad_shapes: bool | None = None,
        identifier: LanguageIdentifier | None = None,
        exact_rows: bool | None = None,
        pad_frames: bool = False,
    ) -> None:
        path = Path(model_dir)
        validate_model_dir(path)
        self.info: ModelInfo = describe_model(path)
        self.device = pick_device(device)
        if cpu_threads is None and self.device.type == "cpu":
            cpu_threads = max(1, (os.cpu_count() or 2) - 1)
        if cpu_threads is not None:
            torch.set_num_threads(cpu_threads)  # process-wide; set once, at load, by the one model
        self.dtype = pick_dtype(dtype, self.device)
        #: each input, and each row's text-to-unit, run alone (model/runner.py, model/simultaneous.py):
        #: in bfloat16 a padded batch rounds differently from the row alone and a greedy token or a
        #: unit can flip, so on CPU (where batching buys little) reduced precision runs row by row
        self.exact_rows = (
            (self.device.type == "cpu" and self.dtype != torch.float32) if exact_rows is None else exact_rows
        )
        self.processor = AutoProcessor.from_pretrained(path, local_files_only=True)
        model = SeamlessM4Tv2Model.from_pretrained(
            path, local_files_only=True, use_safetensors=True, dtype=self.dtype, trust_remote_code=False
        )
        self.model: SeamlessM4Tv2Model = model.to(self.device).eval()  # type: ignore[arg-type]
        self.model.set_modality("speech")
        #: per row of the batch being encoded, its own frame count (set by ``features``, cleared
        #: by ``encode``); read by the adaptor hooks. Model thread only, like everything here.
        self._own_frames: torch.Tensor | None = None
        if self.model.speech_encoder.adapter is not None:
            for depth, layer in enumerate(self.model.speech_encoder.adapter.layers):
                for conv in (layer.residual_conv, layer.self_attn_conv):
                    conv.register_forward_pre_hook(lambda mod, args, d=depth: self._zero_past_own_frames(d, args))
        gen = self.model.generation_config
        if not getattr(gen, "text_decoder_lang_to_code_id", None):
            raise ValueError(f"{path}/generation_config.json has no text_decoder_lang_to_code_id map")
        #: the text decoder's language token per language (a row's second token)
        self.text_lang_ids: dict[str, int] = dict(gen.text_decoder_lang_to_code_id)
        self._vocoder_lang_ids: dict[str, int] = dict(getattr(gen, "vocoder_lang_code_to_id", None) or {})
        self.catalog = LanguageCatalog.from_generation_config(
            gen.text_decoder_lang_to_code_id,
            getattr(gen, "t2u_lang_code_to_id", None),
            getattr(gen, "vocoder_lang_code_to_id", None),
        )
        self.num_speakers = int(self.model.config.vocoder_num_spkrs)
        self._terms = TermTokens(self.processor.tokenizer)
        #: spoken-language identification (``ModelInput.detect``); None: not installed
        self.identifier = identifier
        languages = tuple(self.catalog.languages())
        if identifier is not None:
            picks = identifier.languages
            languages = tuple(
                dataclasses.replace(lang, detectable=lang.text_output and lang.code in picks) for lang in languages
            )
        self._card = ModelCard(
            self.info, languages, self.num_speakers, identifier.info if identifier is not None else None
        )
        #: what "any language" means for detection: those it can pick that the decoder can write
        self._detectable = tuple(sorted(self._card.detectable_codes))
        self.forced = forced
        #: per-row bound on text tokens (runaway decodes); None: the generation config's alone
        self.text_cap = text_cap
        self._gen_max_new = getattr(self.model.generation_config, "max_new_tokens", None)
        self._durations = UnitDurations()
        if forced is not None:
            logger.warning("forced decode lengths %s: benchmark mode, the output is not a translation", forced)
            t2u_decoder = self.model.t2u_model.model.decoder
            t2u_decoder.duration_predictor.register_forward_hook(self._durations.t2u_hook, with_kwargs=True)
            self.model.vocoder.dur_predictor.register_forward_hook(UnitDurations.vocoder_hook)
        # after the forced-duration hook (it reads that hook's output); batched by default on CUDA only
        batched = self.device.type == "cuda" and not self.exact_rows if batch_vocoder is None else batch_vocoder
        #: pad lengths to buckets so shapes repeat (model/shapes.py): CPU only, where each new
        #: convolution shape costs a oneDNN kernel build; not with exact rows (bfloat16 on CPU): on a
        #: CPU with native bfloat16 (avx512_bf16) a convolution of a padded shape rounds samples
        #: differently from generate's (seen: 0.05 apart), and exact rows are there to equal generate
        pad = self.device.type == "cpu" and not self.exact_rows if pad_shapes is None else pad_shapes
        self.bucket = bucket_length if pad else None
        #: pad a batch's input frames up to a length bucket too (``features``), so the encoder's and
        #: the decoder's cross-attention shapes repeat: an experiment for CUDA's per-shape cost
        #: (benchmarks/tools/profile_stages.py ``--pad-frames``), off by default; masked like any
        #: row a longer one pads (parity: tests/model/test_runner.py)
        self.frame_bucket = bucket_length if pad_frames else None
        self._vocoder = MaskedVocoder(
            self.model.vocoder, batched=batched, pad_id=int(self.model.config.t2u_pad_token_id), bucket=self.bucket
        )
        self.sample_rate = MODEL_SAMPLE_RATE
        logger.info(
            "loaded %s (%s) on %s as %s: %d text languages, %d speech languages",
            self.info.name, self.info.revision, self.device, self.dtype,
            len(self.catalog.text_codes), len(self.catalog.speech_codes),
        )  # fmt: skip

    @property
    def card(self) -> ModelCard:
        return self._card

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
        list of clips (it normalises each clip on its own, then pads; with ``frame_bucket``, further,
        up to the longest row's bucket).

        Also records each row's own frame count (its ``extract_features`` length, which includes
        the processor's own pad frame of an odd-length clip) for the next ``encode``."""
        per = [i.features if i.features is not None else self.extract_features(i.audio) for i in inputs]
        own = [f.values.shape[0] for f in per]
        frames = max(own) if self.frame_bucket is None else self.frame_bucket(max(own))
        values = np.zeros((len(per), frames, per[0].values.shape[1]), np.float32)
        mask = np.zeros((len(per), frames), np.int64)
        for row, f in enumerate(per):
            values[row, : len(f.values)] = f.values
            mask[row, : len(f.mask)] = f.mask
        self._own_frames = torch.tensor(own, device=self.device)
        return (
            torch.from_numpy(values).to(self.device, self.dtype),
            torch.from_numpy(mask).to(self.device),
        )

    def encode(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The speech encoder on a batch from ``features``; clears the recorded frame counts after,
        so a later direct call on ``self.model`` runs unhooked (as transformers does)."""
        try:
            hidden: torch.Tensor = self.model.speech_encoder(
                input_features=features, attention_mask=mask
            ).last_hidden_state
            return hidden
        finally:
            self._own_frames = None

    def _zero_past_own_frames(self, depth: int, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...] | None:
        """Forward pre-hook on both strided convolutions of adaptor layer ``depth``: zero each
        row's frames past its own length, so every row sees exactly the padding it sees alone.

        The convolutions (kernel 8, stride 8, padding 4) read up to 4 frames past a row's end.
        Alone, those are the convolution's zero padding; in a padded batch they are the (layer
        normed) encoder outputs at frames added by the batch, which changed the row's last adaptor
        frame and, through attention, all of its output. The boundary is the row's *own* length,
        not its mask: the processor pads an odd-length clip by one frame and masks it, yet alone
        the convolution reads the encoder's non-zero output there, so that frame must stay. The
        hook sits on the convolutions, after the layer norms, because there a zeroed frame equals
        the convolution's zero padding; before them it would become the norms' bias (zero in the
        test checkpoint, not in general). A no-op when no row is padded by the batch, and outside
        ``encode``. Model thread only.
        """
        own = self._own_frames
        if own is None:
            return None
        x = args[0]  # (batch, channels, frames)
        if own.shape[0] != x.shape[0]:
            raise RuntimeError(f"{own.shape[0]} recorded frame counts for a batch of {x.shape[0]}")
        kernel, stride = self.model.config.adaptor_kernel_size, self.model.config.adaptor_stride
        for _ in range(depth):  # the row's own length after each earlier adaptor layer (conv length)
            own = (own + 2 * (stride // 2) - kernel) // stride + 1
        if bool((own >= x.shape[-1]).all()):
            return None
        past = torch.arange(x.shape[-1], device=x.device) >= own.unsqueeze(1)
        return (x.masked_fill(past.unsqueeze(1), 0.0),)

    def max_new_tokens(self, audio_s: float) -> int:
        """The text-token bound of a row of ``audio_s`` seconds: ``TextCap``'s rule, never above
        the generation config's own ``max_new_tokens``. ``generate(text_max_new_tokens=...)`` with
        this value is what the row is equal to."""
        assert self.text_cap is not None
        cap = self.text_cap.tokens(audio_s)
        return cap if self._gen_max_new is None else min(cap, int(self._gen_max_new))

    def decode_text(
        self,
        enc: torch.Tensor,
        mask: torch.Tensor,
        langs: Sequence[str],
        audio_s: Sequence[float],
        biases: Sequence[Bias] = (),
        processors: Sequence[LogitsProcessor] = (),
        glossaries: Sequence[Glossary] = (),
    ) -> torch.Tensor:
        """Greedy text decoding, one row per language; ``enc``/``mask`` already expanded to rows.
        ``biases``: each row's term biases, ``glossaries`` its glossary translations
        (model/terms.py); none: the plain decode. ``processors``: applied after all others (a
        forced prefix, model/simultaneous.py)."""
        lang_ids = torch.tensor([[self.text_lang_ids[lang]] for lang in langs], device=self.device)
        extra: dict[str, object] = {}
        if (any(biases) or any(glossaries)) and self.forced is None:
            terms: list[LogitsProcessor] = [RowSequenceBias(biases, self._terms)] if any(biases) else []
            if any(glossaries):
                terms.append(GlossaryForce(glossaries, self._terms))
            extra["logits_processor"] = LogitsProcessorList(terms)
        if self.forced is not None:
            lengths = [self.forced.text_tokens(s) for s in audio_s]
            eos = int(self.model.generation_config.eos_token_id)
            extra = {"logits_processor": LogitsProcessorList([ForceTextLength(lengths, eos)])}
            extra["max_new_tokens"] = max(lengths) + 1
        elif self.text_cap is not None:
            caps = [self.max_new_tokens(s) for s in audio_s]
            extra.update(stopping_criteria=StoppingCriteriaList([RowTokenCap(caps)]), max_new_tokens=max(caps))
        if processors:
            prior = extra.get("logits_processor")
            extra["logits_processor"] = LogitsProcessorList(
                [*(prior if isinstance(prior, LogitsProcessorList) else ()), *processors]
            )
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
        *,
        text_input: bool = False,
    ) -> list[np.ndarray]:
        """Units and waveforms for text rows, exactly as ``SeamlessM4Tv2Model.generate`` does it."""
        units, unit_lens = self.units(enc, mask, sequences, audio_s, text_input=text_input)
        return self.vocode(units, unit_lens, langs, speakers)

    def units(
        self,
        enc: torch.Tensor,
        mask: torch.Tensor,
        sequences: torch.Tensor,
        audio_s: Sequence[float] = (),
        *,
        text_input: bool = False,
    ) -> tuple[torch.Tensor, list[int]]:
        """Text-to-unit for text rows (``sequences`` as ``generate`` returns them: start, language,
        text, then a last token that is not spoken, then padding): vocoder unit ids, padded with
        ``t2u_pad_token_id``, and each row's own unit count. ``text_input``: ``enc`` is the text
        encoder's and ``mask`` its tokens' mask, which the decoder reads as it is (speech: the
        features' mask, sub-sampled to the encoder's frames first), as ``generate`` does."""
        if self.forced is not None:
            self._durations.row_units = torch.tensor([self.forced.units(s) for s in audio_s])
        m, gen, cfg = self.model, self.model.generation_config, self.model.config
        pad = gen.pad_token_id
        if text_input:
            enc_mask = mask
        else:
            sub_lens = m._compute_sub_sample_lengths_from_attention_mask(mask).to(enc.device)
            enc_mask = _new_attention_mask(enc, sub_lens)
        t2u_embeds = m.text_decoder(
            input_ids=sequences[:, :-1], encoder_hidden_states=enc, encoder_attention_mask=enc_mask
        ).last_hidden_state
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
        unit_lens: list[int] = t2u_out[1].bool().sum(1).tolist()
        return units, unit_lens

    @property
    def vocoder_frames(self) -> list[np.ndarray]:
        """The last ``vocode`` call's frames per unit, per row (word timings, model/aligner.py)."""
        return self._vocoder.last_frames

    @property
    def vocoder_stages(self) -> tuple[tuple[int, int, int], ...]:
        """HiFi-GAN's (stride, padding, kernel) per upsampling stage."""
        return self._vocoder.stages

    def vocode(
        self, units: torch.Tensor, unit_lens: Sequence[int], langs: Sequence[str], speakers: Sequence[int]
    ) -> list[np.ndarray]:
        """One waveform per row of vocoder units (``units``' layout), in the row's language and voice."""
        return self._vocoder(units, unit_lens, [self._vocoder_lang_ids[lang] for lang in langs], speakers)

    # -- text in ----------------------------------------------------------------------------

    def tokenize(self, texts: Sequence[ModelInput]) -> tuple[torch.Tensor, torch.Tensor]:
        """Text inputs' token ids (each with its own language as ``src_lang``, as the processor
        writes them alone), right-padded into one batch, and their mask."""
        tokenizer = self.processor.tokenizer
        per = []
        for item in texts:
            assert item.text is not None
            ids = tokenizer(item.text.text, src_lang=item.text.language)["input_ids"]
            per.append([int(i) for i in ids])
        width = max(len(ids) for ids in per)
        pad = int(tokenizer.pad_token_id)
        ids = torch.full((len(per), width), pad, dtype=torch.long)
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

    def encode_text(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The text encoder on tokens from ``tokenize`` (inside ``text_modality``)."""
        hidden: torch.Tensor = self.model.text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        return hidden

    # -- text rows with terms; identification ----------------------------------------------

    def decode_rows(
        self,
        enc: torch.Tensor,
        mask: torch.Tensor,
        rows: Sequence[tuple[int, str]],
        inputs: Sequence[ModelInput],
        spoken: Sequence[str | None],
        seconds: Sequence[float],
        processors: Callable[[Sequence[int]], Sequence[LogitsProcessor]] | None = None,
        said: dict[int, str] | None = None,
    ) -> torch.Tensor:
        """The text rows (``enc``/``mask`` expanded to them). Without terms: one decode. With
        KEEP terms or glossary entries, the transcript rows of those segments are decoded first,
        so each translation row knows which kept or glossary phrases were said (model/terms.py);
        then the other rows. ``said``:
        what inputs said without a transcript row (a text input's own text), by input index.
        ``processors``: for the indices of the rows in one decode, logits processors applied
        after all others (a simultaneous step's forced prefixes)."""
        langs = [lang for _, lang in rows]
        audio_s = [seconds[k] for k, _ in rows]
        if not any(item.terms for item in inputs):
            if processors is None:
                return self.decode_text(enc, mask, langs, audio_s)
            return self.decode_text(enc, mask, langs, audio_s, processors=processors(range(len(rows))))
        extra = processors or (lambda subset: ())
        first = [
            r for r, (k, lang) in enumerate(rows)
            if lang == spoken[k] and needs_source(inputs[k].terms) and set(inputs[k].targets) - {lang}
        ]  # fmt: skip
        said = dict(said or {})  # segment -> its transcript, where decoded first (or a text input's text)

        def decode(subset: list[int]) -> torch.Tensor:
            index = torch.tensor(subset, device=self.device)
            biases = [
                self._terms.bias(
                    row_terms(inputs[rows[r][0]].terms, transcript_row=langs[r] == spoken[rows[r][0]],
                              transcript=said.get(rows[r][0]))
                )
                for r in subset
            ]  # fmt: skip
            glossaries = [
                self._terms.glossary(
                    row_glossary(inputs[rows[r][0]].terms, language=langs[r], source=said.get(rows[r][0]))
                    if langs[r] != spoken[rows[r][0]] else ()
                )
                for r in subset
            ]  # fmt: skip
            return self.decode_text(
                enc.index_select(0, index),
                mask.index_select(0, index),
                [langs[r] for r in subset],
                [audio_s[r] for r in subset],
                biases,
                extra(subset),
                glossaries,
            )

        parts: list[tuple[list[int], torch.Tensor]] = []
        if first:
            done = decode(first)
            for r, text in zip(first, self.processor.batch_decode(done, skip_special_tokens=True), strict=True):
                said[rows[r][0]] = text
            parts.append((first, done))
        rest = [r for r in range(len(rows)) if r not in set(first)]
        if rest:
            parts.append((rest, decode(rest)))
        pad = int(self.model.generation_config.pad_token_id)
        width = max(seqs.shape[1] for _, seqs in parts)
        out = torch.full((len(rows), width), pad, dtype=parts[0][1].dtype, device=parts[0][1].device)
        for subset, seqs in parts:
            out[torch.tensor(subset, device=out.device), : seqs.shape[1]] = seqs
        return out

    def identify(self, inputs: Sequence[ModelInput]) -> tuple[dict[int, dict[str, float]], float]:
        """The spoken language of the segments that ask (``detect``), in one identifier batch: each
        one's scores by segment index, and the milliseconds it took."""
        asking = [k for k, item in enumerate(inputs) if item.detect is not None]
        if not asking:
            return {}, 0.0
        if self.identifier is None:
            raise RuntimeError("language detection asked of a runner without an identifier")
        t0 = time.perf_counter()
        scores = self.identifier.identify(
            [inputs[k].audio for k in asking], [inputs[k].detect or self._detectable for k in asking]
        )
        return dict(zip(asking, scores, strict=True)), (time.perf_counter() - t0) * 1000


def _new_attention_mask(hidden: torch.Tensor, seq_lens: torch.Tensor) -> torch.Tensor:
    from transformers.models.seamless_m4t_v2.modeling_seamless_m4t_v2 import _compute_new_attention_mask

    mask: torch.Tensor = _compute_new_attention_mask(hidden_states=hidden, seq_lens=seq_lens)
    return mask


@dataclass(frozen=True)
class TextCap:
    """Runaway decodes: a row may emit at most ``per_s`` text tokens per second of its audio plus
    ``base``. Real speech stays far below (about 3-5 SentencePiece tokens per second); a row that
    never emits EOS stops there instead of holding its whole batch to the model's global limit."""

    per_s: float = 16.0
    base: int = 16

    def tokens(self, audio_s: float) -> int:
        return math.ceil(self.per_s * audio_s) + self.base


class RowTokenCap(StoppingCriteria):
    """Stop each row after its own number of new tokens (``generate``'s per-row stopping: a stopped
    row is padded from then on), so a row equals ``generate(max_new_tokens=its cap)`` alone."""

    def __init__(self, caps: Sequence[int]) -> None:
        self.caps = torch.tensor(list(caps))
        self._prompt: int | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: object) -> torch.BoolTensor:
        if self._prompt is None:  # first call: the prompt plus one new token
            self._prompt = input_ids.shape[1] - 1
        new = input_ids.shape[1] - self._prompt
        done: torch.BoolTensor = self.caps.to(input_ids.device) <= new  # type: ignore[assignment]
        return done
