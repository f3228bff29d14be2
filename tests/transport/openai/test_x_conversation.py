"""Conversations on the OpenAI doors (our extension ``x_conversation``) over a real server with the
real ``openai`` SDK: the realtime session (``session.update``) and the audio REST endpoints (the
form field), with the test identifier (random among the candidates; or biased: Spanish wins
wherever it is a candidate).

What is asserted is the mechanics, never the words of random weights: each segment's translation
events say its source (``x_source_language``) and its translation's language (``x_language``), the
source one of the conversation's and the translation the other; with the Spanish-biased
identifier every segment goes Spanish -> English; a mid-session update changes the languages from
the segment its ``session.updated`` names; refusals name the door's own field.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest
import pytest_asyncio

from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.realtime import MODEL, openai_client
from tests.support.speech import speech_pcm16

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(60)]

TOKEN = "conversation-test-token-51c0de"
SECONDS = 11.0  # of jfk.flac: four segments on the test checkpoint
CHUNK = 4800  # 200 ms at 24 kHz
PARAM = "session.x_conversation"
DONE = "session.output_transcript.done"


@pytest.fixture(scope="module")
def pcm24k(shared_audio: Path) -> np.ndarray:
    return speech_pcm16(shared_audio / "jfk.flac", SECONDS, 24000)


async def _door(test_model_dir: Path, root: Path, lid: Path | None) -> AsyncIterator[LiveServer]:
    tokens = root / "tokens"
    tokens.write_text(f"{TOKEN} stream translate\n")
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    settings.auth.tokens_file = tokens
    if lid is not None:
        settings.model.lid_path = lid
    async with serving(settings, warmup=False) as live:
        yield live


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def spanish(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    """A server whose identifier picks Spanish wherever it is a candidate."""
    from translate_svc.app import build_lid_test_checkpoint

    root = tmp_path_factory.mktemp("spa")
    async for live in _door(test_model_dir, root, build_lid_test_checkpoint(root / "lid", bias="spa")):
        yield live


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def plain(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    """A server whose identifier picks at random among the candidates."""
    from translate_svc.app import build_lid_test_checkpoint

    root = tmp_path_factory.mktemp("plain")
    async for live in _door(test_model_dir, root, build_lid_test_checkpoint(root / "lid")):
        yield live


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def bare(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    """A server without the spoken-language identifier."""
    async for live in _door(test_model_dir, tmp_path_factory.mktemp("bare"), None):
        yield live


async def session(
    live: LiveServer, pcm: np.ndarray, first: dict[str, Any], later: dict[str, Any] | None = None
) -> list[Any]:
    """A text-only session configured by ``first``, the speech sent, ``later`` sent as a
    ``session.update`` once half of it is; every event until ``session.closed``."""
    events: list[Any] = []
    async with openai_client(live, TOKEN).realtime.translations.connect(model=MODEL) as conn:
        assert (await conn.recv()).type == "session.created"
        await conn.send({"type": "session.update", "session": {"x_speech": False, **first}})  # type: ignore[arg-type]

        async def send() -> None:
            chunks = range(0, len(pcm), CHUNK)
            for n, at in enumerate(chunks):
                if later is not None and n == len(chunks) // 2:
                    await conn.send({"type": "session.update", "session": later})  # type: ignore[arg-type]
                chunk = pcm[at : at + CHUNK].tobytes()
                await conn.session.input_audio_buffer.append(audio=base64.b64encode(chunk).decode())
            await conn.session.close()

        sender = asyncio.create_task(send())
        async with asyncio.timeout(180):
            async for ev in conn:
                events.append(ev)
                if ev.type == "session.closed":
                    break
        await sender
    return events


def directions(events: list[Any]) -> dict[int, tuple[str, str]]:
    """Each segment's (source, translation) language as its translation's events say them: every
    output delta and done event of a segment says the same, one translation per segment."""
    seen: dict[int, set[tuple[str, str]]] = {}
    for e in events:
        if e.type in ("session.output_transcript.delta", DONE):
            x = e.model_extra
            seen.setdefault(x["x_segment"]["segment_id"], set()).add((x["x_source_language"], x["x_language"]))
    assert all(len(pairs) == 1 for pairs in seen.values()), seen
    dones = [e.model_extra["x_segment"]["segment_id"] for e in events if e.type == DONE]
    assert sorted(dones) == sorted(seen), (dones, seen)  # one translation per segment
    return {sid: next(iter(pairs)) for sid, pairs in seen.items()}


async def test_a_realtime_conversation_goes_from_the_detected_language_into_the_other(
    spanish: LiveServer, plain: LiveServer, pcm24k: np.ndarray
) -> None:
    events = await session(spanish, pcm24k, {"x_conversation": {"languages": ["eng", "spa"]}})
    kinds = [e.type for e in events]
    assert "error" not in kinds and kinds[-1] == "session.closed", events
    echoed = events[0].session.model_extra
    assert events[0].type == "session.updated" and echoed["x_conversation"] == {"languages": ["eng", "spa"]}
    assert events[0].session.audio.output.language is None  # a conversation has no fixed output language
    found = directions(events)
    assert len(found) >= 3 and set(found.values()) == {("spa", "eng")}, found
    # the plain identifier picks one of the two; the translation is the other (the client's tags echoed)
    events = await session(plain, pcm24k, {"x_conversation": {"languages": ["en", "es"]}})
    assert "error" not in [e.type for e in events]
    found = directions(events)
    assert found and set(found.values()) <= {("en", "es"), ("es", "en")}, found


async def test_an_update_changes_the_conversations_languages_from_the_segment_it_names(
    spanish: LiveServer, pcm24k: np.ndarray
) -> None:
    """English and French first (Spanish undeclared: the identifier picks one of them), then
    English and Spanish: from ``x_first_segment_id`` on, Spanish -> English."""
    first = {"x_conversation": {"languages": ["eng", "fra"]}}
    events = await session(spanish, pcm24k, first, later={"x_conversation": {"languages": ["eng", "spa"]}})
    kinds = [e.type for e in events]
    assert "error" not in kinds and kinds[-1] == "session.closed", events
    updated = [e for e in events[1:] if e.type == "session.updated"]
    assert len(updated) == 1 and updated[0].session.model_extra["x_conversation"] == {"languages": ["eng", "spa"]}
    cut = updated[0].model_extra["x_first_segment_id"]
    found = directions(events)
    before = {sid: d for sid, d in found.items() if sid < cut}
    after = {sid: d for sid, d in found.items() if sid >= cut}
    assert after and set(after.values()) == {("spa", "eng")}, (cut, found)
    assert set(before.values()) <= {("eng", "fra"), ("fra", "eng")}, (cut, found)


async def events_of(live: LiveServer, *sent: dict[str, Any]) -> list[Any]:
    """Send ``sent`` after session.created; every event the server sends until it closes."""
    got: list[Any] = []
    async with openai_client(live, TOKEN).realtime.translations.connect(model=MODEL) as conn:
        assert (await conn.recv()).type == "session.created"
        for e in sent:
            await conn.send(e)  # type: ignore[arg-type]
        async with asyncio.timeout(60):
            async for ev in conn:
                got.append(ev)
    return got


def update(**session: Any) -> dict[str, Any]:
    return {"type": "session.update", "session": session}


@pytest.mark.parametrize(
    ("session", "words"),
    [
        ({"x_conversation": {"languages": ["eng"]}}, "has 1 language"),
        ({"x_conversation": {"languages": ["eng", "xxx"]}}, "'xxx'"),
        ({"x_conversation": {"languages": ["eng", "spa"]}, "audio": {"output": {"language": "fr"}}}, "drop"),
        ({"x_conversation": {"languages": ["eng", "spa"]}, "x_simultaneous_step_ms": 1000}, "simultaneous"),
        ({"x_conversation": ["eng", "spa"]}, '{"languages": ["en", "es"]}'),
        ({"x_conversation": {"languages": ["en", "es"], "voices": {"fr": 1}}}, "voices must be an object keyed by"),
        ({"x_conversation": {"languages": ["en", "es"], "voices": {"es": 1.5}}}, 'such as {"es": 2}'),
        ({"x_conversation": {"languages": ["en", "es"], "speeds": {"es": "slow"}}}, 'such as {"es": 0.85}'),
        ({"x_conversation": {"languages": ["en", "es"], "speeds": {"es": 3}}}, "speeds[spa] must be a number from 0.5"),
        ({"x_conversation": {"languages": ["en", "es"], "voices": {"es": 9}}}, "voices[spa] is 9: use 0..3"),
    ],
)
async def test_a_bad_conversation_ends_the_opening_session_with_the_field_named(
    plain: LiveServer, session: dict[str, Any], words: str
) -> None:
    got = await events_of(plain, update(**session))
    assert [e.type for e in got] == ["error"], got
    error = got[0].error
    assert (error.type, error.param) == ("invalid_request_error", PARAM) and words in error.message, error


async def test_a_server_without_an_identifier_refuses_a_conversation_naming_the_field(bare: LiveServer) -> None:
    got = await events_of(bare, update(x_conversation={"languages": ["eng", "spa"]}))
    assert [e.type for e in got] == ["error"], got
    assert got[0].error.param == PARAM and "download-lid-model" in got[0].error.message, got[0].error


async def test_a_running_conversation_refuses_a_bad_update_naming_the_field_and_goes_on(plain: LiveServer) -> None:
    start = update(x_conversation={"languages": ["eng", "spa"]})
    one = {**update(x_conversation={"languages": ["eng"]}), "event_id": "one"}
    dropped = {**update(x_conversation=None), "event_id": "null"}
    later = update(x_conversation={"languages": ["spa", "fra"]})
    got = await events_of(plain, start, one, dropped, later, {"type": "session.close"})
    # the door answers the null at once, the stream core the others in order
    assert [e.type for e in got] == ["session.updated", "error", "error", "session.updated", "session.closed"], got
    errors = {e.error.event_id: e.error for e in got[1:3]}
    assert {k: e.param for k, e in errors.items()} == {None: PARAM, "null": PARAM}, got
    assert "has 1 language" in errors[None].message
    assert got[3].session.model_extra["x_conversation"] == {"languages": ["spa", "fra"]}


async def test_each_partys_voice_and_speed_are_echoed_and_an_update_sets_them_anew(plain: LiveServer) -> None:
    first = {"languages": ["en", "es"], "voices": {"es": 1}, "speeds": {"en": 1.25}}
    later = {"languages": ["en", "es"], "speeds": {"es": 0.75}}
    same = {**update(x_conversation=later), "event_id": "same"}  # the same again
    got = await events_of(
        plain, update(x_conversation=first), update(x_conversation=later), same, {"type": "session.close"}
    )
    assert [e.type for e in got] == ["session.updated"] * 3 + ["session.closed"], got
    assert [e.session.model_extra["x_conversation"] for e in got[:3]] == [first, later, later]


# -- the audio REST endpoints -----------------------------------------------------------------------


async def test_a_rest_translation_in_a_conversation_goes_from_the_detected_language_into_the_other(
    spanish: LiveServer, plain: LiveServer, shared_audio: Path
) -> None:
    jfk = (shared_audio / "jfk.flac").read_bytes()
    for live, languages, want in ((spanish, "eng,spa", {("spa", "eng")}), (plain, "en,es", None)):
        c = openai_client(live, TOKEN)
        got = await c.audio.translations.create(
            file=("jfk.flac", jfk),
            model="whisper-1",
            response_format="verbose_json",
            extra_body={"x_conversation": languages},
        )
        segments = got.model_extra["segments"] if got.model_extra and "segments" in got.model_extra else None
        segments = [s if isinstance(s, dict) else s.model_dump() for s in (got.segments or segments or [])]
        pairs = {(s["x_source_language"], s["x_language"]) for s in segments}
        assert segments and all(a != b for a, b in pairs), segments
        if want is not None:
            assert pairs == want, segments
        else:
            assert pairs <= {("eng", "spa"), ("spa", "eng")}, segments


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"x_conversation": "eng"}, "has 1 language"),
        ({"x_conversation": "eng,spa", "x_target_language": "fr"}, "drop"),
        ({"x_conversation": "eng,,spa"}, "comma list"),
    ],
)
async def test_a_rest_translation_refuses_a_bad_conversation_naming_the_field(
    plain: LiveServer, shared_audio: Path, body: dict[str, str], words: str
) -> None:
    jfk = (shared_audio / "jfk.flac").read_bytes()
    with pytest.raises(openai.BadRequestError) as refused:
        await openai_client(plain, TOKEN).audio.translations.create(
            file=("jfk.flac", jfk), model="whisper-1", extra_body=body
        )
    error = refused.value.body
    assert isinstance(error, dict) and error["param"] == "x_conversation" and words in error["message"], error


async def test_a_rest_conversation_without_an_identifier_is_refused_naming_the_field(
    bare: LiveServer, shared_audio: Path
) -> None:
    jfk = (shared_audio / "jfk.flac").read_bytes()
    with pytest.raises(openai.APIStatusError) as refused:
        await openai_client(bare, TOKEN).audio.translations.create(
            file=("jfk.flac", jfk), model="whisper-1", extra_body={"x_conversation": "eng,spa"}
        )
    error = refused.value.body
    assert isinstance(error, dict) and error["param"] == "x_conversation", error
    assert "download-lid-model" in error["message"], error


async def test_a_stated_language_wins_and_an_update_clears_it(spanish: LiveServer, pcm24k: np.ndarray) -> None:
    """``x_conversation.stated_language`` (a push-to-talk party): with the Spanish-biased identifier
    every segment still goes English -> Spanish while English is stated; a mid-session update
    without it identifies again (Spanish -> English from the segment it names); the session echoes
    it; a stated language outside the conversation is refused naming the door's field."""
    first = {"x_conversation": {"languages": ["eng", "spa"], "stated_language": "eng"}}
    later = {"x_conversation": {"languages": ["eng", "spa"]}}
    events = await session(spanish, pcm24k, first, later)
    updated = [e for e in events if e.type == "session.updated"]
    assert updated[0].session.model_extra["x_conversation"] == first["x_conversation"]
    assert updated[-1].session.model_extra["x_conversation"] == later["x_conversation"]
    switch = updated[-1].model_extra["x_first_segment_id"]
    ways = directions(events)
    assert ways and all(way == (("eng", "spa") if sid < switch else ("spa", "eng")) for sid, way in ways.items()), (
        switch,
        ways,
    )
    events = await session(
        spanish, pcm24k[:2400], {"x_conversation": {"languages": ["eng", "spa"], "stated_language": "fra"}}
    )
    refused = [e.error for e in events if e.type == "error" and e.error.param == PARAM]
    assert refused and "stated_language must be one of its languages (eng, spa)" in refused[0].message, events
