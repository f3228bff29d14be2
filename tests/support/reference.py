"""transformers' own ``SeamlessM4Tv2Model.generate`` on a plain model, loaded apart from any runner:
the reference the model tests hold the runner to, and the term tests every path (a segment or a
text alone; a phrase biased in as a KEEP term or a glossary entry does it, with transformers' own
logits processors). Never our code: only the checkpoint's weights are shared."""

from __future__ import annotations

import functools
import hashlib
import re
import weakref
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from transformers import (
    AutoProcessor,
    LogitsProcessor,
    LogitsProcessorList,
    SeamlessM4Tv2Model,
    SequenceBiasLogitsProcessor,
)


class Reference(NamedTuple):
    model: SeamlessM4Tv2Model
    processor: Any


@functools.cache
def plain_reference(model_dir: Path) -> Reference:
    """transformers' own model and processor for the checkpoint, loaded apart from any runner (so
    without its adaptor and vocoder hooks); loaded once per session."""
    model = SeamlessM4Tv2Model.from_pretrained(model_dir, local_files_only=True, dtype=torch.float32).eval()
    return Reference(model, AutoProcessor.from_pretrained(model_dir, local_files_only=True))


def has_hooks(model: torch.nn.Module) -> bool:
    """Any forward hook not transformers' own (it installs output-capturing hooks on first use)."""
    hooks = [h for m in model.modules() for h in (*m._forward_pre_hooks.values(), *m._forward_hooks.values())]
    return any(not getattr(h, "__module__", "").startswith("transformers.") for h in hooks)


#: generate's results per plain model (weakly held: a model built by one test goes with it), by
#: (audio bytes, dtype and shape, language, speech, bound). The reference is deterministic (greedy), so a
#: result is computed once however many tests and vocoder modes compare against it.
_GENERATED: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], Any]] = weakref.WeakKeyDictionary()


def hf_generate(  # type: ignore[no-untyped-def]
    reference: Reference | Path, audio: np.ndarray, lang: str, speech: bool = True, max_new_tokens: int | None = None
):
    """transformers' own SeamlessM4Tv2Model.generate on one segment, on a plain model: the reference.
    ``reference``: a loaded plain model, or the checkpoint's directory (then the cached one).
    ``max_new_tokens``: the text decoder's bound (``text_max_new_tokens``), else the model's own.
    A model loaded in bfloat16 gets the features in bfloat16, as the runner casts them.
    Computed once per model and input (``_GENERATED``); the waveform comes back read-only."""
    m, p = plain_reference(reference) if isinstance(reference, Path) else reference
    assert not has_hooks(m), "the reference must be transformers' model as it loads, without our hooks"
    a = np.ascontiguousarray(audio)
    key = (hashlib.sha256(a.tobytes()).digest(), a.dtype.str, a.shape, lang, speech, max_new_tokens)
    done = _GENERATED.setdefault(m, {})
    if key not in done:
        feats = p(audio=audio, sampling_rate=16000, return_tensors="pt")
        feats["input_features"] = feats["input_features"].to(m.dtype)
        extra = {} if max_new_tokens is None else {"text_max_new_tokens": max_new_tokens}
        done[key] = generated(Reference(m, p), feats, lang, speech, **extra)
    return done[key]


def generated(
    reference: Reference, inputs: Any, lang: str, speech: bool, **extra: Any
) -> tuple[str, np.ndarray | None]:
    """``generate`` on inputs the processor made (a segment's features or a text's tokens) into
    ``lang``, with ``extra`` (a bound, logits processors): its text and, with ``speech``, its
    waveform (read-only)."""
    m, p = reference
    with torch.inference_mode():
        if not speech:
            out = m.generate(**inputs, tgt_lang=lang, generate_speech=False, **extra)
            return p.decode(out.sequences[0], skip_special_tokens=True), None
        out = m.generate(**inputs, tgt_lang=lang, return_intermediate_token_ids=True, **extra)
    wave = out.waveform[0, : int(out.waveform_lengths.reshape(-1)[0])].float().numpy()
    wave.setflags(write=False)
    return p.decode(out.sequences[0], skip_special_tokens=True), wave


def phrase_ids(model_dir: Path, phrase: str) -> tuple[int, ...]:
    """The token ids the server biases for ``phrase`` (``TermTokens.ids``): the checkpoint's
    tokenizer on the stripped phrase, without special tokens."""
    tokenizer = plain_reference(model_dir).processor.tokenizer
    return tuple(tokenizer(phrase.strip(), add_special_tokens=False)["input_ids"])


def word_count(phrase: str, text: str, *, ignore_case: bool) -> int:
    """Times ``text`` says ``phrase`` as a whole word (no letter or digit touching either end), not
    overlapping: the rule of docs/api.md for text in a script written with spaces."""
    pattern = rf"(?<![^\W_]){re.escape(phrase.strip())}(?![^\W_])"
    return len(re.findall(pattern, text, flags=re.IGNORECASE if ignore_case else 0))


def continuing(tokenizer: Any, phrase: str) -> frozenset[int]:
    """The tokens that would continue the last word of ``phrase`` were they written after it: on
    this checkpoint's vocabulary, the pieces without SentencePiece's word start ("▁") that begin
    with a letter or digit, after a phrase that ends in one (none after punctuation)."""
    if not phrase.strip()[-1:].isalnum():
        return frozenset()
    pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    return frozenset(t for t, piece in enumerate(pieces) if piece[:1].isalnum())


def word_occurrences(row: list[int], ids: tuple[int, ...], cont: frozenset[int]) -> tuple[int, bool]:
    """Times ``row`` holds ``ids`` as a whole word (the token after it, if any, not in ``cont``),
    not overlapping, from the left; and whether the last one counted ends the row."""
    count = at = 0
    ends = False
    while at + len(ids) <= len(row):
        end = at + len(ids)
        if tuple(row[at:end]) == ids and (end == len(row) or row[end] not in cont):
            count, at, ends = count + 1, end, end == len(row)
        else:
            at += 1
    return count, ends


class BiasUntilWritten(LogitsProcessor):
    """transformers' ``SequenceBiasLogitsProcessor`` with ``bias``, only while the row (one row:
    generate on a segment alone) holds ``ids`` as a whole word (``word_occurrences`` with
    ``cont``) fewer than ``times`` times."""

    def __init__(
        self, bias: list[list[list[int] | float]], ids: tuple[int, ...], times: int, cont: frozenset[int]
    ) -> None:
        self.processor = SequenceBiasLogitsProcessor(bias)
        self.ids, self.times, self.cont = ids, times, cont

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        assert input_ids.shape[0] == 1
        if word_occurrences(input_ids[0].tolist(), self.ids, self.cont)[0] >= self.times:
            return scores
        return self.processor(input_ids, scores)  # type: ignore[no-any-return]


def reference_text(
    model_dir: Path, audio: np.ndarray, lang: str, phrase: str = "", weight: float = 0.0, times: int = 0
) -> tuple[str, list[int]]:
    """transformers' own ``SeamlessM4Tv2Model.generate`` (text only) on one segment alone, its text
    decoder biased towards ``phrase`` by ``weight`` (every prefix of its token ids, through
    ``text_sequence_bias``); ``times`` > 0: only until the row has written it that many times. No
    phrase: the plain decode. Its text, and its token ids."""
    m, p = plain_reference(model_dir)
    extra: dict[str, Any] = {}
    if phrase:
        ids = phrase_ids(model_dir, phrase)
        bias: list[list[list[int] | float]] = [[list(ids[:n]), float(weight)] for n in range(1, len(ids) + 1)]
        if times:
            processor = BiasUntilWritten(bias, ids, times, continuing(p.tokenizer, phrase))
            extra["text_logits_processor"] = LogitsProcessorList([processor])
        else:
            extra["text_sequence_bias"] = bias
    feats = p(audio=audio, sampling_rate=16000, return_tensors="pt")
    with torch.inference_mode():
        out = m.generate(**feats, tgt_lang=lang, generate_speech=False, **extra)
    seq = out.sequences[0]  # type: ignore[union-attr,index]
    return p.decode(seq, skip_special_tokens=True), seq.tolist()


#: ``hf_generate_text``'s results per plain model, as ``_GENERATED``
_GENERATED_TEXT: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], Any]] = weakref.WeakKeyDictionary()


def hf_generate_text(  # type: ignore[no-untyped-def]
    reference: Reference | Path,
    text: str,
    src: str,
    lang: str,
    speech: bool = True,
    max_new_tokens: int | None = None,
    bias: tuple[str, float, int] | None = None,
    whole_words: bool = True,
):
    """transformers' own generate on one text alone (``input_ids`` from the processor with
    ``src_lang``), on a plain model: (text, waveform or None). ``bias``: (phrase, weight, times):
    the text decoder biased towards the phrase (every prefix of its ids) until the row holds it
    ``times`` times (``BiasUntilWritten``), as a KEEP term: as a whole word, or (``whole_words``
    False) wherever its tokens stand, as before issue 57. Cached per model and input."""
    m, p = plain_reference(reference) if isinstance(reference, Path) else reference
    assert not has_hooks(m), "the reference must be transformers' model as it loads, without our hooks"
    key = (hashlib.sha256(text.encode()).digest(), src, lang, speech, max_new_tokens, bias, whole_words)
    done = _GENERATED_TEXT.setdefault(m, {})
    if key not in done:
        inputs = p(text=text, src_lang=src, return_tensors="pt")
        extra: dict[str, Any] = {}
        if max_new_tokens is not None:
            extra["text_max_new_tokens"] = max_new_tokens
        if bias is not None:
            phrase, weight, times = bias
            ids = tuple(p.tokenizer(phrase.strip(), add_special_tokens=False)["input_ids"])
            prefixes: list[list[list[int] | float]] = [[list(ids[:n]), float(weight)] for n in range(1, len(ids) + 1)]
            cont = continuing(p.tokenizer, phrase) if whole_words else frozenset()
            until = BiasUntilWritten(prefixes, ids, times, cont)
            extra["text_logits_processor"] = LogitsProcessorList([until])
        with torch.inference_mode():
            if not speech:
                out = m.generate(**inputs, tgt_lang=lang, generate_speech=False, **extra)
                done[key] = (p.decode(out.sequences[0], skip_special_tokens=True), None)
            else:
                out = m.generate(**inputs, tgt_lang=lang, return_intermediate_token_ids=True, **extra)
                wave = out.waveform[0, : int(out.waveform_lengths.reshape(-1)[0])].float().numpy()
                wave.setflags(write=False)
                done[key] = (p.decode(out.sequences[0], skip_special_tokens=True), wave)
    return done[key]
