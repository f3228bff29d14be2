"""``terms`` of the service (issue 45): they reach the server and act there.

The test checkpoint has random weights, so the phrase is taken from what it transcribes (as
tests/service/test_glossary_paths.py does): a glossary entry for that phrase must make the
server write the entry's translation in the translation of every segment whose transcript says the
phrase, and nowhere without the entry. The words asserted are the entry's, not the model's. A
service that drops the terms, or sends the entry's language as pipecat names it (``Language.ES``:
the server takes a model code among the targets, ``spa``), fails it.
"""

from __future__ import annotations

import numpy as np
import pytest
from pipecat.frames.frames import STTUpdateSettingsFrame, TranscriptionFrame, TranslationFrame
from pipecat.transcriptions.language import Language
from pipeline_harness import FRAME_MS, Run, assert_no_errors, chunks, run_pipeline, segment_of

from pipecat_translate_svc import TranslateSvcSTTService
from pipecat_translate_svc.languages import to_model_code
from translate_svc.client import Segment, Term

#: the entry's translation: letters the test checkpoint's tokenizer has, several tokens (so the
#: server forces it; the one tests/service/test_glossary_paths.py uses)
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


async def test_a_target_change_that_drops_or_adds_a_glossary_language_restarts_the_stream(
    server: str, speech16k: np.ndarray
) -> None:
    """An entry acts while its language is a target. Dropping the language on a stream that is
    opening (made with the entry) and adding it back on a running one each restart the stream with
    the terms that fit its targets: no error (the server refuses an update that would leave a
    running stream an entry for a language it does not translate, and a new stream with one)."""

    async def retarget(sent_ms: int, run: Run) -> None:
        if sent_ms == FRAME_MS:  # the first audio opens the first stream, with the Spanish entry
            await run.queue(STTUpdateSettingsFrame(delta=TranslateSvcSTTService.Settings(target_languages=["deu"])))
        if sent_ms == 7000:
            await run.queue(
                STTUpdateSettingsFrame(delta=TranslateSvcSTTService.Settings(target_languages=["deu", Language.ES]))
            )

    entry = Term("Acme", translation=GLOSSARY, target_language=Language.ES)
    service = TranslateSvcSTTService(
        address=server,
        source_language=Language.EN,
        target_languages=[Language.ES, "deu"],
        speech=False,
        terms=["boosted", entry],
    )
    run = await run_pipeline(service, chunks(speech16k, 16000, seconds=16), pace=4.0, hook=retarget)
    assert_no_errors(run)
    assert service.is_usable
    by_segment: dict[tuple[int, int], set[str]] = {}
    for f in run.down.of(TranslationFrame):
        meta = f.metadata["translate_svc"]
        by_segment.setdefault((meta["stream"], meta["segment_id"]), set()).add(to_model_code(f.language))
    languages = [by_segment[k] for k in sorted(by_segment)]
    assert {"deu"} in languages, languages  # Spanish dropped
    assert languages[-1] == {"deu", "spa"}, languages  # and back
    streams = {f.metadata["translate_svc"]["stream"] for f in run.down.of(TranscriptionFrame)}
    assert len(streams) >= 2, streams  # restarted, not updated
