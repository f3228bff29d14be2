"""The engine's ``Runner`` for SeamlessM4T v2: each kind of work through the model's stages.

``SeamlessRunner.run`` splits a batch by ``ModelInput.kind`` and runs each part as one pass of the
stages (``SeamlessStages``, model/stages/seamless.py), simultaneous steps first, then texts, then segments,
then respeaks:

Each batch of segments or texts runs in three parts: the prefill (``prefill_segments``,
``prefill_texts``: encoder outputs, language identification, the rows' plan), the ``decode`` of the
plan's rows, and ``finish`` (model/finish/outputs.py: speech, word timings, profanity, confidence, outputs).
The stepping decoder (model/stepping.py) calls them apart, decoding rows of many jobs in one loop.

- **segments**: features for every segment, padded into one batch; the speech encoder **once**
  per segment; greedy text decoding of one row per (segment, language), every target plus the
  source language for the transcript, each row starting with its own language token and reusing
  its segment's encoder output (so mixed-language batches are correct and stay full);
  text-to-unit for the rows that want speech, batched; the vocoder, each row in its own language
  and voice;
- **texts** (``ModelInput.text``): the text encoder once per text, then the same text rows,
  text-to-unit and vocoder, as ``generate(input_ids=..., tgt_lang=...)`` does;
- **simultaneous steps** (``ModelInput.simul``): ``Retranslator.retranslate`` (model/simultaneous.py)
  on the same stages;
- **respeaks** (``ModelInput.respeak``): kept units spoken again at other rates, the vocoder alone
  (model/finish/respeak.py).

Each segment's and text's result equals ``generate`` on it alone (the parity tests,
tests/model/test_runner.py and test_text_runner.py). The stages know no kind of work and
import nothing here; the steps take the stages as a parameter: imports point one way, down.

Thread safety: not thread-safe, except ``extract_features``. Exactly one thread (the engine's
model thread) calls ``run``.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from translate_svc.model.capture import GraphedStage, drained
from translate_svc.model.decode.batch import Decoded, LoopDecoder
from translate_svc.model.decode.warm import warm_admissions, warm_steps
from translate_svc.model.finish.aligner import WordTimer
from translate_svc.model.finish.outputs import finish
from translate_svc.model.finish.respeak import respeak
from translate_svc.model.inputs import detect, features_of, texts_of
from translate_svc.model.prefill import Prefilled
from translate_svc.model.simultaneous import Retranslator
from translate_svc.model.stages.seamless import SeamlessStages
from translate_svc.model_api.requests import Features, ModelInput, ModelOutput, WorkKind
from translate_svc.model_api.rows import plan_rows, with_prefixes
from translate_svc.model_api.runner import Stepper
from translate_svc.types import ModelCard

if TYPE_CHECKING:
    from translate_svc.model.stepping import SteppingDecoder

#: the order a mixed batch's parts run in, each one pass of the stages
ORDER = (WorkKind.RETRANSLATION, WorkKind.TEXT, WorkKind.SEGMENT, WorkKind.RESPEAK)


class SeamlessRunner:
    """The ``Runner`` (model_api/runner.py) on loaded ``SeamlessStages``. See the module docstring."""

    def __init__(self, stages: SeamlessStages, loop: LoopDecoder | None = None, *, finish_thread: bool = False) -> None:
        """``loop``: decode through our own loop (model/decode/batch.py: the fast runner, held to this
        runner by stated tolerances); None: ``generate``, each row equal to it alone (exact).
        ``finish_thread``: the stepping decoder finishes ended jobs on a thread of its own
        (model/finish/stage.py) while it decodes the others."""
        self.stages = stages
        self.loop = loop
        self.finish_thread = finish_thread
        self._retranslator: Retranslator | None = None
        self._stepper: SteppingDecoder | None = None
        self._timer: WordTimer | None = None
        self._capturing = True  # the stages' graphs capture new buckets (``capture_stages``)
        self._graphing: bool | None = None  # the stages have graphs at all (``graph_stages``; None: their default)

    @property
    def card(self) -> ModelCard:
        return self.stages.card

    def extract_features(self, audio: np.ndarray) -> Features:
        """Thread-safe: the engine runs it on a CPU thread beside ``run``."""
        return self.stages.extract_features(audio)

    @property
    def features_in_run(self) -> bool:
        """Segments without features get them inside ``run``, on the encoder's device, as part of
        its call (``model_api/runner.py`` ``FeaturesInRun``; the CUDA plan: model/build.py)."""
        return self.stages.speech_encoder.device_features

    def warmed(self) -> None:
        """The engine's warm-up is over (``model_api/runner.py`` ``Warmable``): shapes first met from
        now on are counted as cold (``SeamlessStages.shapes``), and no new CUDA graph is captured
        (a bucket first met from now on runs eagerly: model/capture.py). The host waits once for
        the warm-up's device work (``capture.drained``), so no live upload waits for its copies."""
        self.stages.shapes.mark_warm()
        self.capture_stages(False)
        drained(self.stages.device)

    def capture_stages(self, on: bool) -> None:
        """Whether the stages' graphs (model/capture.py) capture buckets they meet: on until the
        warm-up ends (a bucket first met after it is a graph miss)."""
        self._capturing = on
        for stage in self._graphed():
            stage.capturing = on

    def graph_stages(self, on: bool) -> None:
        """Whether the stages have graphs at all: off from the start on a CPU plan and with
        ``model.stage_graphs`` off (their static paths run eagerly; the decode step's own graphs
        are ``model.decode_graphs``')."""
        self._graphing = on
        for stage in self._graphed():
            stage.enabled = on

    def _graphed(self) -> list[GraphedStage]:
        graphed = list(self.stages.graphed)
        for loop in (self.loop, self._stepper):
            if loop is not None:
                graphed.append(loop.loop.admission)
        return graphed

    def warm_shapes(
        self, max_rows: int, longest_s: float, deadline: float | None, *, row_seconds: float | None = None
    ) -> int:
        """t2u's and the vocoder's buckets (``model_api/runner.py`` ``ShapeWarmable``;
        ``SeamlessStages.warm_speech``, up to ``row_seconds`` a batch) and each decode pool's static
        step and admissions, in the order live segments need them, so that a warm-up cut by its
        ``deadline`` has run what they meet first: t2u and the vocoder where live segments are
        finished (the stepping decoder's finish thread, whose cuDNN plans and CUDA graphs are its
        own; else the model thread), then the pools, then (with a finish thread) t2u and the
        vocoder on the model thread, which then speaks texts and renditions alone. On an H200
        (2026-11-30) the model thread's ran first and a 100 s warm-up ended inside them: the
        finish thread's buckets were left to the live batches."""

        def speech() -> int:
            return self.stages.warm_speech(max_rows, longest_s, deadline, row_seconds=row_seconds)

        stage = self._stepper.stage if self._stepper is not None else None
        calls = speech() if stage is None else stage.call(speech)  # where live segments speak
        # each decode pool's admissions: every row bucket a batch can bring, at every encoder width
        widths = self.stages.speech_encoder.encoder_widths(longest_s)
        language = sorted(self.stages.text_lang_ids)[0]
        pools = {id(p.loop): p.loop for p in (self.loop, self._stepper) if p is not None}
        for pool in pools.values():
            if deadline is None or time.perf_counter() < deadline:
                calls += warm_steps(pool)
                calls += warm_admissions(pool, range(1, max_rows + 1), widths, language)
        return calls if stage is None else calls + speech()

    @property
    def retranslator(self) -> Retranslator:
        """The simultaneous steps on these stages, made at the first step."""
        if self._retranslator is None:
            self._retranslator = Retranslator(self.stages, lambda: self.timer, loop=self.loop)
        return self._retranslator

    def stepper(self) -> Stepper | None:
        """The stepping decoder on these stages (model/stepping.py: rows of many jobs in one running
        decode, in the fast runner's own pool: one pool for every route), made at the first call; None on
        the exact runner, or where the stages decode rows one by one (``exact_rows``)."""
        if self.loop is None or self.stages.exact_rows:
            return None
        if self._stepper is None:
            from translate_svc.model.stepping import SteppingDecoder

            # one pool for every route: the stepping decoder's rows and a whole batch's
            # (texts, simultaneous steps, terms' passes) decode in the same slots and graphs
            self._stepper = stepper = SteppingDecoder(self, finish_thread=self.finish_thread, pool=self.loop.loop)
            stepper.loop.admission.capturing = self._capturing  # as the runner's other stages
            if self._graphing is not None:
                stepper.loop.admission.enabled = self._graphing
        return self._stepper

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
        if kind is WorkKind.RETRANSLATION:
            return self.retranslator.retranslate(inputs)
        if kind is WorkKind.TEXT:
            return self._run_texts(inputs)
        if kind is WorkKind.RESPEAK:
            return respeak(self.stages, lambda: self.timer, inputs)
        return self._run_segments(inputs)

    def _run_texts(self, inputs: Sequence[ModelInput]) -> list[ModelOutput]:
        """Text inputs: the text encoder once per text, then the same text rows, text-to-unit and
        vocoder as segments, all with the model set to text (``TextEncoder.text_modality``)."""
        with self.stages.text_encoder.text_modality():
            prefilled = self.prefill_texts(inputs)
            return self.finish(inputs, prefilled, self.decode(prefilled))

    def _run_segments(self, inputs: Sequence[ModelInput]) -> list[ModelOutput]:
        """Whole segments: the prefill, the decode of the plan's rows, then the rest (``finish``)."""
        prefilled = self.prefill_segments(inputs)
        return self.finish(inputs, prefilled, self.decode(prefilled))

    def prefill_segments(self, inputs: Sequence[ModelInput], *, first_id: int = 0) -> Prefilled:
        """Segments' prefill: features, the speech encoder once per segment, language identification
        for those that ask, and the plan's text rows (model_api/rows.py), the transcript's included
        (row ids from ``first_id``)."""
        batch = features_of(self.stages, inputs)
        enc = self.stages.speech_encoder.encode(batch)
        detected, language_id_ms = detect(self.stages, inputs)
        plan = plan_rows(inputs, detected, first_id=first_id)
        frames = self.stages.speech_encoder.encoder_frames(batch.mask_frames, enc.shape[1])
        return Prefilled.of(self.stages, enc, batch.mask, plan, detected, language_id_ms, frames=frames)

    def prefill_texts(self, inputs: Sequence[ModelInput]) -> Prefilled:
        """Texts' prefill (inside ``TextEncoder.text_modality``): the text encoder once per text and
        the plan's rows; ``said``: the source text, what KEEP terms are looked for in (a segment's
        transcript, for speech)."""
        text = self.stages.text_encoder
        ids, mask = text.tokenize(texts_of(inputs))
        enc = text.encode(ids, mask)
        said = {k: item.text.text for k, item in enumerate(inputs) if item.text is not None}
        written = {
            k: text.written(item.text, self.stages.decoder.eos)
            for k, item in enumerate(inputs)
            if item.text is not None and item.text.as_written
        }
        return Prefilled.of(self.stages, enc, mask, with_prefixes(plan_rows(inputs), written), {}, 0.0, said)

    def decode(self, prefilled: Prefilled) -> Decoded:
        """The plan's text rows decoded: ``generate`` (exact) or our own loop (fast)."""
        stages, p = self.stages, prefilled
        if self.loop is None:
            seqs = stages.decoder.decode(p.row_enc, p.row_mask, p.plan, p.said)
            return Decoded(seqs, logprobs=tuple(stages.decoder.last_logprobs))
        return self.loop.decode(
            p.row_enc, p.row_mask, p.plan, p.said, text_input=p.said is not None, frames=p.row_frames
        )

    def finish(self, inputs: Sequence[ModelInput], prefilled: Prefilled, decoded: Decoded) -> list[ModelOutput]:
        """Everything after the decode (model/finish/outputs.py): speech, timings, profanity, confidence."""
        return finish(self.stages, lambda: self.timer, inputs, prefilled, decoded)

    def finisher(self) -> Callable[[Sequence[ModelInput], Prefilled, Decoded], list[ModelOutput]]:
        """``finish`` for one other thread (the stepping decoder's finish stage): the stages' tensors
        are only read, but the tokenizer (a Rust object that one thread's encode with new padding
        settings borrows mutably: "Already borrowed" in another's decode) and the word timer's
        cache are its own copies."""
        tokenizer = copy.deepcopy(self.stages.processor.tokenizer)
        timer = WordTimer(self.stages, tokenizer=tokenizer)

        def run(inputs: Sequence[ModelInput], prefilled: Prefilled, decoded: Decoded) -> list[ModelOutput]:
            return finish(self.stages, lambda: timer, inputs, prefilled, decoded, tokenizer=tokenizer)

        return run
