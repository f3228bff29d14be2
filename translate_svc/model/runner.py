"""The engine's ``Runner`` for SeamlessM4T v2: each kind of work through the model's stages.

``SeamlessRunner.run`` splits a batch by ``ModelInput.kind`` and runs each part as one pass of the
stages (``SeamlessStages``, model/seamless.py), simultaneous steps first, then texts, then segments:

- **segments**: features for every segment, padded into one batch; the speech encoder **once**
  per segment; greedy text decoding of one row per (segment, language), every target plus the
  source language for the transcript, each row starting with its own language token and reusing
  its segment's encoder output (so mixed-language batches are correct and stay full);
  text-to-unit for the rows that want speech, batched; the vocoder, each row in its own language
  and voice;
- **texts** (``ModelInput.text``): the text encoder once per text, then the same text rows,
  text-to-unit and vocoder, as ``generate(input_ids=..., tgt_lang=...)`` does;
- **simultaneous steps** (``ModelInput.simul``): ``SimultaneousSteps.step`` (model/simultaneous.py)
  on the same stages.

Each segment's and text's result equals ``generate`` on it alone (the parity tests,
tests/model/test_runner.py and test_text_runner.py). The stages know no kind of work and
import nothing here; the steps take the stages as a parameter: imports point one way, down.

Thread safety: not thread-safe, except ``extract_features``. Exactly one thread (the engine's
model thread) calls ``run``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch

from translate_svc.engine.runner import DETECTED, Features, ModelInput, ModelOutput, WorkKind
from translate_svc.model.aligner import WordTimer
from translate_svc.model.seamless import SeamlessStages
from translate_svc.model.simultaneous import SimultaneousSteps
from translate_svc.types import ModelCard, WordTiming

#: the order a mixed batch's parts run in, each one pass of the stages
ORDER = (WorkKind.STEP, WorkKind.TEXT, WorkKind.SEGMENT)


class SeamlessRunner:
    """The ``Runner`` (engine/runner.py) on loaded ``SeamlessStages``. See the module docstring."""

    def __init__(self, stages: SeamlessStages) -> None:
        self.stages = stages
        self._steps: SimultaneousSteps | None = None
        self._timer: WordTimer | None = None

    @property
    def card(self) -> ModelCard:
        return self.stages.card

    def extract_features(self, audio: np.ndarray) -> Features:
        """Thread-safe: the engine runs it on a CPU thread beside ``run``."""
        return self.stages.extract_features(audio)

    @property
    def steps(self) -> SimultaneousSteps:
        """The simultaneous steps on these stages, made at the first step: they hook t2u's duration
        predictor, which a runner that never steps does without."""
        if self._steps is None:
            self._steps = SimultaneousSteps(self.stages, lambda: self.timer)
        return self._steps

    @property
    def timer(self) -> WordTimer:
        """Word timings on these stages, made at the first segment or step that asks (it hooks t2u)."""
        if self._timer is None:
            self._timer = WordTimer(self.stages)
        return self._timer

    @torch.inference_mode()
    def run(self, inputs: Sequence[ModelInput]) -> list[ModelOutput]:
        """Each input's output, in order; each kind of work (``ORDER``) in one batch, or each input
        alone where the stages ask for exact rows (``SeamlessStages.exact_rows``: bfloat16 on CPU)."""
        if self.stages.exact_rows and len(inputs) > 1:
            return [out for item in inputs for out in self._run_batch([item])]
        return self._run_batch(inputs)

    def _run_batch(self, inputs: Sequence[ModelInput]) -> list[ModelOutput]:
        parts: dict[WorkKind, list[int]] = {kind: [] for kind in ORDER}
        for k, item in enumerate(inputs):
            parts[item.kind].append(k)
        out: dict[int, ModelOutput] = {}
        for kind, ks in parts.items():
            if ks:
                out.update(zip(ks, self._run_kind(kind, [inputs[k] for k in ks]), strict=True))
        return [out[k] for k in range(len(inputs))]

    def _run_kind(self, kind: WorkKind, inputs: Sequence[ModelInput]) -> list[ModelOutput]:
        if kind is WorkKind.STEP:
            return self.steps.step(inputs)
        if kind is WorkKind.TEXT:
            return self._run_texts(inputs)
        return self._run_segments(inputs)

    def _run_texts(self, inputs: Sequence[ModelInput]) -> list[ModelOutput]:
        """Text inputs: the text encoder once per text, then the same text rows, text-to-unit and
        vocoder as segments, all with the model set to text (``SeamlessStages.text_modality``)."""
        stages = self.stages
        ids, mask = stages.tokenize(inputs)
        with stages.text_modality():
            enc = stages.encode_text(ids, mask)
            rows = [(k, lang) for k, item in enumerate(inputs) for lang in dict.fromkeys(item.targets)]
            # the source text is what KEEP terms are looked for in (a segment's transcript, for speech)
            said = {k: item.text.text for k, item in enumerate(inputs) if item.text is not None}
            return self._rows_to_outputs(inputs, enc, mask, rows, [None] * len(inputs), {}, 0.0, said=said)

    def _run_segments(self, inputs: Sequence[ModelInput]) -> list[ModelOutput]:
        """Whole segments: features, the speech encoder once per segment, language identification
        for those that ask, then one text row per (segment, language), the transcript's included."""
        stages = self.stages
        feats, mask = stages.features(inputs)
        enc = stages.encode(feats, mask)
        detected, language_id_ms = stages.identify(inputs)

        rows: list[tuple[int, str]] = []  # (segment index, language) per text row
        spoken: list[str | None] = []  # per segment, its transcript's language
        for k, item in enumerate(inputs):
            langs = list(dict.fromkeys(item.targets))
            transcript = item.transcript_language
            if transcript == DETECTED:
                scores = detected[k]
                transcript = max(scores, key=scores.__getitem__)
            spoken.append(transcript)
            if transcript and transcript not in langs:
                langs.append(transcript)
            rows.extend((k, lang) for lang in langs)
        return self._rows_to_outputs(inputs, enc, mask, rows, spoken, detected, language_id_ms)

    def _rows_to_outputs(
        self,
        inputs: Sequence[ModelInput],
        enc: torch.Tensor,
        mask: torch.Tensor,
        rows: Sequence[tuple[int, str]],
        spoken: Sequence[str | None],
        detected: dict[int, dict[str, float]],
        language_id_ms: float,
        *,
        said: dict[int, str] | None = None,
    ) -> list[ModelOutput]:
        """The text rows decoded from the inputs' encoder outputs, then speech for the target rows
        that want it, gathered per input. ``said``: text inputs' own text (``decode_rows``); their
        ``enc``/``mask`` are the text encoder's."""
        stages = self.stages
        text_input = said is not None
        index = torch.tensor([k for k, _ in rows], device=stages.device)
        row_enc, row_mask = enc.index_select(0, index), mask.index_select(0, index)
        seconds = [i.input_seconds for i in inputs]
        sequences = stages.decode_rows(row_enc, row_mask, rows, inputs, spoken, seconds, said=said)
        texts = stages.processor.batch_decode(sequences, skip_special_tokens=True)

        # Speech for target rows that asked for it and have at least one text token.
        gen = stages.model.generation_config
        speech_rows = [
            r for r, (k, lang) in enumerate(rows)
            if inputs[k].speech and lang in inputs[k].targets and _has_text(sequences[r], gen)
        ]  # fmt: skip
        waves: dict[int, np.ndarray] = {}
        words: dict[int, tuple[WordTiming, ...]] = {}
        transcript_words: dict[int, tuple[WordTiming, ...]] = {}
        t_speech = time.perf_counter()
        # exact rows: each row's text-to-unit alone (its own padding), as generate runs it
        groups = [[r] for r in speech_rows] if stages.exact_rows else [speech_rows]
        for group in (g for g in groups if g):
            timer = self.timer if any(inputs[rows[r][0]].words for r in group) else None  # hooked before t2u
            sel = torch.tensor(group, device=stages.device)
            seqs = _trim_right_padding(sequences.index_select(0, sel), gen.pad_token_id)
            out = stages.speech(
                row_enc.index_select(0, sel),
                row_mask.index_select(0, sel),
                seqs,
                [rows[r][1] for r in group],
                [inputs[rows[r][0]].speaker_id for r in group],
                [seconds[rows[r][0]] for r in group],
                text_input=text_input,
            )
            waves.update(zip(group, out, strict=True))
            if timer is not None:
                words.update(zip(group, timer.speech(seqs, out), strict=True))
        speech_ms = (time.perf_counter() - t_speech) * 1000 if speech_rows else 0.0
        heard = [r for r, (k, lang) in enumerate(rows) if inputs[k].words and lang == spoken[k] and not text_input]
        if heard:
            sel = torch.tensor(heard, device=stages.device)
            got = self.timer.transcript(
                row_enc.index_select(0, sel),
                row_mask.index_select(0, sel),
                sequences.index_select(0, sel),
                [seconds[rows[r][0]] for r in heard],
            )
            transcript_words = {rows[r][0]: w for r, w in zip(heard, got, strict=True)}

        outputs = []
        for k, item in enumerate(inputs):
            mine = [(r, lang) for r, (kk, lang) in enumerate(rows) if kk == k]
            outputs.append(
                ModelOutput(
                    transcript=next((texts[r] for r, lang in mine if lang == spoken[k]), None),
                    texts={lang: texts[r] for r, lang in mine if lang in item.targets},
                    waveforms={
                        lang: waves.get(r, np.zeros(0, np.float32))
                        for r, lang in mine
                        if item.speech and lang in item.targets
                    },
                    detected=detected.get(k),
                    speech_ms=speech_ms,
                    language_id_ms=language_id_ms,
                    words={lang: words[r] for r, lang in mine if r in words and lang in item.targets},
                    transcript_words=transcript_words.get(k, ()),
                )
            )
        return outputs


def _has_text(seq: torch.Tensor, gen) -> bool:  # type: ignore[no-untyped-def]
    """True if the row has any token after ``[start, lang]`` before EOS/padding."""
    body = seq[2:]
    return bool(body.numel()) and int(body[0]) not in (gen.eos_token_id, gen.pad_token_id)


def _trim_right_padding(seqs: torch.Tensor, pad: int) -> torch.Tensor:
    """Drop trailing all-pad columns, so a sub-batch looks like generate's own output for it."""
    keep = int((seqs != pad).sum(1).max())
    return seqs[:, :keep]
