"""``terms`` of the service (issue 45): they reach the server and act there.

The test checkpoint has random weights, so the phrase is taken from what it transcribes (as
tests/integration/test_glossary_paths.py does): a glossary entry for that phrase must make the
server write the entry's translation in the translation of every segment whose transcript says the
phrase, and nowhere without the entry. The words asserted are the entry's, not the model's. A
service that drops the terms, or sends the entry's language as pipecat names it (``Language.ES``:
the server takes a model code among the targets, ``spa``), fails it.
"""

from __future__ import annotations

import numpy as np
import pytest
from pipecat.frames.frames import TranscriptionFrame, TranslationFrame
from pipecat.transcriptions.language import Language
from pipeline_harness import assert_no_errors, chunks, run_pipeline, segment_of

from pipecat_translate_svc import TranslateSvcSTTService
from translate_svc.client import Segment, Term

#: the entry's translation: letters the test checkpoint's tokenizer has, several tokens (so the
#: server forces it; the one tests/integration/test_glossary_paths.py uses)
GLOSSARY = "nube acme"


async def translate(server: str, audio: list[bytes], terms: list[Term | str]) -> list[tuple[Segment, str]]:
    """The audio through the service into Spanish (from English): each segment and its Spanish
    ``TranslationFrame``'s text."""
    service = TranslateSvcSTTService(
        address=server, source_language=Language.EN, target_languages=[Language.ES], speech=False, terms=terms
    )
    run = await run_pipeline(service, audio, pace=8.0)
    assert_no_errors(run)
    segs = [f.result for f in run.down.of(TranscriptionFrame)]
    assert segs, "segments came"
    texts = {segment_of(f): f.text for f in run.down.of(TranslationFrame)}
    assert sorted(texts) == [s.segment_id for s in segs]
    for s in segs:
        assert s.transcript is not None and [t.target for t in s.translations] == ["spa"]
    return [(s, texts[s.segment_id]) for s in segs]


def said_phrase(segs: list[tuple[Segment, str]]) -> str:
    """A phrase the checkpoint transcribes: the longest word (two letters or more) of the first
    transcript that has one."""
    for s, _ in segs:
        words = sorted((w for w in (s.transcript or "").split() if len(w) >= 2), key=len, reverse=True)
        if words:
            return words[0]
    pytest.fail("the checkpoint transcribes no word of two letters or more: no phrase for a glossary entry")


async def test_a_glossary_entry_reaches_the_server_and_acts(server: str, speech16k: np.ndarray) -> None:
    audio = chunks(speech16k, 16000, seconds=20)
    plain = await translate(server, audio, [])
    phrase = said_phrase(plain)
    assert not any(GLOSSARY in text for _, text in plain), "without the entry, no segment says its translation"

    entry = Term(phrase, translation=GLOSSARY, target_language=Language.ES)  # named as the targets are
    glossed = await translate(server, audio, [entry])
    saying = [(s, text) for s, text in glossed if phrase in (s.transcript or "")]  # entries leave transcripts be
    assert saying, f"no segment's transcript says {phrase!r} with the entry"
    for s, text in saying:
        assert GLOSSARY in text, (s.segment_id, phrase, s.transcript, text)


def test_a_glossary_entry_for_no_target_is_refused() -> None:
    entry = Term("Acme Cloud", translation="Nube Acme", target_language="fr")
    with pytest.raises(ValueError, match=r"terms\[1\] \('Acme Cloud'\) is a glossary entry for 'fr' \(fra\)"):
        TranslateSvcSTTService(address="127.0.0.1:1", target_languages=["es"], terms=["Acme", entry])
    with pytest.raises(ValueError, match="set its target_language"):
        TranslateSvcSTTService(address="127.0.0.1:1", target_languages=["es"], terms=[Term("Acme", translation="N")])
