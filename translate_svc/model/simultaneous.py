"""Simultaneous interpretation by re-translation: the model's side of one step.

While a segment's speech is still open, the engine re-translates the speech so far about once a
second (issue 33; Meta's SeamlessStreaming agents do the same with an offline model). Per target,
one step here:

1. decodes the open speech greedily with the target's **committed** tokens forced as the start of
   the output (``ForcePrefix``), so text a listener already has is never retracted, and with the
   stream's terms biasing it as they bias a segment (``SeamlessStages.decode_rows``: KEEP terms
   reach a translation row where the step decodes a transcript, i.e. the final one when the
   stream asks for transcripts); the rest is this step's hypothesis, from which a policy (local
   agreement, outside this module) picks the next commit, at a word start (``word_starts``);
2. runs text-to-unit over the whole committed text exactly as the speech stage does for a
   whole text (the text decoder's states for those tokens, then UnitY2's non-autoregressive t2u),
   and vocodes its units past those already spoken (the target's ``spoken_units``). They are
   spoken once at least ``min_units`` units are new, or at the segment's end (``final``: the
   whole hypothesis is committed then) whatever is left.

What is spoken is counted in **units**, as the issue asks ("keep only the units past those already
spoken"): each chunk is the current run's units from the count already spoken, so a segment's
chunks add up to exactly the units t2u gives its whole committed text (the final run's), and no
unit index is spoken twice. t2u attends both ways, so a longer text can change the durations of
its first words a little; the cut then lands a few units (20 ms each) off the previous chunk's
last token end, where counting tokens (as Meta's ``NARUnitYUnitDecoderAgent``'s
``duration_start_index``) would cut on a token end but give a total that depends on where the
commits fell (``docs/decisions.md``). Should a run give fewer units than already spoken, it
speaks nothing, and only then can the total exceed the final run's.

With no committed tokens the decode is the runner's decode (``generate``'s) token for token, and a
single final step speaks exactly what the runner's speech stage speaks for that text.
A step is a ``ModelInput`` with ``simul`` (``engine/runner.py``: ``SimulRequest``, ``SimulTarget``,
``SimulRowOutput``); the policy's state is data in it, so the runner (model/runner.py) takes steps
in its batches from any process. The commit policy is LocalAgreement (``engine/agreement.py``),
applied here between the decode and the speech so speech follows a commit in the same step.
The steps run on the model's stages (``SeamlessStages``, model/seamless.py), given as a parameter;
this module imports nothing above them. Not thread-safe: the model thread only, like the stages.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import LogitsProcessor

from translate_svc.engine.agreement import AgreementConfig, step_commit
from translate_svc.engine.runner import (
    DETECTED,
    ModelInput,
    ModelOutput,
    SimulRequest,
    SimulRowOutput,
    SimulTarget,
    speak_now,
)
from translate_svc.model.aligner import WordTimer
from translate_svc.model.seamless import SeamlessStages
from translate_svc.types import MODEL_SAMPLE_RATE, WordTiming

#: SentencePiece's word-start marker
WORD_START = "\u2581"

#: ``(target, hypothesis token ids, its word starts) -> committed token ids``: a policy run in the
#: step, between the decode and the speech, so speech follows a commit without waiting a step
CommitPolicy = Callable[[SimulTarget, tuple[int, ...], tuple[int, ...]], Sequence[int]]


@dataclass(frozen=True, eq=False)
class CommittedSpeech:
    """Text-to-unit over one row's committed tokens."""

    #: vocoder unit ids (int64), what the speech stage hands the vocoder
    units: np.ndarray
    #: ``token_ends[j]``: the units of the first ``j`` tokens (``token_ends[0] == 0``, the last
    #: is ``len(units)``), from t2u's per-character durations
    token_ends: tuple[int, ...]


class ForcePrefix(LogitsProcessor):
    """Row r's first text tokens are ``prefixes[r]``: at those steps every other score is -inf.

    Greedy decoding then continues from the prefix as from any of its own tokens; a row with an
    empty prefix is untouched, so it equals the plain decode exactly. Runs after every other
    processor (``SeamlessStages.decode_text``), so nothing can drop a forced token.
    """

    def __init__(self, prefixes: Sequence[Sequence[int]], prompt_len: int = 2) -> None:
        self.prefixes = [tuple(p) for p in prefixes]
        self.prompt_len = prompt_len  # decoder start token + language token

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        step = input_ids.shape[1] - self.prompt_len
        rows = [r for r, p in enumerate(self.prefixes) if step < len(p)]
        if not rows:
            return scores
        index = torch.tensor(rows, device=scores.device)
        tokens = torch.tensor([self.prefixes[r][step] for r in rows], device=scores.device)
        forced = scores.clone()
        forced[index] = float("-inf")
        forced[index, tokens] = 0.0
        return forced  # type: ignore[return-value]


class SimultaneousSteps:
    """Re-translation steps on loaded ``SeamlessStages``: their features, encoder, text decoder,
    speech stage and vocoder (nothing loaded twice). Model thread only.

    Installs one forward hook, on t2u's duration predictor, that records the per-character
    durations while ``committed_speech`` runs (and does nothing otherwise).

    ``timer``: gives the word timer (model/aligner.py) for steps that ask for word timings
    (``ModelInput.words``): the runner's own, so the stages carry one; None: one made here at
    the first such step."""

    def __init__(self, stages: SeamlessStages, timer: Callable[[], WordTimer] | None = None) -> None:
        self.stages = stages
        self._make_timer = timer or (lambda: WordTimer(stages))
        self._timer: WordTimer | None = None
        self.tokenizer = stages.processor.tokenizer
        gen = stages.model.generation_config
        self._start = int(gen.decoder_start_token_id)
        self._eos = int(gen.eos_token_id)
        self._pad = int(gen.pad_token_id)
        self._unk = 1  # the unk id t2u's character mapping uses (transformers' default)
        self._id_to_text: dict[str, str] = dict(getattr(gen, "id_to_text", None) or {})
        self._unit_pad = int(stages.model.config.t2u_pad_token_id or 0)
        #: per row of the t2u call under way, its characters' durations; None: not recording
        self._durations: torch.Tensor | None = None
        self._recording = False
        predictor = stages.model.t2u_model.model.decoder.duration_predictor
        predictor.register_forward_hook(self._record_durations, with_kwargs=True)

    @property
    def timer(self) -> WordTimer:
        if self._timer is None:
            self._timer = self._make_timer()
        return self._timer

    # -- tokens ---------------------------------------------------------------------------

    def word_starts(self, token_ids: Sequence[int]) -> tuple[int, ...]:
        """Indices of the tokens that start a word (SentencePiece's "▁"): for such an ``i``,
        ``token_ids[:i]`` is whole words, so a commit may end there."""
        pieces = self.tokenizer.convert_ids_to_tokens(list(token_ids))
        return tuple(i for i, piece in enumerate(pieces) if piece.startswith(WORD_START))

    def text(self, token_ids: Sequence[int]) -> str:
        """Text as the runner writes it (``batch_decode(..., skip_special_tokens=True)``)."""
        text: str = self.tokenizer.decode(list(token_ids), skip_special_tokens=True)
        return text

    # -- the step -------------------------------------------------------------------------

    def agreement(self, request: SimulRequest) -> CommitPolicy:
        """The request's LocalAgreement as a commit policy: each target's committed tokens and
        previous hypotheses (``SimulTarget.recent``) with this step's hypothesis."""
        config = AgreementConfig(request.agreement, request.hold_last_word)
        return lambda target, ids, starts: step_commit(target.committed, target.recent, ids, self.word_starts, config)

    @torch.inference_mode()
    def step(self, inputs: Sequence[ModelInput], commit: CommitPolicy | None = None) -> list[ModelOutput]:
        """One step for each input (each has ``simul``); per input, a ``ModelOutput`` whose
        ``simul`` holds one row per target.

        Each segment is encoded once; each target is one text row, decoded with its committed
        tokens forced, and the transcript (when asked) one more row, unforced, all in one batch;
        then t2u over all committed texts in one batch, then the vocoder over the chunks
        (``SeamlessStages.vocode``).

        ``commit``: for the targets of inputs that are not ``final``, the new committed tokens
        from this step's hypothesis (they must extend the target's committed tokens and be a
        prefix of the hypothesis); None: each request's local agreement (``agreement``). Final
        inputs commit their whole hypothesis.
        """
        if not inputs:
            return []
        if self.stages.exact_rows and len(inputs) > 1:  # each input alone (SeamlessStages.exact_rows)
            return [out for item in inputs for out in self.step([item], commit)]
        requests = [_request(item) for item in inputs]
        r = self.stages
        detected, language_id_ms = r.identify(inputs)
        rows: list[tuple[int, SimulTarget | None, str]] = []  # (input, target or None: transcript, language)
        spoken: list[str | None] = []  # per input, its transcript's language
        for k, (item, req) in enumerate(zip(inputs, requests, strict=True)):
            rows.extend((k, t, t.language) for t in req.targets)
            lang = item.transcript_language
            if lang == DETECTED:
                lang = max(detected[k], key=detected[k].__getitem__)
            spoken.append(lang)
            if lang is not None:
                rows.append((k, None, lang))
        feats, mask = r.features(inputs)
        enc = r.encode(feats, mask)
        index = torch.tensor([k for k, _, _ in rows], device=r.device)
        enc, mask = enc.index_select(0, index), mask.index_select(0, index)
        seconds = [len(inputs[k].audio) / MODEL_SAMPLE_RATE for k, _, _ in rows]

        prefixes = [t.committed if t is not None else () for _, t, _ in rows]
        sequences = r.decode_rows(
            enc,
            mask,
            [(k, lang) for k, _, lang in rows],
            inputs,
            spoken,
            [len(item.audio) / MODEL_SAMPLE_RATE for item in inputs],
            processors=lambda subset: [ForcePrefix([prefixes[i] for i in subset])],
        )  # the term biases (issue 21) apply to steps as to segments
        hyps = self._hypotheses(sequences, prefixes)
        policies = [commit or self.agreement(req) for req in requests]
        committed = [
            ()
            if target is None
            else ids
            if requests[k].final
            else _checked_commit(target, ids, policies[k](target, ids, starts))
            for (k, target, _), (ids, _, starts) in zip(rows, hyps, strict=True)
        ]
        t_speech = time.perf_counter()
        speech = self._speech(enc, mask, rows, inputs, committed, seconds)
        speech_ms = (time.perf_counter() - t_speech) * 1000 if any(total for total, _, _, _ in speech) else 0.0
        heard = self._transcript_words(enc, mask, sequences, rows, inputs, requests, seconds)
        per: list[dict[str, SimulRowOutput]] = [{} for _ in inputs]
        transcripts: list[str | None] = [None] * len(inputs)
        for (k, target, lang), (ids, text, starts), done, (total, chunk_units, chunk, words) in zip(
            rows, hyps, committed, speech, strict=True
        ):
            if target is None:
                transcripts[k] = text
                continue
            per[k][lang] = SimulRowOutput(
                language=lang,
                token_ids=ids,
                text=text,
                word_starts=starts,
                committed=done,
                committed_text=self.text(done),
                units_total=total,
                chunk_units=chunk_units,
                chunk=chunk,
                spoken_tokens=len(done) if chunk is not None else target.spoken_tokens,
                spoken_units=total if chunk is not None else target.spoken_units,
                chunk_words=words,
            )
        return [
            ModelOutput(
                transcript=transcripts[k],
                texts={lang: row.committed_text for lang, row in per[k].items()},
                detected=detected.get(k),
                speech_ms=speech_ms,
                language_id_ms=language_id_ms,
                simul=per[k],
                transcript_words=heard.get(k, ()),
            )
            for k in range(len(inputs))
        ]

    def _transcript_words(
        self,
        enc: torch.Tensor,
        mask: torch.Tensor,
        sequences: torch.Tensor,
        rows: Sequence[tuple[int, SimulTarget | None, str]],
        inputs: Sequence[ModelInput],
        requests: Sequence[SimulRequest],
        seconds: Sequence[float],
    ) -> dict[int, tuple[WordTiming, ...]]:
        """A final step's transcript words (``ModelInput.words``), as a segment's: the closed
        segment's result carries them (an open step's transcript is a caption's: untimed)."""
        want = [i for i, (k, t, _) in enumerate(rows) if t is None and inputs[k].words and requests[k].final]
        if not want:
            return {}
        sel = torch.tensor(want, device=enc.device)
        got = self.timer.transcript(
            enc.index_select(0, sel),
            mask.index_select(0, sel),
            sequences.index_select(0, sel),
            [seconds[i] for i in want],
        )
        return {rows[i][0]: words for i, words in zip(want, got, strict=True)}

    # -- stages (rows of encoder output in, plain values out) -----------------------------

    @torch.inference_mode()
    def decode(
        self,
        enc: torch.Tensor,
        mask: torch.Tensor,
        langs: Sequence[str],
        prefixes: Sequence[tuple[int, ...]],
        seconds: Sequence[float],
    ) -> list[tuple[tuple[int, ...], str, tuple[int, ...]]]:
        """Greedy decoding of rows (``enc``/``mask`` expanded to them), each starting with its
        prefix: per row, the token ids after the language token (EOS and padding cut), the text
        as the runner writes it, and the word starts. All prefixes empty: the runner's decode."""
        sequences = self.stages.decode_text(enc, mask, langs, seconds, processors=[ForcePrefix(prefixes)])
        return self._hypotheses(sequences, prefixes)

    def _hypotheses(
        self, sequences: torch.Tensor, prefixes: Sequence[tuple[int, ...]]
    ) -> list[tuple[tuple[int, ...], str, tuple[int, ...]]]:
        """Decoded rows -> per row its token ids after the language token (EOS and padding cut),
        its text and word starts; checks that each kept its forced prefix."""
        texts = self.stages.processor.batch_decode(sequences, skip_special_tokens=True)
        out = []
        for seq, text, prefix in zip(sequences.tolist(), texts, prefixes, strict=True):
            body = seq[2:]
            end = next((i for i, tok in enumerate(body) if tok in (self._eos, self._pad)), len(body))
            ids = tuple(body[:end])
            if ids[: len(prefix)] != tuple(prefix):  # a token bound below the prefix's length
                raise RuntimeError(f"the decode kept {len(ids)} tokens of a {len(prefix)}-token committed prefix")
            out.append((ids, text, self.word_starts(ids)))
        return out

    @torch.inference_mode()
    def committed_speech(
        self,
        enc: torch.Tensor,
        mask: torch.Tensor,
        langs: Sequence[str],
        texts: Sequence[tuple[int, ...]],
        seconds: Sequence[float],
    ) -> list[CommittedSpeech]:
        """Text-to-unit over each row's tokens (after the language token; at least one), batched:
        the speech stage's ``units`` on ``[start, language, *text, EOS]``, i.e. on the text
        decoder's states for those tokens. Like ``generate`` it never speaks that last token (the
        EOS), so every text token is spoken; for a decode that ended with EOS this is the speech
        stage's own input. Each row also gets where its tokens' units end."""
        if not all(texts):
            raise ValueError("text-to-unit needs at least one token per row")
        r = self.stages
        if r.exact_rows and len(texts) > 1:  # each row alone (SeamlessStages.exact_rows)
            return [
                s for i in range(len(texts))
                for s in self.committed_speech(enc[i : i + 1], mask[i : i + 1], langs[i : i + 1], texts[i : i + 1],
                                               seconds[i : i + 1])
            ]  # fmt: skip
        seqs = torch.full((len(texts), 3 + max(len(t) for t in texts)), self._pad, dtype=torch.long)
        for row, (lang, text) in enumerate(zip(langs, texts, strict=True)):
            seq = [self._start, r.text_lang_ids[lang], *text, self._eos]
            seqs[row, : len(seq)] = torch.tensor(seq)
        self._recording = True
        try:
            units, lens = r.units(enc, mask, seqs.to(r.device), seconds)
            durations = self._durations
        finally:
            self._recording, self._durations = False, None
        assert durations is not None
        cpu_units, cpu_durations = units.cpu().numpy(), durations.cpu().numpy()
        out = []
        for row, (text, n) in enumerate(zip(texts, lens, strict=True)):
            chars = np.cumsum([0, *(self._chars(tok) for tok in text)])
            ends = np.concatenate([[0], np.cumsum(cpu_durations[row])])
            if int(chars[-1]) > len(cpu_durations[row]) or int(ends[chars[-1]]) != n:
                raise RuntimeError(f"t2u's durations do not cover row {row}'s {len(text)} tokens")
            out.append(CommittedSpeech(cpu_units[row, :n].copy(), tuple(int(ends[c]) for c in chars)))
        return out

    @torch.inference_mode()
    def vocode(self, chunks: Sequence[np.ndarray], langs: Sequence[str], speakers: Sequence[int]) -> list[np.ndarray]:
        """One waveform per chunk of vocoder units (non-empty), in its language and voice: the
        stages' vocoder call (masked, batched where they batch)."""
        units = torch.full((len(chunks), max(len(c) for c in chunks)), self._unit_pad, dtype=torch.long)
        for row, chunk in enumerate(chunks):
            units[row, : len(chunk)] = torch.from_numpy(np.asarray(chunk, np.int64))
        return self.stages.vocode(units.to(self.stages.device), [len(c) for c in chunks], langs, speakers)

    def _speech(
        self,
        enc: torch.Tensor,
        mask: torch.Tensor,
        rows: Sequence[tuple[int, SimulTarget | None, str]],
        inputs: Sequence[ModelInput],
        committed: Sequence[tuple[int, ...]],
        seconds: Sequence[float],
    ) -> list[tuple[int, tuple[int, ...], np.ndarray | None, tuple[WordTiming, ...]]]:
        """Per row: the units of t2u over its committed text, and its chunk's units, waveform and
        (``ModelInput.words``) words in it."""
        out: list[tuple[int, tuple[int, ...], np.ndarray | None, tuple[WordTiming, ...]]]
        out = [(0, (), None, ())] * len(rows)
        want = [i for i, (k, target, _) in enumerate(rows) if target is not None and inputs[k].speech and committed[i]]
        if not want:
            return out
        sel = torch.tensor(want, device=enc.device)
        speech = self.committed_speech(
            enc.index_select(0, sel),
            mask.index_select(0, sel),
            [rows[i][2] for i in want],
            [committed[i] for i in want],
            [seconds[i] for i in want],
        )
        chunks: list[tuple[int, np.ndarray]] = []  # (row, its chunk's units)
        ends: dict[int, tuple[int, ...]] = {}  # row -> its tokens' unit ends in this run
        for i, s in zip(want, speech, strict=True):
            k, target, _ = rows[i]
            assert target is not None
            req = _request(inputs[k])
            start = target.spoken_units
            out[i] = (len(s.units), (), None, ())
            if speak_now(len(s.units) - start, req.min_units, req.final):
                chunks.append((i, s.units[start:]))
                ends[i] = s.token_ends
        if chunks:
            waves = self.vocode(
                [u for _, u in chunks],
                [rows[i][2] for i, _ in chunks],
                [inputs[rows[i][0]].speaker_id for i, _ in chunks],
            )
            frames = self.stages.vocoder_frames  # this call's, per chunk
            for n, ((i, units), wave) in enumerate(zip(chunks, waves, strict=True)):
                k, target, _ = rows[i]
                assert target is not None
                words: tuple[WordTiming, ...] = ()
                if inputs[k].words:
                    words = self.timer.chunk(
                        committed[i], ends[i], target.spoken_tokens, target.spoken_units, frames[n], len(wave)
                    )
                out[i] = (out[i][0], tuple(int(u) for u in units), wave, words)
        return out

    def _chars(self, token: int) -> int:
        """Characters t2u gives a token: ``SeamlessM4Tv2Model._get_char_input_ids``'s rule."""
        return 1 if token == self._unk else len(str(self._id_to_text.get(str(token))))

    def _record_durations(self, module, args, kwargs, log_dur):  # type: ignore[no-untyped-def]
        """t2u's own rounding of durations (``SeamlessM4Tv2TextToUnitDecoder.forward``), after any
        hook that replaced them (benchmark mode's forced durations)."""
        if self._recording:
            dur = torch.clamp(torch.round(torch.expm1(log_dur)).long(), min=1)
            self._durations = dur.masked_fill(~kwargs["padding_mask"].bool(), 0)
        return None


def _request(item: ModelInput) -> SimulRequest:
    if item.simul is None:
        raise ValueError("not a simultaneous step: ModelInput.simul is None")
    return item.simul


def _checked_commit(target: SimulTarget, hypothesis: tuple[int, ...], new: Sequence[int] | None) -> tuple[int, ...]:
    """A policy's commit, checked: it may only extend what is committed, within the hypothesis."""
    if new is None:
        return target.committed
    commit = tuple(new)
    if commit[: len(target.committed)] != target.committed or hypothesis[: len(commit)] != commit:
        raise ValueError("a commit must extend the committed tokens and be a prefix of the hypothesis")
    return commit
