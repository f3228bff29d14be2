"""The terms' references, by transformers' own ``generate`` (``reference.py``): a phrase the test
checkpoint says as a whole word (to keep), a glossary entry's forcing built from transformers'
primitives, the translation with a phrase kept, and the server's token bound for a text; what the
KEEP and glossary tests compare every path with."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from transformers import LogitsProcessorList

from tests.support.reference import (
    BiasUntilWritten,
    continuing,
    generated,
    phrase_ids,
    plain_reference,
    reference_text,
    word_count,
    word_occurrences,
)
from translate_svc.model.stages.decoder import TextCap
from translate_svc.model.stages.terms import GLOSSARY_WEIGHT, KEEP_WEIGHT
from translate_svc.model_api.requests import TEXT_CHARS_PER_SECOND
from translate_svc.types import DEFAULT_TERM_WEIGHT


def whole_word_phrase(model_dir: Path, ids: Sequence[int]) -> str | None:
    """The first token of ``ids`` (a decoded row) that is a phrase of its own (the tokenizer writes
    its text as that one token) and stands there as a whole word (the token after it does not
    continue it): a phrase the row says."""
    tokenizer = plain_reference(model_dir).processor.tokenizer
    special = set(tokenizer.all_special_ids)
    for i, token in enumerate(ids):
        phrase: str = tokenizer.decode([token]).strip()
        if token in special or not phrase or phrase_ids(model_dir, phrase) != (token,):
            continue
        if i + 1 == len(ids) or ids[i + 1] not in continuing(tokenizer, phrase):
            return phrase
    return None


def said_phrase(model_dir: Path, spans: list[np.ndarray]) -> tuple[str, int]:
    """A phrase that segment k's plain transcript says as a whole word: a token of it that the
    tokenizer writes for its own text, not continued by the token after it
    (``whole_word_phrase``). Kept, the transcript row boosts it (DEFAULT_TERM_WEIGHT), and greedy
    decoding with one token's logit raised writes what it wrote before up to that token, or writes
    that token sooner. (The first such token of the first segment that has one.)"""
    for k, span in enumerate(spans):
        phrase = whole_word_phrase(model_dir, reference_text(model_dir, span, "eng")[1])
        if phrase:
            return phrase, k
    pytest.fail("no segment's plain transcript says a one-token word: cannot say a kept phrase")


#: the target phrase: letters the test checkpoint's tokenizer has, several tokens (so it is forced)
TRANSLATION = "nube acme"
TARGET = "spa"


def glossary_kwargs(model_dir: Path, times: int) -> dict[str, Any]:
    """``generate``'s text kwargs for the entry, with transformers' own processors (as
    tests/service/test_glossary_paths.py's docstring says); ``times`` 0: none (the plain decode).
    The translation is written as a whole word: counted only where the next token does not
    continue it, and the step after it was written while due, the tokens that would continue it
    are not allowed (issue 57)."""
    if not times:
        return {}
    ids = phrase_ids(model_dir, TRANSLATION)
    tokenizer = plain_reference(model_dir).processor.tokenizer
    everything = list(range(len(tokenizer)))
    cont = continuing(tokenizer, TRANSLATION)
    ending = [t for t in everything if t not in cont]

    def allowed(batch_id: int, sent: torch.Tensor) -> list[int]:
        row = sent.tolist()
        written, ends = word_occurrences(row, ids, cont)
        if written < times:
            for k in range(len(ids) - 1, 0, -1):
                if row[-k:] == list(ids[:k]):
                    return [ids[k]]
        if ends and written <= times:
            return ending
        return everything

    bias = BiasUntilWritten([[[ids[0]], GLOSSARY_WEIGHT]], ids, times, cont)
    return {"text_logits_processor": LogitsProcessorList([bias]), "text_prefix_allowed_tokens_fn": allowed}


def reference(
    model_dir: Path,
    times: int,
    *,
    audio: np.ndarray | None = None,
    text: str | None = None,
    speech: bool = False,
    src: str = "eng",
) -> tuple[str, np.ndarray | None]:
    """``generate`` on one segment (``audio``) or one text in ``src`` alone into ``TARGET``, with
    the server's token bound and the entry applied ``times`` times: its text and, with ``speech``,
    its waveform."""
    ref = plain_reference(model_dir)
    m, p = ref
    if audio is not None:
        inputs = p(audio=audio, sampling_rate=16000, return_tensors="pt")
        cap = TextCap().tokens(len(audio) / 16000)
    else:
        assert text is not None
        inputs = p(text=text, src_lang=src, return_tensors="pt")
        cap = TextCap().tokens(len(text) / TEXT_CHARS_PER_SECOND)
    own = m.generation_config.max_new_tokens
    extra = {"text_max_new_tokens": cap if own is None else min(cap, int(own)), **glossary_kwargs(model_dir, times)}
    return generated(ref, inputs, TARGET, speech, **extra)


def transcript_of(model_dir: Path, audio: np.ndarray) -> str:
    """The segment's English transcript, as the server decodes it for a glossary (no bias on it)."""
    m, p = plain_reference(model_dir)
    with torch.inference_mode():
        out = m.generate(
            **p(audio=audio, sampling_rate=16000, return_tensors="pt"), tgt_lang="eng", generate_speech=False
        )
    return str(p.decode(out.sequences[0], skip_special_tokens=True))


def source_phrase(model_dir: Path, spans: list[np.ndarray]) -> str:
    """A phrase the checkpoint says in some segment: the longest word of the first transcript that
    has one of at least two letters (case-sensitive, as an entry matches by default)."""
    for span in spans:
        words = sorted((w for w in transcript_of(model_dir, span).split() if len(w) >= 2), key=len, reverse=True)
        if words:
            return words[0]
    pytest.fail("the checkpoint transcribes no word of two letters or more: no phrase to put in a glossary")


def kept_reference(model_dir: Path, span: np.ndarray, spoken: str, target: str, phrase: str) -> tuple[str, str]:
    """(the translation with ``phrase`` kept, the plain translation), by ``generate`` alone: the
    transcript boosted towards the phrase, then the translation biased as often as that transcript
    says it as a whole word."""
    transcript, _ = reference_text(model_dir, span, spoken, phrase, DEFAULT_TERM_WEIGHT)
    times = word_count(phrase, transcript, ignore_case=True)
    plain = reference_text(model_dir, span, target)[0]
    return (reference_text(model_dir, span, target, phrase, KEEP_WEIGHT, times)[0] if times else plain), plain


def server_cap(model_dir: Path, text: str) -> int:
    """The server's bound on a text row's tokens (settings' default TextCap on the text's stand-in
    seconds, never above the checkpoint's own max_new_tokens), for the reference to use too."""
    cap = TextCap().tokens(len(text) / TEXT_CHARS_PER_SECOND)
    own = plain_reference(model_dir).model.generation_config.max_new_tokens
    return cap if own is None else min(cap, int(own))
