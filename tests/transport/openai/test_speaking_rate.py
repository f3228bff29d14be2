"""The speaking rate on the OpenAI realtime translation door (issue 90 item 1: ``session.speed`` as
OpenAI names it), driven by the real ``openai`` SDK against a real server on the test checkpoint:
the same speech at the model's own rate and at ``audio.output.speed`` 1.5, each segment's speech
about 1/1.5 as long; a mid-stream ``session.update`` with the beta sessions' ``speed`` applied from
the segment ``x_first_segment_id`` names; a rate outside 0.5..2.0 refused with ``param`` naming the
field as the client wrote it. The audio REST endpoints answer with text only: ``speed`` there (OpenAI's
``/v1/audio/speech`` field) is a 400 saying where the rate is set."""

from __future__ import annotations

import asyncio
import base64
import time
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

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(40)]

SECONDS = 11.0  # of jfk.flac: four segments on the test checkpoint
CHUNK = 4800  # 200 ms at 24 kHz, sent at real time
TOKEN = "rate-test-token-7d1f4a"
#: one vocoder frame (20 ms of model audio) at the door's 24 kHz
FRAME = 480


@pytest.fixture(scope="module")
def pcm24k(shared_audio: Path) -> np.ndarray:
    return speech_pcm16(shared_audio / "jfk.flac", SECONDS, 24000)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def door(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    tokens = tmp_path_factory.mktemp("tokens") / "tokens"
    tokens.write_text(f"{TOKEN} stream translate\n")
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    settings.auth.tokens_file = tokens
    async with serving(settings) as live:
        yield live


async def session(
    live: LiveServer, pcm: np.ndarray, first: dict[str, Any], later: dict[str, Any] | None = None
) -> list[Any]:
    """A segment-mode session configured by ``first`` (merged into the ``session.update`` that names
    Spanish), the speech sent at real time, ``later`` sent as a ``session.update`` half way; every
    event until ``session.closed``."""
    events: list[Any] = []
    async with openai_client(live, TOKEN).realtime.translations.connect(model=MODEL) as conn:
        assert (await conn.recv()).type == "session.created"
        audio = {"output": {"language": "es", **first.pop("output", {})}, "input": {"language": "en"}}
        await conn.send({"type": "session.update", "session": {"audio": audio, "x_simultaneous_step_ms": 0, **first}})  # type: ignore[arg-type]

        async def send() -> None:
            t0 = time.perf_counter()
            chunks = range(0, len(pcm), CHUNK)
            for n, at in enumerate(chunks):
                await asyncio.sleep(max(0.0, t0 + n * 0.2 - time.perf_counter()))
                if later is not None and n == len(chunks) // 2:
                    await conn.send({"type": "session.update", "session": later})  # type: ignore[arg-type]
                chunk = pcm[at : at + CHUNK].tobytes()
                await conn.session.input_audio_buffer.append(audio=base64.b64encode(chunk).decode())
            await conn.session.close()

        sender = asyncio.create_task(send())
        async with asyncio.timeout(120):
            async for ev in conn:
                events.append(ev)
                if ev.type == "session.closed":
                    break
        await sender
    return events


def speech_of(events: list[Any]) -> dict[int, int]:
    """Each segment's speech (24 kHz samples), by segment id."""
    out: dict[int, int] = {}
    for e in events:
        if e.type == "session.output_audio.delta":
            sid = e.model_extra["x_segment"]["segment_id"]
            out[sid] = out.get(sid, 0) + len(base64.b64decode(e.delta)) // 2
    return out


def spans(events: list[Any]) -> dict[int, tuple[int, int]]:
    return {
        e.model_extra["x_segment"]["segment_id"]: (
            e.model_extra["x_segment"]["start_ms"],
            e.model_extra["x_segment"]["end_ms"],
        )
        for e in events
        if e.type == "session.output_transcript.delta"
    }


def assert_rate(at_one: int, got: int, speed: float, what: str) -> None:
    """``got`` samples are ``at_one`` spoken at ``speed``: within two vocoder frames and 5 %."""
    want = at_one / speed
    assert abs(got - want) <= 2 * FRAME + 0.05 * want, (
        f"{what}: {got} samples at {speed}, {at_one} at 1 (want {want:.0f})"
    )


async def test_audio_output_speed_speaks_each_segment_faster_and_an_update_applies_from_the_next_segment(
    door: LiveServer, pcm24k: np.ndarray
) -> None:
    own = await session(door, pcm24k, {})
    fast = await session(door, pcm24k, {"output": {"speed": 1.5}}, later={"speed": 0.75})
    for events in (own, fast):
        kinds = [e.type for e in events]
        assert "error" not in kinds and kinds[-1] == "session.closed", kinds
    # the rate is echoed where the door echoes its other fields: session.updated's audio.output
    assert own[0].type == "session.updated" and own[0].session.audio.output.model_extra["speed"] == 1.0
    assert fast[0].type == "session.updated" and fast[0].session.audio.output.model_extra["speed"] == 1.5
    updated = [e for e in fast[1:] if e.type == "session.updated"]
    assert len(updated) == 1 and updated[0].session.audio.output.model_extra["speed"] == 0.75, updated
    first = updated[0].model_extra["x_first_segment_id"]
    # the same audio, the same segments (the VAD is deterministic): each one's speech compared
    assert spans(own) == spans(fast)
    at_one, got = speech_of(own), speech_of(fast)
    assert set(at_one) == set(got) and len(at_one) >= 3, (at_one, got)
    before = [sid for sid in at_one if sid < first]
    after = [sid for sid in at_one if sid >= first]
    assert before and after, (first, sorted(at_one))  # the update came between two segments' ends
    for sid in before:
        assert_rate(at_one[sid], got[sid], 1.5, f"segment {sid}")
    for sid in after:
        assert_rate(at_one[sid], got[sid], 0.75, f"segment {sid}")


async def errors_of(live: LiveServer, *events: dict[str, Any]) -> list[Any]:
    """Send ``events`` after session.created; every event the server sends until it closes."""
    got: list[Any] = []
    async with openai_client(live, TOKEN).realtime.translations.connect(model=MODEL) as conn:
        assert (await conn.recv()).type == "session.created"
        for e in events:
            await conn.send(e)  # type: ignore[arg-type]
        async with asyncio.timeout(30):
            async for ev in conn:
                got.append(ev)
    return got


async def test_a_rate_outside_half_to_double_is_refused_naming_the_field_as_the_client_wrote_it(
    door: LiveServer,
) -> None:
    # in the config: the error, and the session closes (as any config it cannot use)
    for where, value, param in (
        ({"audio": {"output": {"language": "es", "speed": 2.5}}}, 2.5, "session.audio.output.speed"),
        ({"speed": 0.25, "audio": {"output": {"language": "es"}}}, 0.25, "session.speed"),  # OpenAI's least
        ({"audio": {"output": {"language": "es", "speed": "fast"}}}, "fast", "session.audio.output.speed"),
    ):
        got = await errors_of(door, {"type": "session.update", "session": where})
        assert [e.type for e in got] == ["error"], (value, got)
        error = got[0].error
        assert (error.type, error.code, error.param) == ("invalid_request_error", "invalid_value", param), error
        assert "0.5" in error.message and "2.0" in error.message, error.message
    # both spellings, different rates: refused, naming the beta one
    both = {"speed": 1.25, "audio": {"output": {"language": "es", "speed": 1.5}}}
    got = await errors_of(door, {"type": "session.update", "session": both})
    assert [e.type for e in got] == ["error"] and got[0].error.param == "session.speed", got
    # once the stream runs: answered, not fatal; the session goes on at its rate
    start = {"type": "session.update", "session": {"audio": {"output": {"language": "es", "speed": 1.25}}}}
    bad = {"type": "session.update", "event_id": "rate", "session": {"audio": {"output": {"speed": 3}}}}
    got = await errors_of(door, start, bad, {"type": "session.close"})
    assert [e.type for e in got] == ["session.updated", "error", "session.closed"], got
    error = got[1].error
    assert (error.param, error.event_id) == ("session.audio.output.speed", "rate") and "got 3" in error.message
    assert got[0].session.audio.output.model_extra["speed"] == 1.25


async def test_a_rate_beyond_a_float_is_an_error_event_and_a_running_session_goes_on(door: LiveServer) -> None:
    """``speed`` as a JSON integer no float holds (10**400): the ``error`` event naming the field,
    as any rate out of range (it raised OverflowError formatting the value, and the session closed
    with no event); once the stream runs, the session answers what comes after it."""
    huge = 10**400
    for session, param in (
        ({"audio": {"output": {"language": "es", "speed": huge}}}, "session.audio.output.speed"),
        ({"speed": -huge, "audio": {"output": {"language": "es"}}}, "session.speed"),
    ):
        got = await errors_of(door, {"type": "session.update", "session": session})
        assert [e.type for e in got] == ["error"], got  # a config it cannot use: the error, then the close
        error = got[0].error
        assert (error.type, error.code, error.param) == ("invalid_request_error", "invalid_value", param), error
        assert "0.5" in error.message and "2.0" in error.message and len(error.message) < 200, error.message
    start = {"type": "session.update", "session": {"audio": {"output": {"language": "es", "speed": 1.25}}}}
    bad = {"type": "session.update", "event_id": "huge", "session": {"speed": huge}}
    after = {"type": "session.update", "session": {"audio": {"output": {"speed": 1.5}}}}
    got = await errors_of(door, start, bad, after, {"type": "session.close"})
    assert [e.type for e in got] == ["session.updated", "error", "session.updated", "session.closed"], got
    error = got[1].error
    assert (error.type, error.param, error.event_id) == ("invalid_request_error", "session.speed", "huge"), error
    assert got[2].session.audio.output.model_extra["speed"] == 1.5


async def test_the_audio_rest_endpoints_say_they_have_no_speech_to_set_a_rate_on(
    door: LiveServer, shared_audio: Path
) -> None:
    jfk = (shared_audio / "jfk.flac").read_bytes()
    c = openai_client(door, TOKEN)
    for create in (c.audio.transcriptions.create, c.audio.translations.create):
        for speed in ("1.5", str(10**400)):  # any rate, one beyond a float's range too
            with pytest.raises(openai.BadRequestError) as refused:
                await create(file=("jfk.flac", jfk), model="whisper-1", extra_body={"speed": speed})
            body = refused.value.body
            assert isinstance(body, dict) and body["param"] == "speed", body
            assert "no speech" in body["message"] and "audio.output.speed" in body["message"], body
