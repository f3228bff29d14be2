"""Terms on the OpenAI door (issue 45, item 1: "on the OpenAI door (an extension)"): a KEEP term and
a glossary entry sent as ``x_terms`` in ``session.update``, with the real ``openai`` SDK, change the
door's translation exactly as the same terms over gRPC's ``StreamingTranslate`` do: the same 24 kHz
audio in the same chunks, segment mode on both (``x_simultaneous_step_ms: 0``), text only; each
segment's translation (the door's ``session.output_transcript.done``) equals gRPC's with the terms,
and gRPC's with the terms differs from gRPC's without them somewhere, so a door that drops the
field fails. Refusals (a bad kind, too many, an entry for a language the session does not
translate into, a change mid-session) come as ``error`` events whose ``param`` names the item.
The words are the random model's: only equalities are asserted (and the glossary's own words).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from openai import AsyncOpenAI
from transformers import AutoTokenizer

from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.speech import speech_pcm16
from translate_svc.api.v1 import translate_pb2 as pb

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(90)]

MODEL = "gpt-realtime-translate"
CHUNK = 9600  # bytes: 200 ms of 24 kHz PCM16, one append, one stream chunk on both doors
TRANSLATION = "nube acme"  # the glossary's target phrase (letters the test tokenizer has)
#: (start_ms, end_ms) -> the segment's translation
Segments = dict[tuple[int, int], str]


@pytest.fixture(scope="module")
def jfk24k(shared_audio: Path) -> bytes:
    return bytes(speech_pcm16(shared_audio / "jfk.flac", 60.0, 24000).tobytes())


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def door(test_model_dir: Path) -> AsyncIterator[LiveServer]:
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    async with serving(settings, warmup=False) as live:
        yield live


async def grpc_segments(live: LiveServer, pcm: bytes, terms: list[pb.Term], *, transcript: bool = False) -> Any:
    """gRPC's StreamingTranslate of ``pcm`` (eng -> spa, text only, segment mode): its results."""
    config = pb.StreamingConfig(
        format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=24000, channels=1),
        source_language="eng",
        target_languages=["spa"],
        output=pb.OutputOptions(text=True, speech=False, transcript=transcript),
        terms=terms,
    )

    async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield pb.StreamingTranslateRequest(config=config)
        for at in range(0, len(pcm), CHUNK):
            yield pb.StreamingTranslateRequest(audio=pcm[at : at + CHUNK])

    results = [r.segment async for r in live.stub.StreamingTranslate(requests()) if r.HasField("segment")]
    assert results
    return results


def translations(results: Any) -> Segments:
    return {(r.start_ms, r.end_ms): r.translations[0].text for r in results}


def client(live: LiveServer) -> AsyncOpenAI:
    assert live.server.http is not None
    return AsyncOpenAI(base_url=f"http://127.0.0.1:{live.server.http.port}/v1", api_key="-", max_retries=0)


def session(terms: Any, language: str = "es") -> dict[str, Any]:
    return {
        "audio": {"input": {"language": "en"}, "output": {"language": language}},
        "x_speech": False,
        "x_simultaneous_step_ms": 0,
        "x_terms": terms,
    }


async def door_segments(live: LiveServer, pcm: bytes, terms: list[dict[str, Any]]) -> tuple[Segments, list[Any]]:
    """The OpenAI door's translation of ``pcm`` with ``x_terms``: each segment's text (its
    ``session.output_transcript.done``), and every event."""
    events: list[Any] = []
    async with client(live).realtime.translations.connect(model=MODEL) as conn:
        await conn.recv()  # session.created
        await conn.session.update(session=session(terms))  # type: ignore[arg-type]
        for at in range(0, len(pcm), CHUNK):
            await conn.session.input_audio_buffer.append(audio=base64.b64encode(pcm[at : at + CHUNK]).decode())
        await conn.session.close()
        async for ev in conn:
            events.append(ev)
            if ev.type == "session.closed":
                break
    assert not [e for e in events if e.type == "error"], events
    done = [e.model_extra or {} for e in events if e.type == "session.output_transcript.done"]
    return {(d["x_segment"]["start_ms"], d["x_segment"]["end_ms"]): d["transcript"] for d in done}, events


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def plain(door: LiveServer, jfk24k: bytes) -> Any:
    """gRPC's results without terms, with the transcripts (where the phrases come from)."""
    return await grpc_segments(door, jfk24k, [], transcript=True)


def kept_phrases(model_dir: Path, transcripts: list[str]) -> list[str]:
    """Phrases the transcripts hold that the tokenizer writes as one token of their own (a kept
    one-token phrase leaves the transcript's greedy decode as it was up to it, or writes it sooner)."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    special = set(tokenizer.all_special_ids)
    out: list[str] = []
    for text in transcripts:
        for token in tokenizer(text, add_special_tokens=False)["input_ids"]:
            phrase = tokenizer.decode([token]).strip()
            if token in special or not phrase or phrase in out:
                continue
            if tuple(tokenizer(phrase, add_special_tokens=False)["input_ids"]) == (token,):
                out.append(phrase)
    return out


def glossary_phrases(transcripts: list[str]) -> list[str]:
    """Words the transcripts say (case as said, the longest first): an entry matches them."""
    words = {w for text in transcripts for w in text.split() if len(w) >= 2}
    return sorted(words, key=lambda w: (-len(w), w))


async def acting(
    door: LiveServer, pcm: bytes, plain: Segments, candidates: list[tuple[pb.Term, dict[str, Any]]]
) -> Any:
    """The first (gRPC term, x_terms item, gRPC's translation with it) whose term changes some
    segment's translation over gRPC (so the door's parity below shows the door passes it on)."""
    for term, item in candidates[:4]:
        with_term = translations(await grpc_segments(door, pcm, [term]))
        if with_term != plain:
            return term, item, with_term
    pytest.fail(f"none of {len(candidates[:4])} terms changed gRPC's translation: the parity would not show one acts")


@pytest.mark.parametrize("kind", ["keep", "translate"])
async def test_x_terms_change_the_doors_translation_exactly_as_the_same_terms_over_grpc(
    door: LiveServer, jfk24k: bytes, plain: Any, test_model_dir: Path, kind: str
) -> None:
    transcripts = [r.transcript.text for r in plain]
    if kind == "keep":
        candidates = [
            (pb.Term(phrase=p, kind=pb.Term.KEEP), {"phrase": p, "kind": "keep"})
            for p in kept_phrases(test_model_dir, transcripts)
        ]
    else:
        candidates = [
            (
                pb.Term(phrase=p, kind=pb.Term.TRANSLATE, translation=TRANSLATION, target_language="spa"),
                {"phrase": p, "kind": "translate", "translation": TRANSLATION, "target_language": "es"},
            )
            for p in glossary_phrases(transcripts)
        ]
    term, item, over_grpc = await acting(door, jfk24k, translations(plain), candidates)
    if kind == "translate":
        assert any(TRANSLATION in text for text in over_grpc.values())
    got, events = await door_segments(door, jfk24k, [item])
    assert got == over_grpc, (term.phrase, got, over_grpc, translations(plain))
    updated = next(e for e in events if e.type == "session.updated")
    assert updated.session.model_extra["x_terms"][0]["phrase"] == term.phrase


async def refused(door: LiveServer, terms: Any, language: str = "es") -> Any:
    """The error event a session opened with ``terms`` gets, and that it closes."""
    events = []
    async with client(door).realtime.translations.connect(model=MODEL) as conn:
        await conn.recv()
        await conn.session.update(session=session(terms, language))  # type: ignore[arg-type]
        async for ev in conn:
            events.append(ev)
    errors = [e for e in events if e.type == "error"]
    assert len(errors) == 1 and errors[0].error.type == "invalid_request_error", events
    assert not any(e.type == "session.output_transcript.done" for e in events)
    return errors[0].error


async def test_refusals_are_error_events_whose_param_names_the_item(door: LiveServer) -> None:
    limits = door.server.settings.limits
    e = await refused(door, [{"phrase": "Acme"}, {"phrase": "Acme Cloud", "kind": "forbid"}])
    assert (e.code, e.param) == ("invalid_value", "session.x_terms[1].kind") and '"keep"' in e.message
    e = await refused(door, [{"phrase": f"name {n}"} for n in range(limits.max_terms + 1)])
    assert e.param == "session.x_terms"
    assert e.message.startswith(f"{limits.max_terms + 1} x_terms items sent") and "max_terms" in e.message
    entry = {"phrase": "Acme", "kind": "translate", "translation": TRANSLATION, "target_language": "fr"}
    e = await refused(door, [entry])
    assert e.param == "session.x_terms[0].target_language" and "not one of this session's output languages" in e.message
    e = await refused(door, [{"phrase": "Acme", "weight": 11}])  # session.task's check, the item named
    assert e.param == "session.x_terms[0].weight" and e.message.startswith("x_terms[0].weight is 11")


async def test_a_running_session_refuses_other_terms_and_goes_on(door: LiveServer, jfk24k: bytes) -> None:
    events: list[Any] = []
    async with client(door).realtime.translations.connect(model=MODEL) as conn:
        await conn.recv()
        await conn.session.update(session=session([{"phrase": "Acme", "kind": "keep"}]))  # type: ignore[arg-type]
        await conn.session.update(session={"x_terms": [{"phrase": "Other", "kind": "keep"}]}, event_id="again")  # type: ignore[typeddict-unknown-key]
        for at in range(0, 24000 * 2 * 4, CHUNK):
            await conn.session.input_audio_buffer.append(audio=base64.b64encode(jfk24k[at : at + CHUNK]).decode())
        await conn.session.close()
        async for ev in conn:
            events.append(ev)
            if ev.type == "session.closed":
                break
    [error] = [e.error for e in events if e.type == "error"]
    assert (error.param, error.event_id) == ("session.x_terms", "again") and "fixed" in error.message
    assert events[-1].type == "session.closed" and events[-1].model_extra["x_reason"] == "closed"
    assert events[-1].model_extra["x_segments_total"] >= 1  # it went on, translating


async def test_a_transcription_sessions_boost_terms_act_as_over_grpc(door: LiveServer, jfk24k: bytes) -> None:
    """A realtime transcription session (``intent=transcription``) takes ``x_terms`` boost terms:
    each segment's transcript equals gRPC's ASR-only stream's with the same term, which differs
    from the plain one somewhere."""
    pcm = jfk24k + bytes(48000)  # a second of silence: the last segment closes by a pause on both doors
    term = pb.Term(phrase="acme", kind=pb.Term.BOOST, weight=10)

    async def over_grpc(terms: list[pb.Term]) -> Segments:
        config = pb.StreamingConfig(
            format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=24000, channels=1),
            source_language="eng",
            output=pb.OutputOptions(text=False, speech=False, transcript=True),
            terms=terms,
        )
        msgs = [pb.StreamingTranslateRequest(config=config)]
        msgs += [pb.StreamingTranslateRequest(audio=pcm[at : at + CHUNK]) for at in range(0, len(pcm), CHUNK)]
        return {
            (r.segment.start_ms, r.segment.end_ms): r.segment.transcript.text
            async for r in door.stub.StreamingTranslate(iter(msgs))
            if r.HasField("segment")
        }

    boosted = await over_grpc([term])
    assert boosted != await over_grpc([]), "the boost changed no transcript: the parity would not show it acts"
    got: Segments = {}
    connect = client(door).realtime.connect(model="gpt-4o-transcribe", extra_query={"intent": "transcription"})
    async with connect as conn:
        await conn.recv()  # session.created
        session = {
            "type": "transcription",
            "audio": {"input": {"transcription": {"model": "whisper-1", "language": "en"}}},
            "x_terms": [{"phrase": "acme", "weight": 10}],
        }
        await conn.session.update(session=session)  # type: ignore[arg-type]
        updated = await conn.recv()
        assert updated.type == "session.updated" and updated.session.model_extra["x_terms"] == [
            {"phrase": "acme", "weight": 10.0}
        ]
        for at in range(0, len(pcm), CHUNK):
            await conn.input_audio_buffer.append(audio=base64.b64encode(pcm[at : at + CHUNK]).decode())
        async for ev in conn:
            assert ev.type != "error", ev
            if ev.type == "conversation.item.input_audio_transcription.completed":
                span = ev.model_extra["x_segment"]
                got[(span["start_ms"], span["end_ms"])] = ev.transcript
                if len(got) == len(boosted):
                    break
    assert got == boosted
