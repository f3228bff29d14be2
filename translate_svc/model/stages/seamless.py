"""SeamlessM4T v2 through ``transformers``: the model loaded, its language maps and card, and its
stages, one file each.

``SeamlessStages`` is the loader and the bundle: it loads the model and its processor, builds the
language maps and the card, and holds the stages, each taking tensors and a plan, never a request:
the encoders (features, the speech encoder with its adaptor fix, the text encoder:
model/stages/encoders.py), the text decoder (model/stages/decoder.py: ``generate`` over a plan's rows,
model_api/rows.py), text-to-unit and the vocoder (speech and model/stages/vocoder.py), and spoken-language
identification. It knows no kind of work: the exact runner (model/runner.py) composes the stages
for segments and texts, and the simultaneous steps (model/simultaneous.py) for open speech;
model/inputs.py turns requests into the stages' arguments.

The stages follow ``SeamlessM4Tv2Model.generate`` step for step (same trimming of the language and
EOS tokens, same unit offset), so the exact runner's results equal ``generate`` on each segment
alone; the parity tests prove it. Text-to-unit (model/stages/text_to_unit.py) and the vocoder (model/stages/vocoder.py)
run through our own forwards: durations and frames are returned, never recorded by hooks.

Thread safety: not thread-safe, except ``extract_features``. Exactly one thread (the engine's
model thread) runs the stages.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoProcessor, SeamlessM4Tv2Model

from translate_svc.model.capture import GraphedStage, upload
from translate_svc.model.stages.decoder import TextCap, TextDecoder
from translate_svc.model.stages.device import cuda_runtime, pick_device, pick_dtype, size_cpu_kernel_caches
from translate_svc.model.stages.encoders import SpeechEncoder, TextEncoder
from translate_svc.model.stages.forced import ForcedLengths
from translate_svc.model.stages.languages import LanguageCatalog
from translate_svc.model.stages.loading import describe_model, validate_model_dir
from translate_svc.model.stages.shapes import (
    CHARS_PER_S,
    FRAMES_PER_S,
    UNITS_PER_S,
    ShapeLog,
    bucket_length,
    bucket_rows,
    frame_bucket,
    ladder,
)
from translate_svc.model.stages.speech_mark import SpeechMarker
from translate_svc.model.stages.terms import TermTokens
from translate_svc.model.stages.text_to_unit import Speech, TextToUnit, Units
from translate_svc.model.stages.vocoder import MaskedVocoder, Vocoded
from translate_svc.model_api.requests import Features, SpeechFit
from translate_svc.model_api.runner import LanguageIdentifier
from translate_svc.observability import metrics
from translate_svc.types import MODEL_SAMPLE_RATE, ModelCard, ModelInfo

logger = logging.getLogger(__name__)


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
        pad_frames: bool | None = None,
        pad_rows: bool = False,
        device_features: bool | None = None,
        marker: SpeechMarker | None = None,
    ) -> None:
        size_cpu_kernel_caches()  # before the first convolution: the warmed kernels must stay cached
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
        self._load(path)
        #: marks every waveform the vocoder makes (model/stages/speech_mark.py); None: unmarked
        self.marker = marker
        self._describe(identifier)
        self.forced = forced
        #: per-row bound on text tokens (runaway decodes); None: the generation config's alone
        self.text_cap = text_cap
        if forced is not None:
            logger.warning("forced decode lengths %s: benchmark mode, the output is not a translation", forced)
        self._build(forced, text_cap, batch_vocoder, pad_shapes, pad_frames, pad_rows, device_features)
        self.sample_rate = MODEL_SAMPLE_RATE
        if self.device.type == "cuda":
            logger.info("CUDA runtime: %s", cuda_runtime())
        logger.info(
            "loaded %s (%s) on %s as %s: %d text languages, %d speech languages",
            self.info.name, self.info.revision, self.device, self.dtype,
            len(self.catalog.text_codes), len(self.catalog.speech_codes),
        )  # fmt: skip

    def _load(self, path: Path) -> None:
        """The processor and the model from ``path`` on the device, and the language maps of its
        generation config."""
        self.processor = AutoProcessor.from_pretrained(path, local_files_only=True)
        model = SeamlessM4Tv2Model.from_pretrained(
            path, local_files_only=True, use_safetensors=True, dtype=self.dtype, trust_remote_code=False
        )
        self.model: SeamlessM4Tv2Model = model.to(self.device).eval()  # type: ignore[arg-type]
        self.model.set_modality("speech")
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
        self.terms = TermTokens(self.processor.tokenizer)

    def _describe(self, identifier: LanguageIdentifier | None) -> None:
        """The card: the catalog's languages, each detectable where ``identifier`` can pick it."""
        #: spoken-language identification (``ModelInput.detect``); None: not installed
        self.identifier = identifier
        languages = tuple(self.catalog.languages())
        if identifier is not None:
            picks = identifier.languages
            languages = tuple(
                dataclasses.replace(lang, detectable=lang.text_output and lang.code in picks) for lang in languages
            )
        self._card = ModelCard(
            self.info,
            languages,
            self.num_speakers,
            identifier.info if identifier is not None else None,
            speech_watermark=self.marker.name if self.marker is not None else "",
        )
        #: what "any language" means for detection: those it can pick that the decoder can write
        self._detectable = tuple(sorted(self._card.detectable_codes))

    def _build(
        self,
        forced: ForcedLengths | None,
        text_cap: TextCap | None,
        batch_vocoder: bool | None,
        pad_shapes: bool | None,
        pad_frames: bool | None,
        pad_rows: bool,
        device_features: bool | None,
    ) -> None:
        """The stages over the loaded model (``__init__``'s arguments of the same names), with
        the shape buckets they share."""
        # the vocoder is batched by default on CUDA only
        batched = self.device.type == "cuda" and not self.exact_rows if batch_vocoder is None else batch_vocoder
        #: pad lengths to buckets so shapes repeat (model/stages/shapes.py; ``model.buckets``): on CUDA a
        #: new shape costs a kernel selection and a cuDNN plan, on CPU a oneDNN kernel build; not
        #: with exact rows (bfloat16 on CPU): on a CPU with native bfloat16 (avx512_bf16) a
        #: convolution of a padded shape rounds samples differently from generate's (seen: 0.05
        #: apart), and exact rows are there to equal generate
        pad = not self.exact_rows if pad_shapes is None else pad_shapes
        #: the shapes each stage has met, and those first met after the warm-up (``warmed``)
        self.shapes = ShapeLog(metrics.cold_shape)
        self.bucket = bucket_length if pad else None
        #: text-to-unit (model/stages/text_to_unit.py): durations and unit counts returned, never recorded
        self.t2u = TextToUnit(self.model, bucket=self.bucket, shapes=self.shapes, forced=forced is not None)
        #: pad a batch's input frames up to a length bucket too (``features``; a finer series, at
        #: most 12.5 % padding: model/stages/shapes.py ``frame_bucket``), so the encoder's and the decoder's
        #: cross-attention shapes repeat; masked like any row a longer one pads (parity:
        #: tests/model/test_runner.py). None: with the other buckets (``pad_shapes``)
        self.frame_bucket = frame_bucket if (pad if pad_frames is None else pad_frames) else None
        #: the encoder's rows padded up to a power of two too (the fast runner's static path:
        #: model/build.py), so a batch's shapes are a (rows, frames) bucket pair
        self.speech_encoder = SpeechEncoder(
            self.model,
            self.processor,
            self.device,
            self.dtype,
            self.frame_bucket,
            shapes=self.shapes,
            pad_rows=pad_rows and self.frame_bucket is not None,
            # segments that come without features get them inside the encoder's call, on its
            # device (model/stages/encoders.py); None: on CUDA
            device_features=self.device.type == "cuda" if device_features is None else device_features,
        )
        self.text_encoder = TextEncoder(self.model, self.processor.tokenizer, self.device)
        self.decoder = TextDecoder(
            self.model,
            self.text_lang_ids,
            self.terms,
            self.processor,
            forced=forced,
            text_cap=text_cap,
            shapes=self.shapes,
        )
        self._vocoder = MaskedVocoder(
            self.model.vocoder,
            batched=batched,
            # typed optional in transformers; a SeamlessM4T v2 config always sets it
            pad_id=int(self.model.config.t2u_pad_token_id),  # type: ignore[arg-type]
            bucket=self.bucket,
            shapes=self.shapes,
            unit_frames=None if forced is None else forced.frames_per_unit,
        )

    @property
    def card(self) -> ModelCard:
        return self._card

    def extract_features(self, audio: np.ndarray) -> Features:
        """Thread-safe (``SpeechEncoder.extract_features``)."""
        return self.speech_encoder.extract_features(audio)

    @property
    def detectable(self) -> tuple[str, ...]:
        """What "any language" means for detection: those it can pick that the decoder can write."""
        return self._detectable

    # -- speech -----------------------------------------------------------------------------

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
        text_states: torch.Tensor | None = None,
        tokens: Sequence[Sequence[int]] | None = None,
        speeds: Sequence[float] | None = None,
        fits: Sequence[SpeechFit | None] | None = None,
        again: Sequence[tuple[int, float]] = (),
    ) -> Speech:
        """Units and waveforms for text rows, exactly as ``SeamlessM4Tv2Model.generate`` does it,
        with t2u's per-character durations and the vocoder's frames per unit (word timings).
        ``text_states``: the decoder's hidden states its decode kept; ``tokens``: ``sequences`` on
        the host, where the caller has them (``units``); ``speeds``: each row's speaking rate
        (``vocode``; None: the model's own); ``fits``: each row's time to fit its speech in
        (``ModelInput.fit``; None: its speed). ``again``: rows spoken once more at
        another rate, (row, rate) each (``ModelInput.renditions``): vocoder rows after the others
        from the same units, and the result's units follow them. The waves are unmarked (``vocode``)."""
        units = self.units(enc, mask, sequences, audio_s, text_input=text_input, text_states=text_states, tokens=tokens)
        rated: dict[str, Any] = {}
        if again:
            rows = len(langs)
            pick = [*range(rows), *(row for row, _ in again)]
            sel = upload(pick, torch.long, self.device)
            units = Units(
                units.units.index_select(0, sel),
                [units.counts[i] for i in pick],
                units.char_durations.index_select(0, sel),
            )
            langs, speakers = [langs[i] for i in pick], [speakers[i] for i in pick]
            speeds = [*(speeds or [1.0] * rows), *(rate for _, rate in again)]
            fits = None if fits is None else [*fits, *[None] * len(again)]
            rated["max_rows"] = rows  # groups no larger than the text rows': shapes the warm-up met
        # every row at the model's own rate: the call as it was before rates (``at_rate`` is the
        # identity at 1), so a caller that wraps ``vocode`` sees the same four arguments
        if speeds is not None and any(s != 1.0 for s in speeds):
            rated["speeds"] = speeds
        if fits is not None and any(f is not None for f in fits):
            rated["fits"] = fits
        return Speech(units, self.vocode(units.units, units.counts, langs, speakers, **rated))

    def units(
        self,
        enc: torch.Tensor,
        mask: torch.Tensor,
        sequences: torch.Tensor,
        audio_s: Sequence[float] = (),
        *,
        text_input: bool = False,
        text_states: torch.Tensor | None = None,
        tokens: Sequence[Sequence[int]] | None = None,
    ) -> Units:
        """Text-to-unit for text rows (``TextToUnit``, model/stages/text_to_unit.py; ``sequences`` as
        ``generate`` returns them). ``text_input``: ``enc`` is the text encoder's and ``mask`` its
        tokens' mask, which the decoder reads as it is (speech: the features' mask, sub-sampled to
        the encoder's frames first), as ``generate`` does. ``audio_s``: each row's seconds, for
        benchmark mode's forced unit counts. ``text_states``: the text decoder's hidden states over
        ``sequences[:, :-1]`` as the decode kept them (the fast runner's loop); None: re-run.
        ``tokens``: ``sequences`` on the host (None: read once)."""
        if text_input or text_states is not None:  # the kept states need no encoder mask
            enc_mask = mask
        else:
            sub_lens = self.model._compute_sub_sample_lengths_from_attention_mask(mask).to(enc.device)
            enc_mask = _new_attention_mask(enc, sub_lens)
        forced = None
        if self.forced is not None:
            forced = upload([self.forced.units(s) for s in audio_s], torch.long, self.device)
        return self.t2u(enc, enc_mask, sequences, forced, text_states, tokens=tokens)

    @property
    def vocoder_stages(self) -> tuple[tuple[int, int, int], ...]:
        """HiFi-GAN's (stride, padding, kernel) per upsampling stage."""
        return self._vocoder.stages

    def vocode(
        self,
        units: torch.Tensor,
        unit_lens: Sequence[int],
        langs: Sequence[str],
        speakers: Sequence[int],
        speeds: Sequence[float] | None = None,
        fits: Sequence[SpeechFit | None] | None = None,
        max_rows: int | None = None,
    ) -> Vocoded:
        """One waveform per row of vocoder units (``units``' layout), in the row's language and
        voice, at the row's speaking rate (``speeds``; None: the model's own), and each
        row's frames per unit (model/stages/vocoder.py); ``fits``: each row's time to fit its
        speech in (``ModelInput.fit``: the rate chosen on the device; None: its speed). The waves
        are the vocoder's own, unmarked: each caller that makes speech for a result marks its
        waves (``mark_waves``: the finish, a respeak, a simultaneous step)."""
        frames = None if self.forced is None else self.forced.frames_per_unit
        lang_ids = [self._vocoder_lang_ids[lang] for lang in langs]
        return self._vocoder(
            units, unit_lens, lang_ids, speakers, unit_frames=frames, speeds=speeds, fits=fits, max_rows=max_rows
        )

    def mark_waves(self, waves: Sequence[np.ndarray]) -> list[np.ndarray]:
        """``waves`` (the vocoder's, at ``sample_rate``) with the watermark, as one batch; as they
        are without a ``marker``. Every caller of ``vocode`` whose waves become a result's speech
        calls it once per step, before anything encodes them. Thread-safe (the marker only reads
        its network): the model thread and the finish stage's worker may both call it."""
        return list(waves) if self.marker is None else self.marker.mark(waves, self.sample_rate)

    def warm_speech(
        self,
        max_rows: int,
        longest_s: float,
        deadline: float | None = None,
        *,
        only_rows: bool = False,
        row_seconds: float | None = None,
    ) -> int:
        """Run t2u and the vocoder once at every bucket a batch of up to ``max_rows`` segments of
        up to ``longest_s`` seconds can give them (the warm-up ``buckets``, engine/warmup.py):
        t2u at every row bucket, each call at the next text, character and unit bucket together
        (each part's kernels depend on its own width alone: ``TextToUnit._saw``); the vocoder at
        its row buckets (one row when it runs per row), units and frames together. The ladders
        reach the text cap's tokens and model/stages/shapes.py's rates per second. Stops at ``deadline``
        (``time.perf_counter``). ``only_rows``: t2u at ``max_rows``' own row bucket alone (a
        profile of one batch size; the vocoder's groups still take every size). ``row_seconds``:
        the rows times seconds a batch can bring at most (the scheduler's padded-audio budget
        times a segment's rows): a row bucket's lengths stop there, as a batch's do. Without buckets
        (``pad_shapes`` off) there is nothing to warm: returns 0, else the calls run."""
        if self.bucket is None:
            return 0
        cap = self.text_cap or TextCap()
        bucket = self.bucket

        def ladders(rows: int) -> tuple[list[int], list[int], list[int], list[int]]:
            """The text, character, unit and frame buckets a batch of ``rows`` rows can reach."""
            s = longest_s if row_seconds is None else min(longest_s, row_seconds / rows)
            return (
                ladder(cap.tokens(s) + 2, bucket),
                ladder(int(CHARS_PER_S * s), bucket),
                ladder(int(UNITS_PER_S * s), bucket),
                ladder(int(FRAMES_PER_S * s), bucket),
            )

        every = ladder(max_rows, bucket_rows)
        t2u_rows = [bucket_rows(max_rows)] if only_rows else every
        voc_rows = every if self._vocoder.batched else [1]  # its groups of rows are any size
        calls = 0

        def at(steps: list[int], k: int) -> int:
            return steps[min(k, len(steps) - 1)]

        with torch.inference_mode():
            for rows in t2u_rows:
                text, chars, units, _ = ladders(rows)
                for k in range(max(len(text), len(chars), len(units))):
                    if deadline is not None and time.perf_counter() >= deadline:
                        return calls
                    self.t2u.warm(rows, at(text, k), at(chars, k), at(units, k))
                    calls += 1
            for rows in voc_rows:
                _, _, units, frames = ladders(rows)
                for k in range(max(len(units), len(frames))):
                    if deadline is not None and time.perf_counter() >= deadline:
                        return calls
                    self._vocoder.warm(rows, at(units, k), at(frames, k))
                    calls += 1
        return calls

    @property
    def graphed(self) -> tuple[GraphedStage, ...]:
        """The stages' parts captured per bucket on CUDA (model/capture.py)."""
        voc = self._vocoder
        return (self.speech_encoder.graphs, self.t2u.chars, self.t2u.units, voc.first, voc.second)

    def identify(self, audios: Sequence[np.ndarray], candidates: Sequence[tuple[str, ...]]) -> list[dict[str, float]]:
        """The spoken language of segments, in one identifier batch: per segment, a probability per
        candidate (empty candidates: any ``detectable`` language)."""
        if self.identifier is None:
            raise RuntimeError("language detection asked of a runner without an identifier")
        return self.identifier.identify(audios, [c or self._detectable for c in candidates])


def _new_attention_mask(hidden: torch.Tensor, seq_lens: torch.Tensor) -> torch.Tensor:
    from transformers.models.seamless_m4t_v2.modeling_seamless_m4t_v2 import _compute_new_attention_mask

    mask: torch.Tensor = _compute_new_attention_mask(hidden_states=hidden, seq_lens=seq_lens)
    return mask
