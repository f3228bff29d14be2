"""Kept units spoken again at other rates (``ModelInput.respeak``, ``WorkKind.RESPEAK``): the
vocoder alone.

A room's listener who chose a speaking rate hears each speaker's speech made again from the units
its segment's text-to-unit pass gave (``ModelOutput.units``, kept by ``finish``): no encoder, no
decoder row and no second text-to-unit pass, only one vocoder row per (target, rate), with each
row's frames per unit scaled by its rate as any spoken row's are (model/stages/vocoder.py). The
engine runs these jobs as optional work, after every final (engine/scheduler.py), so what
listeners choose never delays a speaker's own results. Word timings, where asked, come from the
kept per-character durations and the new frames per unit, exactly as ``finish`` times a row.

Model thread only, like the stages it runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from translate_svc.model.capture import upload
from translate_svc.model.finish.aligner import WordTimer
from translate_svc.model.stages.seamless import SeamlessStages
from translate_svc.model.stages.vocoder import Vocoded
from translate_svc.model_api.requests import ModelInput, ModelOutput, Rendition
from translate_svc.types import SpokenUnits, WordTiming


def respeak(stages: SeamlessStages, timer: Callable[[], WordTimer], inputs: Sequence[ModelInput]) -> list[ModelOutput]:
    """Each input's renditions (``ModelOutput.renditions``), every row of the batch in one vocoder
    call; ``timer``: the word timer, asked for only where an input wants words."""
    started = time.perf_counter()
    rows: list[tuple[int, SpokenUnits, float]] = [
        (k, u, rate)
        for k, item in enumerate(inputs)
        for lang, rate in item.renditions
        for u in item.respeak
        if u.language == lang
    ]
    pad = stages.model.config.t2u_pad_token_id  # what text-to-unit pads units with (the vocoder masks it)
    assert pad is not None
    width = max(len(u.units) for _, u, _ in rows)
    units = np.full((len(rows), width), pad, np.int64)
    for r, (_, u, _) in enumerate(rows):
        units[r, : len(u.units)] = u.units
    vocoded = stages.vocode(
        upload(units, torch.long, stages.device),
        [len(u.units) for _, u, _ in rows],
        [u.language for _, u, _ in rows],
        [u.speaker_id for _, u, _ in rows],
        speeds=[rate for _, _, rate in rows],
    )
    waves = stages.mark_waves(vocoded.waves)  # the watermark, before anything encodes them
    words: dict[int, tuple[WordTiming, ...]] = {}
    timed = [r for r, (k, _, _) in enumerate(rows) if inputs[k].words]
    if timed:
        words = dict(zip(timed, _timings(stages, timer(), [rows[r][1] for r in timed], vocoded, timed), strict=True))
    speech_ms = (time.perf_counter() - started) * 1000
    return [
        ModelOutput(
            transcript=None,
            texts={},
            speech_ms=speech_ms,
            renditions=tuple(
                Rendition(u.language, rate, waves[r], words.get(r, ()))
                for r, (at, u, rate) in enumerate(rows)
                if at == k
            ),
        )
        for k in range(len(inputs))
    ]


def _timings(
    stages: SeamlessStages, timer: WordTimer, spoken: Sequence[SpokenUnits], vocoded: Vocoded, rows: Sequence[int]
) -> list[tuple[WordTiming, ...]]:
    """The words of ``rows`` (of the vocoder call ``vocoded``) in their new speech: the kept text
    tokens and per-character durations, and this call's frames per unit (``WordTimer.speech``)."""
    pad = int(stages.model.generation_config.pad_token_id)
    width = max(len(u.tokens) for u in spoken)
    chars = max(len(u.char_durations) for u in spoken)
    seqs = [[*u.tokens, *[pad] * (width - len(u.tokens))] for u in spoken]
    durations = np.zeros((len(spoken), chars), np.int64)
    for i, u in enumerate(spoken):
        durations[i, : len(u.char_durations)] = u.char_durations
    waves = [vocoded.waves[r] for r in rows]
    frames = [vocoded.frames[r] for r in rows]
    return timer.speech(torch.tensor(seqs, dtype=torch.long), waves, torch.from_numpy(durations), frames)
