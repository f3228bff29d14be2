"""Terms act on words, not substrings (issue 57), on a real server: a KEEP phrase or a glossary
phrase that the source holds only inside a longer word ("Ann" in "planning", "cat" in "category")
changes nothing, where it stands as a word it acts, and in a language written without spaces
(Chinese) a glossary phrase inside a run of characters acts.

Parity as in test_glossary_paths.py and test_keep_paths.py: the expected output is transformers'
own ``generate`` with the references built there from its primitives, applied as often as the
source says the phrase as a whole word; each test also shows that the substring count (what the
server did before) gives another output, so it fails on a server that matches substrings. The words
asserted are the glossary's own forced translation; the model's only in equalities.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio

from tests.support.live_server import LiveServer
from tests.support.raw import raw_request, text_request
from tests.support.reference import hf_generate_text, reference_text, word_count
from tests.support.speech import shared_pcm
from tests.support.term_reference import (
    TARGET,
    TRANSLATION,
    kept_reference,
    reference,
    server_cap,
    source_phrase,
    transcript_of,
)
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.model.stages.terms import KEEP_WEIGHT
from translate_svc.types import DEFAULT_TERM_WEIGHT

pytestmark = [pytest.mark.integration, pytest.mark.slow(60)]
asyncio_mark = pytest.mark.asyncio(loop_scope="session")


def glossary_term(phrase: str) -> pb.Term:
    return pb.Term(phrase=phrase, kind=pb.Term.TRANSLATE, translation=TRANSLATION, target_language=TARGET)


async def texts_with(live: LiveServer, texts: list[str], term: pb.Term | None, src: str = "eng") -> list[str]:
    """Each text's Spanish from ``TranslateText`` (text only)."""
    resp = await live.stub.TranslateText(
        text_request(
            texts,
            source_language=src,
            target_languages=[TARGET],
            output=pb.OutputOptions(speech=False),
            terms=[term] if term else [],
        )
    )
    return [r.translations[0].text for r in resp.results]


@asyncio_mark
async def test_a_glossary_entry_acts_on_its_word_and_not_inside_a_longer_one(
    live: LiveServer, test_model_dir: Path
) -> None:
    """The entry "cat" -> "nube acme": "category" is translated as without the entry; "cat" gets
    the translation forced in. Before, "category" said "cat" once, and the translation was forced."""
    inside, whole = "The category is new.", "Please feed the cat now."
    got = await texts_with(live, [inside, whole], glossary_term("cat"))
    plain = reference(test_model_dir, 0, text=inside)[0]
    assert got[0] == plain
    assert reference(test_model_dir, inside.count("cat"), text=inside)[0] != plain  # what a substring match gave
    forced = reference(test_model_dir, 1, text=whole)[0]
    assert got[1] == forced and word_count(TRANSLATION, forced, ignore_case=False) == 1


@asyncio_mark
async def test_a_kept_name_acts_on_its_word_and_not_inside_a_longer_one(live: LiveServer, test_model_dir: Path) -> None:
    """KEEP "Ann": "planning" is translated as without the term; "Ann" is biased (KEEP_WEIGHT)
    until written once. Before, "planning" said "ann" once (case-insensitively) and was biased."""
    inside, whole = "We are planning it.", "Please ask Ann about it."
    got = await texts_with(live, [inside, whole], pb.Term(phrase="Ann", kind=pb.Term.KEEP))
    cap = server_cap(test_model_dir, inside)
    plain = hf_generate_text(test_model_dir, inside, "eng", TARGET, False, cap)[0]
    assert got[0] == plain
    before = hf_generate_text(test_model_dir, inside, "eng", TARGET, False, cap, bias=("Ann", KEEP_WEIGHT, 1))[0]
    assert before != plain  # what a substring match gave
    kept = hf_generate_text(
        test_model_dir, whole, "eng", TARGET, False, server_cap(test_model_dir, whole), bias=("Ann", KEEP_WEIGHT, 1)
    )[0]
    assert got[1] == kept


@asyncio_mark
async def test_a_kept_phrase_written_as_the_start_of_a_longer_word_is_not_yet_written(
    live: LiveServer, test_model_dir: Path
) -> None:
    """The decoder's side: a kept phrase said once is biased until the translation has written
    it as a word; its tokens followed by a letter (the start of a longer word) are not it. A
    one-letter name this checkpoint writes on into a longer word is picked, so the reference that
    counts its tokens wherever they stand (as the server did before) differs."""
    for letter in "abcdefghijklmnopqrstuvwxyz":
        text = f"Please ask {letter} about it."
        cap = server_cap(test_model_dir, text)
        kept = hf_generate_text(test_model_dir, text, "eng", TARGET, False, cap, bias=(letter, KEEP_WEIGHT, 1))[0]
        tokens = hf_generate_text(
            test_model_dir, text, "eng", TARGET, False, cap, bias=(letter, KEEP_WEIGHT, 1), whole_words=False
        )[0]
        if kept != tokens:
            break
    else:
        pytest.fail("no one-letter name is written on into a longer word: the test could not fail")
    (got,) = await texts_with(live, [text], pb.Term(phrase=letter, kind=pb.Term.KEEP))
    assert got == kept


@asyncio_mark
async def test_a_chinese_glossary_phrase_acts_inside_a_sentence_without_spaces(
    live: LiveServer, test_model_dir: Path
) -> None:
    """Chinese puts no space between words, so no boundary is asked for next to its characters:
    "猫" in "我喜欢猫咪。" is said (once), and the translation is forced in; a sentence without it
    is translated as without the entry."""
    said, unsaid = "我喜欢猫咪。", "我喜欢狗。"
    got = await texts_with(live, [said, unsaid], glossary_term("猫"), src="cmn")
    forced = reference(test_model_dir, 1, text=said, src="cmn")[0]
    assert got[0] == forced and TRANSLATION in forced
    assert got[1] == reference(test_model_dir, 0, text=unsaid, src="cmn")[0]


# -- the speech path: a phrase the random model's transcript holds only inside a longer word ----


@pytest.fixture(scope="module")
def jfk(shared_audio: Path) -> tuple[bytes, np.ndarray]:
    return shared_pcm(shared_audio, "jfk.flac")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def inside_a_word(
    live: LiveServer, jfk: tuple[bytes, np.ndarray], test_model_dir: Path
) -> tuple[list[tuple[int, int]], str]:
    """The server's segments of jfk.flac and a phrase that some segment's transcript holds only
    inside a longer word: the longest transcribed word less its last letter (the transcripts of
    this checkpoint repeat letters, so it is inside the word, and said as a word nowhere)."""
    content, samples = jfk
    plain = await live.stub.Translate(
        raw_request(content, pb.LINEAR16, source_language="eng", target_languages=[TARGET])
    )
    spans = [(s.start_ms, s.end_ms) for s in plain.segments]
    word = source_phrase(test_model_dir, [samples[a * 16 : b * 16] for a, b in spans])
    part = word[:-1]
    transcripts = [transcript_of(test_model_dir, samples[a * 16 : b * 16]) for a, b in spans]
    assert any(part in t for t in transcripts) and not any(word_count(part, t, ignore_case=True) for t in transcripts)
    return spans, part


@asyncio_mark
async def test_speech_a_glossary_phrase_inside_a_transcribed_word_changes_nothing(
    live: LiveServer, jfk: tuple[bytes, np.ndarray], test_model_dir: Path, inside_a_word: tuple[list[Any], str]
) -> None:
    content, samples = jfk
    spans, part = inside_a_word
    resp = await live.stub.Translate(
        raw_request(
            content,
            pb.LINEAR16,
            source_language="eng",
            target_languages=[TARGET],
            output=pb.OutputOptions(speech=False),
            terms=[glossary_term(part)],
        )
    )
    assert [(s.start_ms, s.end_ms) for s in resp.segments] == spans
    substring_differs = False
    for s in resp.segments:
        span = samples[s.start_ms * 16 : s.end_ms * 16]
        plain = reference(test_model_dir, 0, audio=span)[0]
        assert s.translations[0].text == plain, (s.start_ms, part)
        times = transcript_of(test_model_dir, span).count(part)
        substring_differs |= bool(times) and reference(test_model_dir, times, audio=span)[0] != plain
    assert substring_differs, f"forcing on the substring {part!r} would change nothing: the test could not fail"


@asyncio_mark
async def test_speech_a_kept_phrase_inside_a_transcribed_word_is_not_carried(
    live: LiveServer, jfk: tuple[bytes, np.ndarray], test_model_dir: Path, inside_a_word: tuple[list[Any], str]
) -> None:
    """KEEP boosts the phrase in the transcript too: the expected translation is biased as often
    as that boosted transcript says the phrase as a word (``kept_reference``); the substring count
    of the same transcript gives another translation somewhere."""
    content, samples = jfk
    _, part = inside_a_word
    resp = await live.stub.Translate(
        raw_request(
            content,
            pb.LINEAR16,
            source_language="eng",
            target_languages=[TARGET],
            output=pb.OutputOptions(speech=False),
            terms=[pb.Term(phrase=part, kind=pb.Term.KEEP)],
        )
    )
    substring_differs = False
    for s in resp.segments:
        span = samples[s.start_ms * 16 : s.end_ms * 16]
        kept, _ = kept_reference(test_model_dir, span, "eng", TARGET, part)
        assert s.translations[0].text == kept, (s.start_ms, part)
        boosted = reference_text(test_model_dir, span, "eng", part, DEFAULT_TERM_WEIGHT)[0]
        times = boosted.casefold().count(part.casefold())
        if times:
            substring = reference_text(test_model_dir, span, TARGET, part, KEEP_WEIGHT, times)[0]
            substring_differs |= substring != kept
    assert substring_differs, f"keeping the substring {part!r} would change nothing: the test could not fail"
