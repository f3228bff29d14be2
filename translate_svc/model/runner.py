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

from translate_svc.engine.requests import Features, ModelInput, ModelOutput, WorkKind
from translate_svc.engine.rows import RowPlan, plan_rows
from translate_svc.model import profanity
from translate_svc.model.aligner import WordTimer
from translate_svc.model.confidence import mean_logprob, scored_words
from translate_svc.model.fast import Decoded, LoopDecoder
from translate_svc.model.inputs import detect, features_of, texts_of
from translate_svc.model.seamless import SeamlessStages
from translate_svc.model.simultaneous import SimultaneousSteps
from translate_svc.model.timings import WORD_START
from translate_svc.types import ModelCard, Profanity, WordTiming

#: the order a mixed batch's parts run in, each one pass of the stages
ORDER = (WorkKind.STEP, WorkKind.TEXT, WorkKind.SEGMENT)


class SeamlessRunner:
    """The ``Runner`` (engine/runner.py) on loaded ``SeamlessStages``. See the module docstring."""

    def __init__(self, stages: SeamlessStages, loop: LoopDecoder | None = None) -> None:
        """``loop``: decode through our own loop (model/fast.py: the fast runner, held to this
        runner by stated tolerances); None: ``generate``, each row equal to it alone (exact)."""
        self.stages = stages
        self.loop = loop
        self._steps: SimultaneousSteps | None = None
        self._timer: WordTimer | None = None

    @property
    def card(self) -> ModelCard:
        return self.stages.card

    def extract_features(self, audio: np.ndarray) -> Features:
        """Thread-safe: the engine runs it on a CPU thread beside ``run``."""
        return self.stages.extract_features(audio)

    def warmed(self) -> None:
        """The engine's warm-up is over (``engine/runner.py`` ``Warmable``): shapes first met from
        now on are counted as cold (``SeamlessStages.shapes``)."""
        self.stages.shapes.mark_warm()

    def warm_shapes(self, max_rows: int, longest_s: float, deadline: float | None) -> int:
        """t2u's and the vocoder's buckets (``engine/runner.py`` ``ShapeWarmable``;
        ``SeamlessStages.warm_speech``)."""
        return self.stages.warm_speech(max_rows, longest_s, deadline)

    @property
    def steps(self) -> SimultaneousSteps:
        """The simultaneous steps on these stages, made at the first step."""
        if self._steps is None:
            self._steps = SimultaneousSteps(self.stages, lambda: self.timer, loop=self.loop)
        return self._steps

    @property
    def timer(self) -> WordTimer:
        """Word timings on these stages, made at the first segment or step that asks."""
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

    def _tokens(self, seq: torch.Tensor, values: Sequence[float]) -> tuple[tuple[str, float], ...]:
        """A row's chosen text tokens (special tokens left out) as text, each with its value."""
        tokenizer = self.stages.processor.tokenizer
        special = set(tokenizer.all_special_ids)
        ids = seq[2 : 2 + len(values)].tolist()
        pieces = tokenizer.convert_ids_to_tokens(ids)
        return tuple(
            (piece.replace(WORD_START, " "), v)
            for t, piece, v in zip(ids, pieces, values, strict=True)
            if t not in special
        )

    def _run_texts(self, inputs: Sequence[ModelInput]) -> list[ModelOutput]:
        """Text inputs: the text encoder once per text, then the same text rows, text-to-unit and
        vocoder as segments, all with the model set to text (``TextEncoder.text_modality``)."""
        text = self.stages.text_encoder
        ids, mask = text.tokenize(texts_of(inputs))
        with text.text_modality():
            enc = text.encode(ids, mask)
            # the source text is what KEEP terms are looked for in (a segment's transcript, for speech)
            said = {k: item.text.text for k, item in enumerate(inputs) if item.text is not None}
            return self._rows_to_outputs(inputs, enc, mask, plan_rows(inputs), {}, 0.0, said=said)

    def _run_segments(self, inputs: Sequence[ModelInput]) -> list[ModelOutput]:
        """Whole segments: features, the speech encoder once per segment, language identification
        for those that ask, then the plan's text rows (engine/rows.py), the transcript's included."""
        batch = features_of(self.stages, inputs)
        enc = self.stages.speech_encoder.encode(batch)
        detected, language_id_ms = detect(self.stages, inputs)
        return self._rows_to_outputs(inputs, enc, batch.mask, plan_rows(inputs, detected), detected, language_id_ms)

    def _rows_to_outputs(
        self,
        inputs: Sequence[ModelInput],
        enc: torch.Tensor,
        mask: torch.Tensor,
        plan: RowPlan,
        detected: dict[int, dict[str, float]],
        language_id_ms: float,
        *,
        said: dict[int, str] | None = None,
    ) -> list[ModelOutput]:
        """The plan's text rows decoded from the inputs' encoder outputs, then speech for the target
        rows that want it, gathered per input. ``said``: text inputs' own text (what their terms
        look for); their ``enc``/``mask`` are the text encoder's."""
        stages = self.stages
        text_input = said is not None
        rows = [(row.item, row.language) for row in plan.rows]
        index = torch.tensor([k for k, _ in rows], device=stages.device)
        row_enc, row_mask = enc.index_select(0, index), mask.index_select(0, index)
        seconds = [i.input_seconds for i in inputs]
        if self.loop is None:
            seqs = stages.decoder.decode(row_enc, row_mask, plan, said)
            decoded = Decoded(seqs, logprobs=tuple(stages.decoder.last_logprobs))
        else:
            decoded = self.loop.decode(row_enc, row_mask, plan, said, text_input=text_input)
        sequences = decoded.sequences
        texts = stages.processor.batch_decode(sequences, skip_special_tokens=True)
        gen = stages.model.generation_config
        # the profanity filter: each row's text filtered, and its speech made from its tokens
        # without the listed words (model/profanity.py), in mask and remove modes alike
        filtered = [inputs[k].profanity is not Profanity.OFF for k, _ in rows]
        heard_seqs = sequences  # the transcript's words are timed on what was said
        sequences, drops = _speakable(stages, sequences, [lang for _, lang in rows], filtered, gen.pad_token_id)
        texts = [
            profanity.apply(t, lang, inputs[k].profanity) if f else t
            for t, (k, lang), f in zip(texts, rows, filtered, strict=True)
        ]

        # Speech for target rows that asked for it and have at least one text token.
        speech_rows = [
            r for r, (k, lang) in enumerate(rows)
            if inputs[k].speech and plan.rows[r].target and _has_text(sequences[r], gen)
        ]  # fmt: skip
        waves: dict[int, np.ndarray] = {}
        # each row's chosen tokens' log-probabilities (confidence, issue 72): none where not kept
        token_lps = decoded.logprobs or tuple(() for _ in rows)
        words: dict[int, tuple[WordTiming, ...]] = {}
        transcript_words: dict[int, tuple[WordTiming, ...]] = {}
        t_speech = time.perf_counter()
        # exact rows: each row's text-to-unit alone (its own padding), as generate runs it
        groups = [[r] for r in speech_rows] if stages.exact_rows else [speech_rows]
        for group in (g for g in groups if g):
            timed = any(inputs[rows[r][0]].words for r in group)
            sel = torch.tensor(group, device=stages.device)
            seqs = _trim_right_padding(sequences.index_select(0, sel), gen.pad_token_id)
            # the decode's own hidden states where it kept them (the loop): t2u reads them as they are;
            # a group with a row cut by the profanity filter has t2u re-read the text decoder over
            # the cut sequences (the kept states are of the uncut ones)
            kept = decoded.states is not None and not drops.keys() & set(group)
            states = decoded.states.index_select(0, sel)[:, : seqs.shape[1] - 1] if kept else None  # type: ignore[union-attr]
            out = stages.speech(
                row_enc.index_select(0, sel),
                row_mask.index_select(0, sel),
                seqs,
                [rows[r][1] for r in group],
                [inputs[rows[r][0]].speaker_id for r in group],
                [seconds[rows[r][0]] for r in group],
                text_input=text_input,
                text_states=states,
            )
            waves.update(zip(group, out.waves, strict=True))
            if timed:
                timing = self.timer.speech(seqs, out.waves, out.units.char_durations, out.vocoded.frames)
                words.update(
                    (r, scored_words(self.timer, seqs[j].tolist(), _kept(token_lps[r], drops.get(r)), w, timed=True))
                    for j, (r, w) in enumerate(zip(group, timing, strict=True))
                )
        speech_ms = (time.perf_counter() - t_speech) * 1000 if speech_rows else 0.0
        heard = [r for r, row in enumerate(plan.rows) if inputs[row.item].words and row.transcript and not text_input]
        if heard:
            sel = torch.tensor(heard, device=stages.device)
            got = self.timer.transcript(
                row_enc.index_select(0, sel),
                row_mask.index_select(0, sel),
                heard_seqs.index_select(0, sel),
                [seconds[rows[r][0]] for r in heard],
            )
            transcript_words = {
                rows[r][0]: profanity.words_of(
                    scored_words(self.timer, heard_seqs[r].tolist(), token_lps[r], w, timed=False),
                    rows[r][1],
                    inputs[rows[r][0]].profanity,
                )
                for r, w in zip(heard, got, strict=True)
            }

        outputs = []
        for k, item in enumerate(inputs):
            mine = [(r, row) for r, row in plan.of(k)]
            outputs.append(
                ModelOutput(
                    transcript=next((texts[r] for r, row in mine if row.transcript), None),
                    texts={row.language: texts[r] for r, row in mine if row.target},
                    waveforms={
                        row.language: waves.get(r, np.zeros(0, np.float32))
                        for r, row in mine
                        if item.speech and row.target
                    },
                    detected=detected.get(k),
                    speech_ms=speech_ms,
                    language_id_ms=language_id_ms,
                    words={row.language: words[r] for r, row in mine if r in words and row.target},
                    transcript_words=transcript_words.get(k, ()),
                    transcript_logprob=next((mean_logprob(token_lps[r]) for r, row in mine if row.transcript), None),
                    transcript_tokens=next(
                        (
                            self._tokens(heard_seqs[r], token_lps[r])
                            for r, row in mine
                            if row.transcript and item.profanity is Profanity.OFF
                        ),
                        (),
                    ),
                    logprobs={
                        row.language: lp
                        for r, row in mine
                        if row.target and (lp := mean_logprob(token_lps[r])) is not None
                    },
                )
            )
        return outputs


def _speakable(
    stages: SeamlessStages, sequences: torch.Tensor, languages: list[str], filtered: list[bool], pad: int
) -> tuple[torch.Tensor, dict[int, set[int]]]:
    """``sequences`` with the tokens of each filtered row's listed words taken out (the rest
    moved left, padded at the end): what t2u and the speech's word timings are made from; and the
    rows cut, each with the positions taken out. Unchanged where no row says a listed word."""
    if not any(filtered):
        return sequences, {}
    special = set(stages.processor.tokenizer.all_special_ids)
    tokenizer = stages.processor.tokenizer
    rows: list[list[int]] = []
    cut: dict[int, set[int]] = {}
    for r, seq in enumerate(sequences.tolist()):
        if filtered[r]:
            body = [i for i, t in enumerate(seq) if t not in special]
            tokens = [seq[i] for i in body]
            keep = profanity.token_keep(
                tokens, languages[r], lambda ids: tokenizer.decode(ids, skip_special_tokens=True)
            )
            drop = {i for i, k in zip(body, keep, strict=True) if not k}
            if drop:
                cut[r] = drop
                seq = [t for i, t in enumerate(seq) if i not in drop]
        rows.append(seq)
    if not cut:
        return sequences, cut
    width = sequences.shape[1]
    padded = [seq + [pad] * (width - len(seq)) for seq in rows]
    return torch.tensor(padded, dtype=sequences.dtype, device=sequences.device), cut


def _has_text(seq: torch.Tensor, gen) -> bool:  # type: ignore[no-untyped-def]
    """True if the row has any token after ``[start, lang]`` before EOS/padding."""
    body = seq[2:]
    return bool(body.numel()) and int(body[0]) not in (gen.eos_token_id, gen.pad_token_id)


def _trim_right_padding(seqs: torch.Tensor, pad: int) -> torch.Tensor:
    """Drop trailing all-pad columns, so a sub-batch looks like generate's own output for it."""
    keep = int((seqs != pad).sum(1).max())
    return seqs[:, :keep]


def _kept(values: Sequence[float], drop: set[int] | None) -> list[float]:
    """A row's token values without the positions the profanity filter took out of its sequence
    (``drop``: sequence positions; the chosen tokens start after ``[start, language]``)."""
    return [v for i, v in enumerate(values) if not drop or i + 2 not in drop]
