"""``terms`` of the LiveKit plugin (issue 45): they reach the server and act there.

The test checkpoint has random weights, so the phrase is taken from what it transcribes (as
tests/service/test_glossary_paths.py does): a glossary entry for that phrase must make the
server write the entry's translation in the translation of every segment whose transcript says the
phrase, and nowhere without the entry. The words asserted are the entry's, not the model's. A
plugin that drops the terms, or sends an entry for ``es`` unresolved (the server takes a model
code among the stream's targets, ``spa``), fails it.
"""

from __future__ import annotations

import numpy as np
import pytest
from livekit.plugins import translate_svc
from lk_support import Recorder, Server, frames, push_paced

from translate_svc.client import Term

#: the entry's translation: letters the test checkpoint's tokenizer has, several tokens (so the
#: server forces it; the one tests/service/test_glossary_paths.py uses)
GLOSSARY = "nube acme"


async def translate_track(server: Server, pcm: np.ndarray, **options: object) -> list[translate_svc.TranslatedSegment]:
    """``pcm`` through one session of a model into Spanish (from English), every result."""
    model = translate_svc.TranslationModel(
        server.address,
        target_language="es",
        source_language="en",
        **options,  # type: ignore[arg-type]
    )
    session = model.session()
    rec = Recorder(session)
    await push_paced([session], frames(pcm))
    session.end_input()
    await rec.finish()
    await model.aclose()
    assert rec.of("error") == []
    segs: list[translate_svc.TranslatedSegment] = rec.of("segment")
    assert segs, "segments came"
    for s in segs:
        assert s.transcript is not None and s.text is not None
        assert [t.target for t in s.segment.translations] == ["spa"]
    return segs


def said_phrase(segs: list[translate_svc.TranslatedSegment]) -> str:
    """A phrase the checkpoint transcribes: the longest word (two letters or more) of the first
    transcript that has one."""
    for s in segs:
        words = sorted((w for w in (s.transcript or "").split() if len(w) >= 2), key=len, reverse=True)
        if words:
            return words[0]
    pytest.fail("the checkpoint transcribes no word of two letters or more: no phrase for a glossary entry")


async def test_a_glossary_entry_reaches_the_server_resolved_and_acts(server: Server, minute: np.ndarray) -> None:
    pcm = minute[: 20 * 16000]
    plain = await translate_track(server, pcm)
    phrase = said_phrase(plain)
    assert not any(GLOSSARY in (s.text or "") for s in plain), "without the entry, no segment says its translation"

    entry = Term(phrase, translation=GLOSSARY, target_language="es")  # the model's tag, as given
    glossed = await translate_track(server, pcm, terms=[entry])
    saying = [s for s in glossed if phrase in (s.transcript or "")]  # entries do not touch the transcript
    assert saying, f"no segment's transcript says {phrase!r} with the entry"
    for s in saying:
        assert GLOSSARY in (s.text or ""), (s.segment_id, phrase, s.transcript, s.text)


def test_a_glossary_entry_for_another_language_than_the_models_is_refused() -> None:
    entry = Term("Acme Cloud", translation="Nube Acme", target_language="spa")
    with pytest.raises(ValueError, match=r"terms\[1\] \('Acme Cloud'\) is a glossary entry for target_language='spa'"):
        translate_svc.TranslationModel("127.0.0.1:1", target_language="es", terms=["Acme", entry])
    with pytest.raises(ValueError, match="set the entry's target_language='es'"):
        translate_svc.TranslationModel("127.0.0.1:1", target_language="es", terms=[Term("Acme", translation="Nube")])
    with pytest.raises(TypeError, match=r"terms\[0\] is a int"):
        translate_svc.TranslationModel("127.0.0.1:1", target_language="es", terms=[3])  # type: ignore[list-item]
    # boosts and kept phrases are for every language
    model = translate_svc.TranslationModel(
        "127.0.0.1:1", target_language="es", terms=["Acme", Term("Kubernetes", keep=True)]
    )
    assert model is not None


async def test_terms_decide_which_sessions_share_a_tracks_stream() -> None:
    """Terms are stream options: models of one track share its stream only with the same terms
    (a ``str`` and a boost ``Term`` of it are the same). A session whose model has glossary
    entries keeps its language (the server would refuse an update dropping the entry's)."""
    address = "127.0.0.1:1"  # nothing opens before the first audio
    entry = Term("Acme Cloud", translation="Nube Acme", target_language="es")
    a = translate_svc.TranslationModel(address, target_language="es", track="TR_t", terms=["Acme", entry])
    b = translate_svc.TranslationModel(address, target_language="es", track="TR_t", terms=[Term("Acme"), entry])
    c = translate_svc.TranslationModel(address, target_language="es", track="TR_t", terms=["Acme"])
    d = translate_svc.TranslationModel(address, target_language="fr", track="TR_t", terms=["Acme"])
    sa, sb, sc, sd = a.session(), b.session(), c.session(), d.session()
    try:
        assert sa._shared is sb._shared
        assert sc._shared is not sa._shared and sd._shared is sc._shared
        with pytest.raises(ValueError, match=r"glossary entries .* are for 'es', not 'fr'"):
            sa.update_options(target_language="fr")
        sa.update_options(target_language="es")  # its own language: nothing changes
        sc.update_options(target_language="de")  # no glossary: retargets as ever
        assert sc._seat.tag == "de"
    finally:
        for m in (a, b, c, d):
            await m.aclose()
