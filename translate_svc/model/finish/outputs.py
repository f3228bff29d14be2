"""After the decode: a plan's decoded text rows made into each input's ``ModelOutput`` (issue 70).

``SeamlessRunner`` (model/runner.py) runs a batch in three parts: the **prefill** (inputs to encoder
outputs, their mask, language identification and the ``RowPlan``: a ``Prefilled``), the **decode**
of the plan's rows (``generate``, or our own loop: model/decode/batch.py ``Decoded``), and ``finish``, here:
the profanity filter, text-to-unit and the vocoder for the target rows that want speech, word
timings, confidence, and the outputs gathered per input. The stepping decoder
(model/stepping.py) decodes rows of many batches in one running loop and finishes each job here
as its rows end, so the three parts are separate calls.

Model thread only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from translate_svc.model.capture import host_read, upload
from translate_svc.model.decode.batch import Decoded
from translate_svc.model.finish import profanity
from translate_svc.model.finish.aligner import WordTimer
from translate_svc.model.finish.confidence import mean_logprob, scored_words
from translate_svc.model.finish.timings import WORD_START
from translate_svc.model.prefill import Prefilled
from translate_svc.model.stages.seamless import SeamlessStages
from translate_svc.model.stages.text_to_unit import Speech
from translate_svc.model_api.requests import ModelInput, ModelOutput, Rendition
from translate_svc.types import Profanity, SpokenUnits, WordTiming


def finish(
    stages: SeamlessStages,
    timer: Callable[[], WordTimer],
    inputs: Sequence[ModelInput],
    prefilled: Prefilled,
    decoded: Decoded,
    *,
    tokenizer: Any = None,
) -> list[ModelOutput]:
    """The decoded rows (``decoded``: the plan's rows, in order) made into each input's output:
    the profanity filter, speech for the target rows that want it, word timings, confidence.
    ``timer``: the word timer, asked for only where a row wants words. ``tokenizer``: the one
    this thread uses (None: the stages' processor's; another thread passes a copy of its own)."""
    tokenizer = stages.processor.tokenizer if tokenizer is None else tokenizer
    plan, detected, language_id_ms = prefilled.plan, prefilled.detected, prefilled.language_id_ms
    row_enc, row_mask = prefilled.row_enc, prefilled.row_mask
    text_input = prefilled.said is not None
    rows = [(row.item, row.language) for row in plan.rows]
    seconds = [i.input_seconds for i in inputs]
    sequences = decoded.sequences
    gen = stages.model.generation_config
    pad = gen.pad_token_id
    # the rows' tokens on the host: the loop's, as it read them; else one read of ``generate``'s
    host: Sequence[tuple[int, ...]] = decoded.tokens or tuple(_unpadded(row, pad) for row in sequences.tolist())
    texts = tokenizer.batch_decode([list(t) for t in host], skip_special_tokens=True)
    # the profanity filter: each row's text filtered, and its speech made from its tokens
    # without the listed words (model/finish/profanity.py), in mask and remove modes alike
    filtered = [inputs[k].profanity is not Profanity.OFF for k, _ in rows]
    heard_seqs, heard = sequences, host  # the transcript's words are timed on what was said
    sequences, host, drops = _speakable(tokenizer, sequences, host, [lang for _, lang in rows], filtered, pad)
    texts = [
        profanity.apply(t, lang, inputs[k].profanity) if f else t
        for t, (k, lang), f in zip(texts, rows, filtered, strict=True)
    ]

    # Speech for target rows that asked for it and have at least one text token.
    speech_rows = [
        r for r, (k, lang) in enumerate(rows)
        if inputs[k].speech and plan.rows[r].target and _has_text(host[r], gen)
    ]  # fmt: skip
    waves: dict[int, np.ndarray] = {}
    rates: dict[int, float] = {}  # each spoken row's rate as made (its speed, or its fit's choice)
    # renditions (a row's speech again at another rate): row -> (rate, waveform) each; (row, rate) -> words
    again_waves: dict[int, list[tuple[float, np.ndarray]]] = {}
    again_words: dict[tuple[int, float], tuple[WordTiming, ...]] = {}
    # each spoken row's units, where its input keeps them (``ModelInput.keep_units``): row -> units
    units_of: dict[int, SpokenUnits] = {}
    # each row's chosen tokens' log-probabilities (confidence, issue 72): none where not kept
    token_lps = decoded.logprobs or tuple(() for _ in rows)
    words: dict[int, tuple[WordTiming, ...]] = {}
    transcript_words: dict[int, tuple[WordTiming, ...]] = {}
    t_speech = time.perf_counter()
    # exact rows: each row's text-to-unit alone (its own padding), as generate runs it
    groups = [[r] for r in speech_rows] if stages.exact_rows else [speech_rows]
    for group in (g for g in groups if g):
        timed = any(inputs[rows[r][0]].words for r in group)
        sel = upload(group, torch.long, stages.device)
        width = max(len(host[r]) for r in group)  # as generate writes the group alone: no pad column
        seqs = sequences.index_select(0, sel)[:, :width]
        # the decode's own hidden states where it kept them (the loop): t2u reads them as they are;
        # a group with a row cut by the profanity filter has t2u re-read the text decoder over
        # the cut sequences (the kept states are of the uncut ones)
        kept = decoded.states is not None and not drops.keys() & set(group)
        states = decoded.states.index_select(0, sel)[:, : seqs.shape[1] - 1] if kept else None  # type: ignore[union-attr]
        # each rendition of the group's rows: one more vocoder row of the same units
        again = [
            (i, rate) for i, r in enumerate(group) for lang, rate in inputs[rows[r][0]].renditions if lang == rows[r][1]
        ]
        out = stages.speech(
            row_enc.index_select(0, sel),
            row_mask.index_select(0, sel),
            seqs,
            [rows[r][1] for r in group],
            [inputs[rows[r][0]].speaker_id for r in group],
            [seconds[rows[r][0]] for r in group],
            text_input=text_input,
            text_states=states,
            tokens=[host[r] for r in group],
            speeds=[inputs[rows[r][0]].speed for r in group],
            fits=[inputs[rows[r][0]].fit for r in group],
            again=again,
        )
        n = len(group)
        waves.update(zip(group, out.waves[:n], strict=True))
        if out.vocoded.rates:  # (a vocoder stand-in in a test may not tell them)
            rates.update(zip(group, out.vocoded.rates[:n], strict=True))
        for (i, rate), w in zip(again, out.waves[n:], strict=True):
            again_waves.setdefault(group[i], []).append((rate, w))
        keeping = [i for i, r in enumerate(group) if inputs[rows[r][0]].keep_units]
        if keeping:
            units_of.update(_kept_units(out, group, keeping, rows, inputs, host, rates))
        if timed:
            spoken: list[tuple[int, float | None]] = [(r, None) for r in group]
            spoken += [(group[i], rate) for i, rate in again]
            if again:  # the text rows in the speech's order (``SeamlessStages.speech``'s ``again``)
                seqs = seqs.index_select(0, upload([*range(n), *(i for i, _ in again)], torch.long, stages.device))
            timing = timer().speech(seqs, out.waves, out.units.char_durations, out.vocoded.frames)
            for (r, at), timed_words in zip(spoken, timing, strict=True):
                scored = scored_words(
                    timer(), _padded(host[r], width, pad), _kept(token_lps[r], drops.get(r)), timed_words, timed=True
                )
                if at is None:
                    words[r] = scored
                else:
                    again_words[(r, at)] = scored
    speech_ms = (time.perf_counter() - t_speech) * 1000 if speech_rows else 0.0
    timed_heard = [r for r, row in enumerate(plan.rows) if inputs[row.item].words and row.transcript and not text_input]
    if timed_heard:
        sel = upload(timed_heard, torch.long, stages.device)
        got = timer().transcript(
            row_enc.index_select(0, sel),
            row_mask.index_select(0, sel),
            heard_seqs.index_select(0, sel),
            [seconds[rows[r][0]] for r in timed_heard],
        )
        width = heard_seqs.shape[1]
        transcript_words = {
            rows[r][0]: profanity.words_of(
                scored_words(timer(), _padded(heard[r], width, pad), token_lps[r], w, timed=False),
                rows[r][1],
                inputs[rows[r][0]].profanity,
            )
            for r, w in zip(timed_heard, got, strict=True)
        }

    outputs = []
    for k, item in enumerate(inputs):
        mine = [(r, row) for r, row in plan.of(k)]
        outputs.append(
            ModelOutput(
                transcript=next((texts[r] for r, row in mine if row.transcript), None),
                texts={row.language: texts[r] for r, row in mine if row.target},
                waveforms={
                    row.language: waves.get(r, np.zeros(0, np.float32)) for r, row in mine if item.speech and row.target
                },
                detected=detected.get(k),
                speech_ms=speech_ms,
                language_id_ms=language_id_ms,
                words={row.language: words[r] for r, row in mine if r in words and row.target},
                transcript_words=transcript_words.get(k, ()),
                transcript_logprob=next((mean_logprob(token_lps[r]) for r, row in mine if row.transcript), None),
                transcript_tokens=next(
                    (
                        _tokens(tokenizer, heard[r], token_lps[r])
                        for r, row in mine
                        if row.transcript and item.profanity is Profanity.OFF
                    ),
                    (),
                ),
                logprobs={
                    row.language: lp for r, row in mine if row.target and (lp := mean_logprob(token_lps[r])) is not None
                },
                speech_rates={row.language: rates[r] for r, row in mine if r in rates and row.target},
                renditions=tuple(
                    Rendition(row.language, rate, wave, again_words.get((r, rate), ()))
                    for r, row in mine
                    if row.target
                    for rate, wave in again_waves.get(r, ())
                ),
                units=tuple(units_of[r] for r, row in mine if r in units_of and row.target),
            )
        )
    return outputs


def _kept_units(
    out: Speech,
    group: Sequence[int],
    keeping: Sequence[int],
    rows: Sequence[tuple[int, str]],
    inputs: Sequence[ModelInput],
    host: Sequence[tuple[int, ...]],
    rates: dict[int, float],
) -> dict[int, SpokenUnits]:
    """The units of a speech group's rows that keep them (``keeping``: positions in ``group``), on
    the host (one read of the group's units and durations: small)."""
    sel = upload(list(keeping), torch.long, out.units.units.device)
    units, durations = (
        a.astype(np.int64)
        for a in host_read([out.units.units.index_select(0, sel), out.units.char_durations.index_select(0, sel)])
    )
    kept = {}
    for j, i in enumerate(keeping):
        r = group[i]
        item = inputs[rows[r][0]]
        count = out.units.counts[i]
        kept[r] = SpokenUnits(
            rows[r][1],
            item.speaker_id,
            units[j, :count].copy(),
            durations[j].copy(),
            tuple(host[r]),
            rates.get(r, item.speed),
        )
    return kept


def _tokens(tokenizer: Any, seq: Sequence[int], values: Sequence[float]) -> tuple[tuple[str, float], ...]:
    """A row's chosen text tokens (special tokens left out) as text, each with its value."""
    special = set(tokenizer.all_special_ids)
    ids = list(seq[2 : 2 + len(values)])
    pieces = tokenizer.convert_ids_to_tokens(ids)
    return tuple(
        (piece.replace(WORD_START, " "), v) for t, piece, v in zip(ids, pieces, values, strict=True) if t not in special
    )


def _speakable(
    tokenizer: Any,
    sequences: torch.Tensor,
    host: Sequence[tuple[int, ...]],
    languages: list[str],
    filtered: list[bool],
    pad: int,
) -> tuple[torch.Tensor, Sequence[tuple[int, ...]], dict[int, set[int]]]:
    """``sequences`` (and ``host``, the same rows on the host, unpadded) with the tokens of each
    filtered row's listed words taken out (the rest moved left, padded at the end): what t2u and
    the speech's word timings are made from; and the rows cut, each with the positions taken out.
    Unchanged where no row says a listed word."""
    if not any(filtered):
        return sequences, host, {}
    special = set(tokenizer.all_special_ids)
    rows: list[tuple[int, ...]] = []
    cut: dict[int, set[int]] = {}
    for r, seq in enumerate(host):
        if filtered[r]:
            body = [i for i, t in enumerate(seq) if t not in special]
            tokens = [seq[i] for i in body]
            keep = profanity.token_keep(
                tokens, languages[r], lambda ids: tokenizer.decode(ids, skip_special_tokens=True)
            )
            drop = {i for i, k in zip(body, keep, strict=True) if not k}
            if drop:
                cut[r] = drop
                seq = tuple(t for i, t in enumerate(seq) if i not in drop)
        rows.append(seq)
    if not cut:
        return sequences, host, cut
    width = sequences.shape[1]
    padded = [_padded(seq, width, pad) for seq in rows]
    return upload(padded, torch.long, sequences.device), rows, cut


def _padded(seq: Sequence[int], width: int, pad: int) -> list[int]:
    return [*seq, *[pad] * (width - len(seq))]


def _unpadded(row: Sequence[int], pad: int) -> tuple[int, ...]:
    """A right-padded row without its padding (``generate``'s rows: padding only at the end)."""
    end = len(row)
    while end and row[end - 1] == pad:
        end -= 1
    return tuple(row[:end])


def _has_text(seq: Sequence[int], gen) -> bool:  # type: ignore[no-untyped-def]
    """True if the row has any token after ``[start, lang]`` before EOS/padding."""
    return len(seq) > 2 and seq[2] not in (gen.eos_token_id, gen.pad_token_id)


def _kept(values: Sequence[float], drop: set[int] | None) -> list[float]:
    """A row's token values without the positions the profanity filter took out of its sequence
    (``drop``: sequence positions; the chosen tokens start after ``[start, language]``)."""
    return [v for i, v in enumerate(values) if not drop or i + 2 not in drop]
