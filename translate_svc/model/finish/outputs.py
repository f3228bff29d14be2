"""After the decode: a plan's decoded text rows made into each input's ``ModelOutput``.

``SeamlessRunner`` (model/runner.py) runs a batch in three parts: the **prefill** (inputs to encoder
outputs, their mask, language identification and the ``RowPlan``: a ``Prefilled``), the **decode**
of the plan's rows (``generate``, or our own loop: model/decode/batch.py ``Decoded``), and ``finish``, here:
the profanity filter, text-to-unit and the vocoder for the target rows that want speech, word
timings, confidence, and the outputs gathered per input. The stepping decoder
(model/stepping.py) decodes rows of many batches in one running loop and finishes each job here
as its rows end, so the three parts are separate calls.

``finish`` is a pipeline of one record per decoded row (``FinishRow``, as TGI's router carries one
``Generation`` per row): each stage reads the rows' records and fills its own fields (the text
filtered, the speech, the word timings), and the last gathers each input's rows into its output.
A new output feature is a field and a stage, never another table keyed by row index. The records
hold references to what the decode and the stages made (no copies); the device work is the
batch's: one upload per row selection, and one host read per speech group that keeps units.

Model thread only (or the finish stage's one worker thread, with its own tokenizer and timer):
the records live inside one call and are never shared.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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
from translate_svc.model_api.rows import DecodeRow
from translate_svc.types import Profanity, SpokenUnits, WordTiming


@dataclass(slots=True, eq=False)
class FinishRow:
    """One decoded row on its way to its input's output: what the decode gave it (``index``,
    ``input``, ``plan``, ``heard``, ``logprobs``, ``text``) and what each stage of ``finish`` adds.

    Mutable on purpose: each stage writes its own fields in place, so no stage copies a row, and a
    row never leaves the ``finish`` call that made it (one thread)."""

    #: its position in the plan, and so in the decode's sequences and the prefill's rows
    index: int
    #: its input (``plan.item``'s)
    input: ModelInput
    plan: DecodeRow
    #: its tokens as decoded, on the host, unpadded: what the transcript's words are timed on
    heard: tuple[int, ...]
    #: its chosen tokens' log-probabilities (confidence); empty where the decode kept none
    logprobs: Sequence[float]
    #: its text (the profanity filter's, after ``_filter``)
    text: str
    #: its tokens without the listed words (``_filter``): what its speech and its words are made from
    spoken: tuple[int, ...] = ()
    #: the positions of ``heard`` the profanity filter took out; None: none
    cut: set[int] | None = None
    #: its speech (``_speak``); None: not spoken
    wave: np.ndarray | None = None
    #: its speech's rate as made (its speed, or its fit's choice); None: the vocoder did not tell
    rate: float | None = None
    #: its speech again at other rates (``ModelInput.renditions``): (rate, waveform) each
    again: list[tuple[float, np.ndarray]] = field(default_factory=list)
    #: the words of each rendition, by rate
    again_words: dict[float, tuple[WordTiming, ...]] = field(default_factory=dict)
    #: its units, where its input keeps them (``ModelInput.keep_units``)
    units: SpokenUnits | None = None
    #: its words in its speech, where its speech group is timed
    words: tuple[WordTiming, ...] | None = None
    #: a transcript row's words on the input (``_time_transcripts``)
    heard_words: tuple[WordTiming, ...] | None = None

    @property
    def language(self) -> str:
        return self.plan.language


@dataclass(frozen=True, slots=True)
class _Batch:
    """What every stage of one ``finish`` call reads and none writes: the stages, the word timer
    (asked for only where a row wants words), this thread's tokenizer, and the batch's tensors."""

    stages: SeamlessStages
    timer: Callable[[], WordTimer]
    tokenizer: Any
    prefilled: Prefilled
    decoded: Decoded
    pad: Any  # the generation config's pad token id

    @property
    def text_input(self) -> bool:
        return self.prefilled.said is not None


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
    batch = _Batch(stages, timer, tokenizer, prefilled, decoded, stages.model.generation_config.pad_token_id)
    rows = _read(batch, inputs)
    spoken = _filter(batch, rows)
    speech_ms = _speak(batch, rows, spoken)
    _time_transcripts(batch, rows)
    return _gather(batch, inputs, rows, speech_ms)


def _read(batch: _Batch, inputs: Sequence[ModelInput]) -> list[FinishRow]:
    """The plan's rows as records: their tokens on the host (the loop's, as it read them; else one
    read of ``generate``'s) and their texts (one ``batch_decode``)."""
    decoded, plan = batch.decoded, batch.prefilled.plan
    host = decoded.tokens or tuple(_unpadded(row, batch.pad) for row in decoded.sequences.tolist())
    texts = batch.tokenizer.batch_decode([list(t) for t in host], skip_special_tokens=True)
    values = decoded.logprobs or tuple(() for _ in plan.rows)
    return [
        FinishRow(r, inputs[row.item], row, host[r], values[r], text)
        for r, (row, text) in enumerate(zip(plan.rows, texts, strict=True))
    ]


def _filter(batch: _Batch, rows: list[FinishRow]) -> torch.Tensor:
    """The profanity filter: each filtered row's text filtered, and its tokens without the listed
    words (model/finish/profanity.py), in mask and remove modes alike. Returns the sequences its
    speech is made from (the decode's own where no row was cut)."""
    filtered = [row.input.profanity is not Profanity.OFF for row in rows]
    sequences, host, cut = _speakable(
        batch.tokenizer,
        batch.decoded.sequences,
        [row.heard for row in rows],
        [row.language for row in rows],
        filtered,
        batch.pad,
    )
    for row, tokens, f in zip(rows, host, filtered, strict=True):
        row.spoken, row.cut = tokens, cut.get(row.index)
        if f:
            row.text = profanity.apply(row.text, row.language, row.input.profanity)
    return sequences


def _speak(batch: _Batch, rows: list[FinishRow], sequences: torch.Tensor) -> float:
    """Speech for the target rows that asked for it and have at least one text token, one speech
    group at a time, then every row's speech and renditions watermarked in one batch (``_mark``);
    the time it took (ms; 0 where no row speaks)."""
    stages = batch.stages
    gen = stages.model.generation_config
    speaking = [row for row in rows if row.input.speech and row.plan.target and _has_text(row.spoken, gen)]
    started = time.perf_counter()
    # exact rows: each row's text-to-unit alone (its own padding), as generate runs it
    groups = [[row] for row in speaking] if stages.exact_rows else [speaking]
    for group in (g for g in groups if g):
        _speak_group(batch, group, sequences)
    _mark(batch.stages, speaking)
    return (time.perf_counter() - started) * 1000 if speaking else 0.0


def _speak_group(batch: _Batch, group: list[FinishRow], sequences: torch.Tensor) -> None:
    """One text-to-unit and vocoder call for ``group``'s rows (their renditions one more vocoder
    row each): each row's speech, rate, renditions and kept units; its words where one asks."""
    stages, decoded, prefilled = batch.stages, batch.decoded, batch.prefilled
    sel = upload([row.index for row in group], torch.long, stages.device)
    width = max(len(row.spoken) for row in group)  # as generate writes the group alone: no pad column
    seqs = sequences.index_select(0, sel)[:, :width]
    # the decode's own hidden states where it kept them (the loop): t2u reads them as they are;
    # a group with a row cut by the profanity filter has t2u re-read the text decoder over
    # the cut sequences (the kept states are of the uncut ones)
    kept = decoded.states is not None and all(row.cut is None for row in group)
    states = decoded.states.index_select(0, sel)[:, : seqs.shape[1] - 1] if kept else None  # type: ignore[union-attr]
    # each rendition of the group's rows: one more vocoder row of the same units
    again = [(i, rate) for i, row in enumerate(group) for lang, rate in row.input.renditions if lang == row.language]
    out = stages.speech(
        prefilled.row_enc.index_select(0, sel),
        prefilled.row_mask.index_select(0, sel),
        seqs,
        [row.language for row in group],
        [row.input.voice(row.language) for row in group],
        [row.input.input_seconds for row in group],
        text_input=batch.text_input,
        text_states=states,
        tokens=[row.spoken for row in group],
        speeds=[row.input.rate(row.language) for row in group],
        fits=[row.input.fit for row in group],
        again=again,
    )  # unmarked waves: ``_speak`` marks every group's in one batch
    n = len(group)
    for row, wave in zip(group, out.waves[:n], strict=True):
        row.wave = wave
    if out.vocoded.rates:  # (a vocoder stand-in in a test may not tell them)
        for row, rate in zip(group, out.vocoded.rates[:n], strict=True):
            row.rate = rate
    for (i, rate), wave in zip(again, out.waves[n:], strict=True):
        group[i].again.append((rate, wave))
    keeping = [i for i, row in enumerate(group) if row.input.keep_units]
    if keeping:
        _keep_units(out, group, keeping)
    if any(row.input.words for row in group):
        _time_speech(batch, group, again, seqs, out, width)


def _mark(stages: SeamlessStages, rows: list[FinishRow]) -> None:
    """The rows' speech and renditions watermarked in place, as one batch (``SeamlessStages.mark_waves``):
    what the word timings read (lengths and frames) stays as it was."""
    speech = [(row, wave) for row in rows if (wave := row.wave) is not None]
    waves = [wave for _, wave in speech] + [wave for row in rows for _, wave in row.again]
    marked = iter(stages.mark_waves(waves))
    for row, _ in speech:
        row.wave = next(marked)
    for row in rows:
        row.again = [(rate, next(marked)) for rate, _ in row.again]


def _time_speech(
    batch: _Batch,
    group: list[FinishRow],
    again: list[tuple[int, float]],
    seqs: torch.Tensor,
    out: Speech,
    width: int,
) -> None:
    """The words of every row of a speech group in its speech (and in each rendition's), each
    with its tokens' confidence (``seqs``: the group's text rows as spoken, ``width`` long)."""
    n = len(group)
    spoken: list[tuple[FinishRow, float | None]] = [(row, None) for row in group]
    spoken += [(group[i], rate) for i, rate in again]
    if again:  # the text rows in the speech's order (``SeamlessStages.speech``'s ``again``)
        seqs = seqs.index_select(0, upload([*range(n), *(i for i, _ in again)], torch.long, batch.stages.device))
    timing = batch.timer().speech(seqs, out.waves, out.units.char_durations, out.vocoded.frames)
    for (row, at), timed_words in zip(spoken, timing, strict=True):
        padded = _padded(row.spoken, width, batch.pad)
        scored = scored_words(batch.timer(), padded, _kept(row.logprobs, row.cut), timed_words, timed=True)
        if at is None:
            row.words = scored
        else:
            row.again_words[at] = scored


def _keep_units(out: Speech, group: list[FinishRow], keeping: Sequence[int]) -> None:
    """The units of a speech group's rows that keep them (``keeping``: positions in ``group``), on
    the host (one read of the group's units and durations: small)."""
    sel = upload(list(keeping), torch.long, out.units.units.device)
    units, durations = (
        a.astype(np.int64)
        for a in host_read([out.units.units.index_select(0, sel), out.units.char_durations.index_select(0, sel)])
    )
    for j, i in enumerate(keeping):
        row = group[i]
        row.units = SpokenUnits(
            row.language,
            row.input.voice(row.language),
            units[j, : out.units.counts[i]].copy(),
            durations[j].copy(),
            tuple(row.spoken),
            row.input.rate(row.language) if row.rate is None else row.rate,
        )


def _time_transcripts(batch: _Batch, rows: list[FinishRow]) -> None:
    """The words of each transcript row whose input asks for words, on the input (what was said:
    the decode's own tokens), each with its confidence, filtered. None for text inputs."""
    heard = [row for row in rows if row.input.words and row.plan.transcript and not batch.text_input]
    if not heard:
        return
    prefilled, sequences = batch.prefilled, batch.decoded.sequences
    sel = upload([row.index for row in heard], torch.long, batch.stages.device)
    got = batch.timer().transcript(
        prefilled.row_enc.index_select(0, sel),
        prefilled.row_mask.index_select(0, sel),
        sequences.index_select(0, sel),
        [row.input.input_seconds for row in heard],
    )
    width = sequences.shape[1]
    for row, words in zip(heard, got, strict=True):
        scored = scored_words(batch.timer(), _padded(row.heard, width, batch.pad), row.logprobs, words, timed=False)
        row.heard_words = profanity.words_of(scored, row.language, row.input.profanity)


def _gather(batch: _Batch, inputs: Sequence[ModelInput], rows: list[FinishRow], speech_ms: float) -> list[ModelOutput]:
    """Each input's output from its rows (in plan order)."""
    mine: list[list[FinishRow]] = [[] for _ in inputs]
    for row in rows:
        mine[row.plan.item].append(row)
    return [_output(batch, k, item, mine[k], speech_ms) for k, item in enumerate(inputs)]


def _output(batch: _Batch, k: int, item: ModelInput, mine: list[FinishRow], speech_ms: float) -> ModelOutput:
    """Input ``k``'s output: its transcript row's text, words and confidence, and per target row
    its text, speech, rate, renditions, units, words and confidence."""
    targets = [row for row in mine if row.plan.target]
    heard = next((row for row in mine if row.plan.transcript), None)
    return ModelOutput(
        transcript=None if heard is None else heard.text,
        texts={row.language: row.text for row in targets},
        waveforms={
            row.language: np.zeros(0, np.float32) if row.wave is None else row.wave for row in targets if item.speech
        },
        detected=batch.prefilled.detected.get(k),
        spoken=batch.prefilled.plan.spoken[k],
        speech_ms=speech_ms,
        language_id_ms=batch.prefilled.language_id_ms,
        words={row.language: row.words for row in targets if row.words is not None},
        transcript_words=() if heard is None or heard.heard_words is None else heard.heard_words,
        transcript_logprob=None if heard is None else mean_logprob(heard.logprobs),
        transcript_tokens=(
            _tokens(batch.tokenizer, heard.heard, heard.logprobs)
            if heard is not None and item.profanity is Profanity.OFF
            else ()
        ),
        logprobs={row.language: lp for row in targets if (lp := mean_logprob(row.logprobs)) is not None},
        speech_rates={row.language: row.rate for row in targets if row.rate is not None},
        renditions=tuple(
            Rendition(row.language, rate, wave, row.again_words.get(rate, ()))
            for row in targets
            for rate, wave in row.again
        ),
        units=tuple(row.units for row in targets if row.units is not None),
    )


def _tokens(tokenizer: Any, seq: Sequence[int], values: Sequence[float]) -> tuple[tuple[str, float], ...]:
    """A row's chosen text tokens (special tokens left out) as text, each with its value. An id
    the tokenizer has no piece for (a model whose output vocabulary is larger than its tokenizer's,
    as the full-size random checkpoint's) reads as the unknown token, never a failed finish."""
    special = set(tokenizer.all_special_ids)
    ids = list(seq[2 : 2 + len(values)])
    pieces = tokenizer.convert_ids_to_tokens(ids)
    unknown = tokenizer.unk_token or ""
    return tuple(
        ((piece if piece is not None else unknown).replace(WORD_START, " "), v)
        for t, piece, v in zip(ids, pieces, values, strict=True)
        if t not in special
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
