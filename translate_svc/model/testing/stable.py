"""A stable fake translator: a ``Runner`` whose made-up output has exact, known commit points.

The test checkpoint's random weights do not give stable prefixes, so a simultaneous
policy cannot be tested or benchmarked on them. This runner makes its words up from the length of
the audio, so that:

- the hypothesis of a segment's first ``n`` samples is one word per whole ``WORD_S`` (400 ms) of
  audio, word ``k`` being one token ``WORD_ID + k`` with text ``w<k>``, then one **last word**
  that depends on the exact length (token ``LAST_ID + n``, text ``w<k>~<n>``): the hypothesis of a
  longer prefix of the same audio extends a shorter one's, except that last word;
- a decode forced to start with committed tokens keeps them and goes on with its own words;
- speech is ``SPEECH_S`` (200 ms at 16 kHz: ``SAMPLES_PER_WORD``) of a tone per spoken word,
  ``UNITS_PER_WORD`` units (one per 20 ms), so the audio of a step's chunk is known exactly; a
  segment's kept units (``ModelInput.keep_units``) spoken again at a rate (``respeak``) are the
  same tones, ``1 / rate`` as long;
- word timings (``ModelInput.words``) are as exact: spoken word ``j`` of a speech or chunk is its
  ``[200 j, 200 (j + 1))`` ms, transcript word ``k`` is ``[400 k, 400 (k + 1))`` ms of the input
  (the last word: to the input's end).

Whole segments (``ModelInput.simul`` None) get the same words: every target's text and the
transcript are the hypothesis of the whole segment, and speech is the tone of every word, so a
whole server runs on it (``serve --test-translator stable``). It is a test and benchmark device:
its output is not a translation, the card marks it a test model, and the server refuses it next to
real weights (``app.test_translator_problem``). No torch: it loads in milliseconds.
Thread-safe: no mutable state (``extract_features`` runs beside ``run``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from translate_svc.model.stages.languages import LanguageCatalog
from translate_svc.model.stages.loading import describe_model
from translate_svc.model_api.agreement import AgreementConfig, step_commit
from translate_svc.model_api.requests import (
    DETECTED,
    Features,
    ModelInput,
    ModelOutput,
    Rendition,
    SimulRowOutput,
    SimulTarget,
    WorkKind,
    speak_now,
)
from translate_svc.types import MODEL_SAMPLE_RATE, ModelCard, ModelInfo, SpokenUnits, WordTiming

#: one stable word per this much audio
WORD_S = 0.4
WORD_SAMPLES = int(WORD_S * MODEL_SAMPLE_RATE)
#: speech per word, and its units (one per 20 ms, as SeamlessM4T's 50 units/s)
SPEECH_S = 0.2
SAMPLES_PER_WORD = int(SPEECH_S * MODEL_SAMPLE_RATE)
UNITS_PER_WORD = 10
#: token ids: stable word k is WORD_ID + k; the last word of an n-sample hypothesis is LAST_ID + n
WORD_ID = 1000
LAST_ID = 1_000_000
NAME = "translate-svc stable test translator (made-up output)"


def hypothesis(samples: int) -> tuple[int, ...]:
    """The token ids (one per word) said for the first ``samples`` samples of any audio."""
    if samples <= 0:
        return ()
    return (*range(WORD_ID, WORD_ID + samples // WORD_SAMPLES), LAST_ID + samples)


def word_text(token: int) -> str:
    if token >= LAST_ID:
        n = token - LAST_ID
        return f"w{n // WORD_SAMPLES}~{n}"
    return f"w{token - WORD_ID}"


def text(ids: Sequence[int]) -> str:
    return " ".join(word_text(t) for t in ids)


def word_starts(ids: Sequence[int]) -> tuple[int, ...]:
    """Every token is a word."""
    return tuple(range(len(ids)))


def speech(ids: Sequence[int], rate: float = 1.0) -> np.ndarray:
    """``SAMPLES_PER_WORD`` float32 samples of a tone per token (its pitch from the token); at
    ``rate`` (a respeak's), ``SAMPLES_PER_WORD / rate`` of them, rounded."""
    t = np.arange(round(SAMPLES_PER_WORD / rate), dtype=np.float32) / MODEL_SAMPLE_RATE
    tones = [0.1 * np.sin(2 * np.pi * (200 + 10 * (tok % 50)) * t) for tok in ids]
    return np.concatenate(tones).astype(np.float32) if tones else np.zeros(0, np.float32)


def units(ids: Sequence[int]) -> tuple[int, ...]:
    return tuple(tok % 10_000 for tok in ids for _ in range(UNITS_PER_WORD))


def spoken_words(ids: Sequence[int], rate: float = 1.0) -> tuple[WordTiming, ...]:
    """Each token's word in ``speech(ids, rate)``, ms from its first sample."""
    ms = round(round(SAMPLES_PER_WORD / rate) * 1000 / MODEL_SAMPLE_RATE)
    return tuple(WordTiming(word_text(t), ms * j, ms * (j + 1)) for j, t in enumerate(ids))


def heard_words(samples: int) -> tuple[WordTiming, ...]:
    """Each word of ``hypothesis(samples)`` on the input, ms from its first sample: word ``k``
    from ``400 k`` to the next word's start (the last word: to the input's end)."""
    ms, end = round(WORD_S * 1000), samples * 1000 // MODEL_SAMPLE_RATE
    ids = hypothesis(samples)
    starts = [min(ms * k, end) for k in range(len(ids))]
    return tuple(WordTiming(word_text(t), a, b) for t, a, b in zip(ids, starts, [*starts[1:], end], strict=True))


class StableTranslator:
    """The ``Runner`` (see the module docstring). ``model_dir``: the test checkpoint, whose
    generation config gives the languages and whose identity gives the revision."""

    def __init__(self, model_dir: str | Path) -> None:
        path = Path(model_dir)
        gen = json.loads((path / "generation_config.json").read_text())
        config = json.loads((path / "config.json").read_text())
        catalog = LanguageCatalog.from_generation_config(
            gen["text_decoder_lang_to_code_id"], gen.get("t2u_lang_code_to_id"), gen.get("vocoder_lang_code_to_id")
        )
        info = ModelInfo(NAME, describe_model(path).revision, is_test_model=True)
        self._card = ModelCard(info, tuple(catalog.languages()), int(config.get("vocoder_num_spkrs", 1)))

    @property
    def card(self) -> ModelCard:
        return self._card

    def extract_features(self, audio: np.ndarray) -> Features:
        frames = max(1, len(audio) // 160)
        return Features(np.zeros((frames, 1), np.float32), np.ones(frames, np.int64))

    def run(self, inputs: Sequence[ModelInput]) -> list[ModelOutput]:
        kinds = {WorkKind.RETRANSLATION: self._step, WorkKind.RESPEAK: self._respeak}
        return [kinds.get(item.kind, self._segment)(item) for item in inputs]

    @staticmethod
    def _respeak(item: ModelInput) -> ModelOutput:
        """Kept units spoken again (``ModelInput.respeak``): each token's tone, shorter or longer by
        the rate, its words as exact as ever."""
        kept = {u.language: u for u in item.respeak}
        return ModelOutput(
            transcript=None,
            texts={},
            renditions=tuple(
                Rendition(
                    lang,
                    rate,
                    speech(kept[lang].tokens, rate),
                    spoken_words(kept[lang].tokens, rate) if item.words else (),
                )
                for lang, rate in item.renditions
            ),
        )

    def _segment(self, item: ModelInput) -> ModelOutput:
        ids = hypothesis(len(item.audio))
        said = text(ids)
        heard = item.words and item.transcript_language is not None
        detected = _detected(item)
        # a conversation's language detected is its transcript, not a target (model_api/rows.py)
        targets = item.translated(max(detected, key=detected.__getitem__) if detected else None)
        return ModelOutput(
            transcript=said if item.transcript_language is not None else None,
            texts={lang: said for lang in targets},
            waveforms={lang: speech(ids) for lang in targets} if item.speech else {},
            detected=detected,
            words={lang: spoken_words(ids) for lang in targets} if item.words and item.speech else {},
            transcript_words=heard_words(len(item.audio)) if heard else (),
            units=tuple(_kept(lang, ids, item.voice(lang)) for lang in targets if ids)
            if item.keep_units and item.speech
            else (),
        )

    def _step(self, item: ModelInput) -> ModelOutput:
        req = item.simul
        assert req is not None
        own = hypothesis(len(item.audio))
        config = AgreementConfig(req.agreement, req.hold_last_word)
        rows: dict[str, SimulRowOutput] = {}
        for target in req.targets:
            ids = (*target.committed, *own[len(target.committed) :])  # the committed tokens forced
            done = ids if req.final else step_commit(target.committed, target.recent, ids, word_starts, config)
            rows[target.language] = self._row(target, ids, done, item.speech, req.min_units, req.final, item.words)
        heard = item.words and req.final and item.transcript_language is not None
        return ModelOutput(
            transcript=text(own) if item.transcript_language is not None else None,
            texts={lang: row.committed_text for lang, row in rows.items()},
            detected=_detected(item),
            simul=rows,
            transcript_words=heard_words(len(item.audio)) if heard else (),
        )

    @staticmethod
    def _row(
        target: SimulTarget,
        ids: tuple[int, ...],
        done: tuple[int, ...],
        spoken: bool,
        min_units: int,
        final: bool,
        timed: bool,
    ) -> SimulRowOutput:
        total = UNITS_PER_WORD * len(done) if spoken else 0
        new = done[target.spoken_tokens :]
        say = spoken and speak_now(UNITS_PER_WORD * len(new), min_units, final)
        return SimulRowOutput(
            language=target.language,
            token_ids=ids,
            text=text(ids),
            word_starts=word_starts(ids),
            committed=done,
            committed_text=text(done),
            units_total=total,
            chunk_units=units(new) if say else (),
            chunk=speech(new) if say else None,
            spoken_tokens=len(done) if say else target.spoken_tokens,
            spoken_units=total if say else target.spoken_units,
            chunk_words=spoken_words(new) if say and timed else (),
        )


def _kept(language: str, ids: tuple[int, ...], speaker_id: int) -> SpokenUnits:
    """A spoken target's units as a respeak takes them back (``ModelInput.keep_units``): here its
    tokens are all a respeak needs (one tone each)."""
    return SpokenUnits(
        language,
        speaker_id,
        np.array(units(ids), np.int64),
        np.full(len(ids), UNITS_PER_WORD, np.int64),
        ids,
    )


def _detected(item: ModelInput) -> dict[str, float] | None:
    """Detection, made up as everything else: the first candidate, sure of itself."""
    if item.detect is None:
        return None
    pick = item.detect[0] if item.detect else (item.transcript_language or "eng")
    return {pick if pick != DETECTED else "eng": 1.0}
