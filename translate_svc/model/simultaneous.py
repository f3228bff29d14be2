"""Simultaneous interpretation by re-translation: the model's side of one step.

While a segment's speech is still open, the engine re-translates the speech so far about once a
second (Meta's SeamlessStreaming agents do the same with an offline model). Per target,
one step here:

1. decodes the open speech greedily with the target's **committed** tokens forced as the start of
   the output (``ForcePrefix``, model/stages/decoder.py), so text a listener already has is never
   retracted, and with the
   stream's terms biasing it as they bias a segment (``TextDecoder.decode``: KEEP terms
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
A step is a ``ModelInput`` with ``simul`` (``model_api/runner.py``: ``SimulRequest``, ``SimulTarget``,
``SimulRowOutput``); the policy's state is data in it, so the runner (model/runner.py) takes steps
in its batches from any process. The commit policy is LocalAgreement (``model_api/agreement.py``),
applied here between the decode and the speech so speech follows a commit in the same step.
The steps run on the model's stages (``SeamlessStages``, model/stages/seamless.py), given as a parameter;
this module imports nothing above them. Not thread-safe: the model thread only, like the stages.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from translate_svc.model.decode.batch import LoopDecoder
from translate_svc.model.finish import profanity
from translate_svc.model.finish.aligner import WordTimer
from translate_svc.model.finish.confidence import mean_logprob, scored_chunk_words, scored_words
from translate_svc.model.inputs import detect, features_of
from translate_svc.model.stages.seamless import SeamlessStages
from translate_svc.model.stages.vocoder import Vocoded
from translate_svc.model_api.agreement import AgreementConfig, step_commit
from translate_svc.model_api.requests import (
    ModelInput,
    ModelOutput,
    SimulRequest,
    SimulRowOutput,
    SimulTarget,
    speak_now,
)
from translate_svc.model_api.rows import bare_rows, plan_rows
from translate_svc.types import Profanity, WordTiming

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


class Retranslator:
    """Re-translation steps on loaded ``SeamlessStages``: their features, encoder, text decoder,
    speech stage and vocoder (nothing loaded twice). Model thread only. Holds no per-step state:
    t2u's durations and the vocoder's frames are what those stages return.

    ``timer``: gives the word timer (model/finish/aligner.py) for steps that ask for word timings
    (``ModelInput.words``): the runner's own, so the stages carry one; None: one made here at
    the first such step."""

    def __init__(
        self, stages: SeamlessStages, timer: Callable[[], WordTimer] | None = None, *, loop: LoopDecoder | None = None
    ) -> None:
        self.stages = stages
        #: decode through our own loop (the fast runner's, model/decode/batch.py); None: ``generate``
        self.loop = loop
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
    def retranslate(self, inputs: Sequence[ModelInput], commit: CommitPolicy | None = None) -> list[ModelOutput]:
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
            return [out for item in inputs for out in self.retranslate([item], commit)]
        requests = [_request(item) for item in inputs]
        r = self.stages
        detected, language_id_ms = detect(r, inputs)
        plan = plan_rows(inputs, detected)
        targets = [{t.language: t for t in req.targets} for req in requests]
        # (input, target or None: transcript, language) per row of the plan
        rows = [(row.item, targets[row.item][row.language] if row.target else None, row.language) for row in plan.rows]
        batch = features_of(r, inputs)
        enc = r.speech_encoder.encode(batch)
        index = torch.tensor([k for k, _, _ in rows], device=r.device)
        enc, mask = enc.index_select(0, index), batch.mask.index_select(0, index)
        seconds = [row.seconds for row in plan.rows]
        prefixes = [row.prefix for row in plan.rows]
        # the term biases apply to steps as to segments; each target row's committed
        # tokens are its forced prefix (``ForcePrefix``)
        if self.loop is None:
            sequences = r.decoder.decode(enc, mask, plan)
            chosen: Sequence[tuple[float, ...]] | None = r.decoder.last_logprobs
        else:
            decoded = self.loop.decode(enc, mask, plan)
            sequences, chosen = decoded.sequences, decoded.logprobs
        hyps = self._hypotheses(sequences, prefixes)
        # confidence: each row's chosen tokens' values (after its forced prefix)
        values = list(chosen) if chosen is not None and len(chosen) == len(rows) else [None] * len(rows)
        policies = [commit or self.agreement(req) for req in requests]
        committed = [
            ()
            if target is None
            else ids
            if requests[k].final
            else _checked_commit(target, ids, policies[k](target, ids, starts))
            for (k, target, _), (ids, _, starts) in zip(rows, hyps, strict=True)
        ]
        scores = [
            _committed_values(target, ids, done, v) if target is not None else ((), None)
            for (_, target, _), (ids, _, _), done, v in zip(rows, hyps, committed, values, strict=True)
        ]
        t_speech = time.perf_counter()
        speech = self._speech(enc, mask, rows, inputs, committed, seconds, [lps for lps, _ in scores])
        speech_ms = (time.perf_counter() - t_speech) * 1000 if any(total for total, *_ in speech) else 0.0
        heard = self._transcript_words(enc, mask, sequences, rows, inputs, requests, seconds, values)
        per: list[dict[str, SimulRowOutput]] = [{} for _ in inputs]
        transcripts: list[str | None] = [None] * len(inputs)
        heard_lp: list[float | None] = [None] * len(inputs)
        final_lp: list[dict[str, float]] = [{} for _ in inputs]
        for (k, target, lang), hyp, done, spoke, v, (lps, end) in zip(
            rows, hyps, committed, speech, values, scores, strict=True
        ):
            mode = inputs[k].profanity  # the profanity filter: on every text shown
            if target is None:
                transcripts[k] = profanity.apply(hyp[1], lang, mode)
                heard_lp[k] = mean_logprob(v) if requests[k].final and v is not None else None
                continue
            if requests[k].final and len(lps) == len(done):  # the final's: every token, its end included
                lp = mean_logprob([*lps, *(() if end is None else (end,))])
                if lp is not None:
                    final_lp[k][lang] = lp
            final_end = end if requests[k].final else None
            per[k][lang] = self._row_output(target, lang, mode, hyp, done, spoke, lps, final_end)
        return [
            ModelOutput(
                transcript=transcripts[k],
                texts={lang: row.committed_text for lang, row in per[k].items()},
                detected=detected.get(k),
                speech_ms=speech_ms,
                language_id_ms=language_id_ms,
                simul=per[k],
                transcript_words=heard.get(k, ()),
                transcript_logprob=heard_lp[k],
                logprobs=final_lp[k],
            )
            for k in range(len(inputs))
        ]

    def _row_output(
        self,
        target: SimulTarget,
        lang: str,
        mode: Profanity,
        hyp: tuple[tuple[int, ...], str, tuple[int, ...]],
        done: tuple[int, ...],
        spoke: tuple[int, tuple[int, ...], np.ndarray | None, tuple[WordTiming, ...], float | None],
        lps: tuple[float, ...],
        end: float | None,
    ) -> SimulRowOutput:
        """A target row's output: its hypothesis (``hyp``: tokens, text, word starts), commit,
        speech (``spoke``: ``_speech``'s row) and confidence (``end``: a final step's end value),
        every text filtered (``mode``)."""
        (ids, text, starts), (total, chunk_units, chunk, words, rate) = hyp, spoke
        return SimulRowOutput(
            language=lang,
            token_ids=ids,
            text=profanity.apply(text, lang, mode),
            word_starts=starts,
            committed=done,
            committed_text=profanity.apply(self.text(done), lang, mode),
            units_total=total,
            chunk_units=chunk_units,
            chunk=chunk,
            spoken_tokens=len(done) if chunk is not None else target.spoken_tokens,
            spoken_units=total if chunk is not None else target.spoken_units,
            chunk_words=words,
            logprobs=lps,
            end_logprob=end,
            chunk_rate=rate if chunk is not None else None,
        )

    def _transcript_words(
        self,
        enc: torch.Tensor,
        mask: torch.Tensor,
        sequences: torch.Tensor,
        rows: Sequence[tuple[int, SimulTarget | None, str]],
        inputs: Sequence[ModelInput],
        requests: Sequence[SimulRequest],
        seconds: Sequence[float],
        values: Sequence[tuple[float, ...] | None],
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
        return {
            rows[i][0]: profanity.words_of(
                scored_words(self.timer, sequences[i].tolist(), values[i] or (), words, timed=False),
                rows[i][2],
                inputs[rows[i][0]].profanity,
            )
            for i, words in zip(want, got, strict=True)
        }

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
        sequences = self.stages.decoder.decode(enc, mask, bare_rows(langs, prefixes, seconds))
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
        got = r.units(enc, mask, seqs.to(r.device), seconds)
        cpu_units, cpu_durations = got.units.cpu().numpy(), got.char_durations.cpu().numpy()
        out = []
        for row, (text, n) in enumerate(zip(texts, got.counts, strict=True)):
            chars = np.cumsum([0, *(self._chars(tok) for tok in text)])
            ends = np.concatenate([[0], np.cumsum(cpu_durations[row])])
            if int(chars[-1]) > len(cpu_durations[row]) or int(ends[chars[-1]]) != n:
                raise RuntimeError(f"t2u's durations do not cover row {row}'s {len(text)} tokens")
            out.append(CommittedSpeech(cpu_units[row, :n].copy(), tuple(int(ends[c]) for c in chars)))
        return out

    @torch.inference_mode()
    def vocode(
        self,
        chunks: Sequence[np.ndarray],
        langs: Sequence[str],
        speakers: Sequence[int],
        speeds: Sequence[float] | None = None,
    ) -> Vocoded:
        """One waveform per chunk of vocoder units (non-empty), in its language and voice, at its
        speaking rate (``speeds``; None: the model's own), with its frames per unit: the stages'
        vocoder call (masked, batched where they batch), its waves watermarked (one batch)."""
        units = torch.full((len(chunks), max(len(c) for c in chunks)), self._unit_pad, dtype=torch.long)
        for row, chunk in enumerate(chunks):
            units[row, : len(chunk)] = torch.from_numpy(np.asarray(chunk, np.int64))
        device = self.stages.device
        vocoded = self.stages.vocode(units.to(device), [len(c) for c in chunks], langs, speakers, speeds=speeds)
        return dataclasses.replace(vocoded, waves=self.stages.mark_waves(vocoded.waves))

    def _speech(
        self,
        enc: torch.Tensor,
        mask: torch.Tensor,
        rows: Sequence[tuple[int, SimulTarget | None, str]],
        inputs: Sequence[ModelInput],
        committed: Sequence[tuple[int, ...]],
        seconds: Sequence[float],
        values: Sequence[tuple[float, ...]],
    ) -> list[tuple[int, tuple[int, ...], np.ndarray | None, tuple[WordTiming, ...], float | None]]:
        """Per row: the units of t2u over its committed text, and its chunk's units, waveform,
        (``ModelInput.words``) words in it, each with its tokens' mean log-probability (``values``:
        each committed token's; empty: not known), and the rate it was made at (its step's speed).
        With the profanity filter, the committed text spoken is its tokens without the listed words
        (and the tokens spoken before counted among those)."""
        out: list[tuple[int, tuple[int, ...], np.ndarray | None, tuple[WordTiming, ...], float | None]]
        out = [(0, (), None, (), None)] * len(rows)
        # row -> (its tokens spoken, spoken_tokens among them, their values)
        spoken: dict[int, tuple[tuple[int, ...], int, tuple[float, ...]]] = {}
        for i, (k, target, lang) in enumerate(rows):
            if target is not None and inputs[k].speech and committed[i]:
                spoken[i] = self._speakable(committed[i], lang, inputs[k], target.spoken_tokens, values[i])
        want = [i for i, (said, _, _) in spoken.items() if said]
        if not want:
            return out
        committed = [spoken[i][0] if i in spoken else c for i, c in enumerate(committed)]
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
            out[i] = (len(s.units), (), None, (), None)
            if speak_now(len(s.units) - start, req.min_units, req.final):
                chunks.append((i, s.units[start:]))
                ends[i] = s.token_ends
        if chunks:
            vocoded = self.vocode(
                [u for _, u in chunks],
                [rows[i][2] for i, _ in chunks],
                [inputs[rows[i][0]].speaker_id for i, _ in chunks],
                [inputs[rows[i][0]].speed for i, _ in chunks],
            )
            frames = vocoded.frames  # per chunk
            for n, ((i, units), wave) in enumerate(zip(chunks, vocoded.waves, strict=True)):
                k, target, _ = rows[i]
                assert target is not None
                words: tuple[WordTiming, ...] = ()
                if inputs[k].words:
                    said, first, lps = spoken[i]
                    words = self.timer.chunk(said, ends[i], first, target.spoken_units, frames[n], len(wave))
                    words = scored_chunk_words(self.timer, said, lps, first, words)
                rate = vocoded.rates[n] if n < len(vocoded.rates) else inputs[k].speed
                out[i] = (out[i][0], tuple(int(u) for u in units), wave, words, rate)
        return out

    def _speakable(
        self, tokens: tuple[int, ...], language: str, item: ModelInput, before: int, values: tuple[float, ...]
    ) -> tuple[tuple[int, ...], int, tuple[float, ...]]:
        """``tokens`` without those of listed words (``item.profanity`` on; model/finish/profanity.py),
        how many of the first ``before`` tokens are kept, and the kept tokens' ``values`` (one per
        token; empty: not known)."""
        if item.profanity is Profanity.OFF:
            return tokens, before, values
        keep = profanity.token_keep(tokens, language, self.text)
        kept = tuple(v for v, k in zip(values, keep, strict=True) if k) if values else ()
        return tuple(t for t, k in zip(tokens, keep, strict=True) if k), sum(keep[:before]), kept

    def _chars(self, token: int) -> int:
        """Characters t2u gives a token: ``SeamlessM4Tv2Model._get_char_input_ids``'s rule."""
        return 1 if token == self._unk else len(str(self._id_to_text.get(str(token))))


def _request(item: ModelInput) -> SimulRequest:
    if item.simul is None:
        raise ValueError("not a simultaneous step: ModelInput.simul is None")
    return item.simul


def _committed_values(
    target: SimulTarget, ids: tuple[int, ...], done: tuple[int, ...], values: tuple[float, ...] | None
) -> tuple[tuple[float, ...], float | None]:
    """A target row's confidence: each of ``done``'s (the committed tokens after the
    step) log-probability, the target's own for those it had committed (from the steps that chose
    them: the forced prefix is not chosen here) and this step's for the rest; and the value of the
    end of text the decode chose after ``ids`` (None: it stopped at its cap). Empty and None where
    the values are not known (the decode kept none, or the target came without its own)."""
    prefix = len(target.committed)
    if values is None or len(target.logprobs) != prefix or len(values) < len(ids) - prefix:
        return (), None
    end = values[len(ids) - prefix] if len(values) > len(ids) - prefix else None
    return (*target.logprobs, *values[: len(done) - prefix]), end


def _checked_commit(target: SimulTarget, hypothesis: tuple[int, ...], new: Sequence[int] | None) -> tuple[int, ...]:
    """A policy's commit, checked: it may only extend what is committed, within the hypothesis."""
    if new is None:
        return target.committed
    commit = tuple(new)
    if commit[: len(target.committed)] != target.committed or hypothesis[: len(commit)] != commit:
        raise ValueError("a commit must extend the committed tokens and be a prefix of the hypothesis")
    return commit
