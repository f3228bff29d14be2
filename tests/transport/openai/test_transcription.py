"""OpenAI's realtime transcription sessions (issue 51, item 5), driven by the real ``openai``
package against a real server on loopback: ``client.realtime.connect(extra_query={"intent":
"transcription"})`` (GA) and ``client.beta.realtime.connect(...)`` (beta). Every segment the stream
core cuts (checked against the gRPC door's ASR-only stream of the same audio) gets its item:
committed, then its transcript completed; commits, clears, bad updates, tokens and the drain."""

from __future__ import annotations

import asyncio
import base64
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
import websockets
from openai import AsyncOpenAI

from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.speech import speech_pcm16
from translate_svc.api.v1 import translate_pb2 as pb

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(60)]

TOKEN = "tr-test-token-3f1a9c"
LANGUAGES_ONLY = "tr-languages-only-77d2"
MODEL = "gpt-4o-transcribe"
CHUNK = 4800  # 200 ms at 24 kHz
COMPLETED = "conversation.item.input_audio_transcription.completed"
DELTA = "conversation.item.input_audio_transcription.delta"
COMMITTED = "input_audio_buffer.committed"
FAILED = "conversation.item.input_audio_transcription.failed"
LOGPROBS = "item.input_audio_transcription.logprobs"
SESSION: dict[str, Any] = {
    "type": "transcription",
    "audio": {"input": {"transcription": {"model": "whisper-1", "language": "en"}}},
}


@pytest.fixture(scope="module")
def audio(shared_audio: Path) -> dict[str, np.ndarray]:
    """Each file as 24 kHz PCM16, with a second of silence after it: its last segment is closed by
    a pause, on every door."""
    silence = np.zeros(24000, dtype="<i2")
    return {
        name: np.concatenate([speech_pcm16(shared_audio / name, 60, 24000), silence])
        for name in ("jfk.flac", "silero_test.wav")
    }


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def door(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    tokens = tmp_path_factory.mktemp("tokens") / "tokens"
    tokens.write_text(f"{TOKEN} stream\n{LANGUAGES_ONLY} languages\n")
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    settings.auth.tokens_file = tokens
    async with serving(settings) as live:
        yield live


def client(live: LiveServer, token: str = TOKEN) -> AsyncOpenAI:
    assert live.server.http is not None
    return AsyncOpenAI(base_url=f"http://127.0.0.1:{live.server.http.port}/v1", api_key=token, max_retries=0)


def connect(live: LiveServer, token: str = TOKEN) -> Any:
    return client(live, token).realtime.connect(model=MODEL, extra_query={"intent": "transcription"})


def b64(pcm: np.ndarray) -> str:
    return base64.b64encode(pcm.tobytes()).decode()


async def reference(live: LiveServer, pcm: np.ndarray, *, noise_suppression: bool = False) -> list[tuple[int, int]]:
    """The spans the stream core cuts from the same audio: the gRPC door's ASR-only stream (with
    RNNoise before the VAD if ``noise_suppression``)."""
    cfg = pb.StreamingConfig(
        format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=24000, channels=1),
        source_language="eng",
        output=pb.OutputOptions(text=False, speech=False, transcript=True),
        noise_suppression=pb.NOISE_SUPPRESSION_RNNOISE if noise_suppression else pb.NOISE_SUPPRESSION_OFF,
    )
    msgs = [pb.StreamingTranslateRequest(config=cfg)]
    msgs += [pb.StreamingTranslateRequest(audio=pcm[i : i + CHUNK].tobytes()) for i in range(0, len(pcm), CHUNK)]
    call = live.stub.StreamingTranslate(iter(msgs), timeout=180, metadata=(("authorization", f"Bearer {TOKEN}"),))
    return [(r.segment.start_ms, r.segment.end_ms) async for r in call if r.HasField("segment")]


async def until_transcribed(conn: Any, segments: int) -> list[Any]:
    """Events until ``segments`` items have their transcript."""
    got: list[Any] = []
    async with asyncio.timeout(240):
        async for ev in conn:
            got.append(ev)
            if len([e for e in got if e.type in (COMPLETED, FAILED)]) == segments:
                return got
    raise AssertionError(f"the session ended first: {[e.type for e in got]}")


async def commit_after_the_last_pause(conn: Any) -> list[Any]:
    """Every segment is closed and sent: a commit finds no speech, and is answered all the same,
    with an empty item."""
    await conn.input_audio_buffer.commit()
    got = [await conn.recv(), await conn.recv()]
    assert [e.type for e in got] == [COMMITTED, COMPLETED] and got[0].item_id == got[1].item_id
    assert got[1].transcript == "" and got[1].model_extra["x_no_speech"] and got[1].usage.seconds == 0
    return got


def check_items(events: list[Any], spans: list[tuple[int, int]], *, logprobs: bool = False) -> None:
    """Every segment is an item: committed (in order, each naming the one before), then its delta
    (when it has text) and its completed transcript, with its span, duration and timing; with
    ``logprobs`` (the session's ``include``), each transcript's tokens' logprobs, else none."""
    kinds = [e.type for e in events]
    assert "error" not in kinds and not any(k.endswith(".failed") for k in kinds), kinds
    committed = [e for e in events if e.type == COMMITTED]
    assert [c.previous_item_id for c in committed] == [None] + [c.item_id for c in committed[:-1]]
    done = [e for e in events if e.type == COMPLETED and e.model_extra.get("x_segment")]
    assert [(d.x_segment["start_ms"], d.x_segment["end_ms"]) for d in done] == spans
    at = {id(e): n for n, e in enumerate(events)}
    item_of = {c.item_id: at[id(c)] for c in committed}
    for d in done:
        assert item_of[d.item_id] < at[id(d)]  # committed before its transcript
        assert d.usage.type == "duration"
        assert d.usage.seconds == (d.x_segment["end_ms"] - d.x_segment["start_ms"]) / 1000
        assert d.x_timing["model_ms"] > 0 and d.x_language == "eng" and d.content_index == 0
        deltas = [e for e in events if e.type == DELTA and e.item_id == d.item_id]
        assert [e.delta for e in deltas] == ([d.transcript] if d.transcript else [])
        assert all(at[id(e)] < at[id(d)] for e in deltas)
        if not logprobs:
            assert d.logprobs is None and all(e.logprobs is None for e in deltas)
            continue
        # confidence (issue 72): the transcript's tokens, each {token, logprob, bytes}, in the delta too
        assert d.logprobs is not None and (len(d.logprobs) > 0) == bool(d.transcript)
        for lp in d.logprobs:
            assert math.isfinite(lp.logprob) and lp.logprob <= 0.0 and lp.bytes == list(lp.token.encode())
        assert all([x.model_dump() for x in e.logprobs or []] == [x.model_dump() for x in d.logprobs] for e in deltas)
    assert len({d.item_id for d in done}) == len(done)
    if logprobs:  # each segment its own values: not a constant
        means = [sum(x.logprob for x in d.logprobs) / len(d.logprobs) for d in done if d.logprobs]
        assert len(means) >= 2 and len(set(means)) == len(means)


@pytest.mark.parametrize("name", ["jfk.flac", "silero_test.wav"])
async def test_a_transcription_session_completes_every_segment_the_stream_core_cuts(
    door: LiveServer, audio: dict[str, np.ndarray], name: str
) -> None:
    pcm = audio[name]
    spans = await reference(door, pcm)
    assert len(spans) >= 3
    async with connect(door) as conn:
        created = await conn.recv()
        assert created.type == "session.created" and created.session.type == "transcription"
        assert created.session.audio.input.turn_detection.type == "server_vad"  # the default
        await conn.session.update(session={**SESSION, "include": [LOGPROBS]})
        updated = await conn.recv()
        assert updated.type == "session.updated" and updated.session.audio.input.transcription.language == "en"
        assert updated.session.include == [LOGPROBS]
        for at in range(0, len(pcm), CHUNK):
            await conn.input_audio_buffer.append(audio=b64(pcm[at : at + CHUNK]))
        events = await until_transcribed(conn, len(spans))  # the last pause closed the last segment
        events += await commit_after_the_last_pause(conn)
    check_items(events, spans, logprobs=True)
    # server VAD: each speech region is bracketed, named by its first segment's item
    starts = [e for e in events if e.type == "input_audio_buffer.speech_started"]
    stops = [e for e in events if e.type == "input_audio_buffer.speech_stopped"]
    assert len(starts) == len(stops) >= 1 and [s.item_id for s in starts] == [s.item_id for s in stops]
    committed_ids = [e.item_id for e in events if e.type == COMMITTED]
    for stop in stops:  # its region's first segment is committed as it stops
        after = events[events.index(stop) + 1]
        assert after.type == COMMITTED and after.item_id == stop.item_id
    assert [s.audio_start_ms for s in starts] == sorted(s.audio_start_ms for s in starts)
    assert all(a.audio_start_ms < b.audio_end_ms for a, b in zip(starts, stops, strict=True))
    assert events[-1].model_extra["x_no_speech"] and events[-1].item_id == committed_ids[-1]


async def test_with_turn_detection_off_nothing_is_said_until_the_client_commits(
    door: LiveServer, audio: dict[str, np.ndarray]
) -> None:
    pcm = audio["jfk.flac"]
    spans = await reference(door, pcm)
    rows = sum(b.size for b in door.batches)  # the model's work so far (the server's own count)
    session = {**SESSION, "audio": {"input": {**SESSION["audio"]["input"], "turn_detection": None}}}
    async with connect(door) as conn:
        assert (await conn.recv()).type == "session.created"
        await conn.session.update(session=session)
        updated = await conn.recv()
        assert updated.type == "session.updated" and updated.session.audio.input.turn_detection is None
        for at in range(0, len(pcm), CHUNK):
            await conn.input_audio_buffer.append(audio=b64(pcm[at : at + CHUNK]))
        # the model has transcribed every segment (the server's own count: its batch hook's list,
        # which has nothing to await)...
        async with asyncio.timeout(120):
            while sum(b.size for b in door.batches) < rows + len(spans):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        with pytest.raises(TimeoutError):  # ...and the client has heard of none: it has not committed
            await asyncio.wait_for(conn.recv(), 0.5)
        await conn.input_audio_buffer.commit()  # it closes no speech: it commits what waited, no empty item
        events = await until_transcribed(conn, len(spans))
        events += await commit_after_the_last_pause(conn)
    check_items(events, spans)
    assert not any(e.type.startswith("input_audio_buffer.speech_") for e in events)
    assert sum(e.type == COMPLETED and bool(e.model_extra.get("x_no_speech")) for e in events) == 1


async def test_a_clear_drops_what_was_not_committed(door: LiveServer, audio: dict[str, np.ndarray]) -> None:
    pcm = audio["jfk.flac"]
    session = {**SESSION, "audio": {"input": {**SESSION["audio"]["input"], "turn_detection": None}}}
    async with connect(door) as conn:
        assert (await conn.recv()).type == "session.created"
        await conn.session.update(session=session)
        assert (await conn.recv()).type == "session.updated"
        for at in range(0, len(pcm), CHUNK):
            await conn.input_audio_buffer.append(audio=b64(pcm[at : at + CHUNK]))
        await conn.input_audio_buffer.clear()
        await conn.input_audio_buffer.append(audio=b64(np.zeros(24000, dtype="<i2")))
        await conn.input_audio_buffer.commit()
        got = []
        async with asyncio.timeout(60):
            async for ev in conn:
                got.append(ev)
                if ev.type == COMPLETED:
                    break
    assert [e.type for e in got] == ["input_audio_buffer.cleared", COMMITTED, COMPLETED], [e.type for e in got]
    assert got[-1].transcript == "" and got[-1].model_extra["x_no_speech"]


async def test_the_beta_protocol_gets_its_own_events(door: LiveServer, audio: dict[str, np.ndarray]) -> None:
    pcm = np.concatenate([audio["jfk.flac"][: 24000 * 5], np.zeros(24000, "<i2")])
    spans = await reference(door, pcm, noise_suppression=True)  # the session asks for noise reduction
    assert door.server.http is not None
    port = door.server.http.port  # the beta client takes wss:// unless told the WebSocket's own URL
    c = AsyncOpenAI(
        api_key=TOKEN, base_url=f"http://127.0.0.1:{port}/v1", websocket_base_url=f"ws://127.0.0.1:{port}/v1"
    )
    async with c.beta.realtime.connect(model=MODEL, extra_query={"intent": "transcription"}) as conn:
        created: Any = await conn.recv()  # (a type the beta SDK's union does not name)
        assert created.type == "transcription_session.created", created
        await conn.transcription_session.update(
            session={
                "input_audio_format": "pcm16",
                "input_audio_transcription": {"model": "gpt-4o-transcribe", "language": "en", "prompt": "Kennedy, Ask"},
                "input_audio_noise_reduction": {"type": "near_field"},  # RNNoise before the VAD (issue 72)
                "turn_detection": {"type": "server_vad", "threshold": 0.5, "silence_duration_ms": 100},
            }
        )
        updated: Any = await conn.recv()
        assert updated.type == "transcription_session.updated"
        assert updated.session.input_audio_transcription.language == "en"
        assert updated.session.model_extra["x_ignored"] == []
        assert updated.session.input_audio_noise_reduction == {"type": "near_field"}
        for at in range(0, len(pcm), CHUNK):
            await conn.input_audio_buffer.append(audio=b64(pcm[at : at + CHUNK]))
        events = await until_transcribed(conn, len(spans))
        events += await commit_after_the_last_pause(conn)
    check_items(events, spans)


async def test_a_bad_update_is_refused_precisely_and_the_session_and_the_server_go_on(
    door: LiveServer, audio: dict[str, np.ndarray]
) -> None:
    pcm = audio["jfk.flac"][: 24000 * 3]
    bad = [
        ({**SESSION, "audio": {"input": {"transcription": {"model": "whisper-1", "colour": "red"}}}},
         "session.audio.input.transcription.colour"),
        ({**SESSION, "audio": {"input": {"transcription": {"model": ["whisper-1", "gpt-4o-transcribe"]}}}},
         "session.audio.input.transcription.model"),
        ({**SESSION, "audio": {"input": {"turn_detection": {"type": "semantic_vad", "eagerness": "eager"}}}},
         "session.audio.input.turn_detection.eagerness"),
        ({**SESSION, "include": ["item.input_audio_transcription.words"]}, "session.include"),
        ({**SESSION, "include": LOGPROBS}, "session.include"),
        ({"type": "realtime"}, "session.type"),
    ]  # fmt: skip
    async with connect(door) as conn:
        assert (await conn.recv()).type == "session.created"
        errors = []
        for n, (session, _) in enumerate(bad):
            await conn.send({"type": "session.update", "session": session, "event_id": f"bad-{n}"})
            errors.append(await conn.recv())
        assert [e.type for e in errors] == ["error"] * len(bad)
        assert [(e.error.type, e.error.code) for e in errors] == [("invalid_request_error", "invalid_value")] * len(bad)
        assert [e.error.param for e in errors] == [param for _, param in bad]
        assert [e.error.event_id for e in errors] == [f"bad-{n}" for n in range(len(bad))]
        assert "colour" in errors[0].error.message and "one model name" in errors[1].error.message
        # the session goes on: a good update starts it, and it transcribes
        await conn.session.update(session=SESSION)
        assert (await conn.recv()).type == "session.updated"
        # once it runs, its language is fixed: refused, and it still goes on
        await conn.session.update(session={**SESSION, "audio": {"input": {"transcription": {"language": "es"}}}})
        refused = await conn.recv()
        assert refused.type == "error" and refused.error.param == "session"
        for at in range(0, len(pcm), CHUNK):
            await conn.input_audio_buffer.append(audio=b64(pcm[at : at + CHUNK]))
        await conn.input_audio_buffer.append(audio=b64(np.zeros(24000, dtype="<i2")))
        events = await until_transcribed(
            conn, len(await reference(door, np.concatenate([pcm, np.zeros(24000, "<i2")])))
        )
    assert "error" not in [e.type for e in events]
    # nothing else was affected: another client is served as ever
    async with connect(door) as other:
        assert (await other.recv()).type == "session.created"
        await other.session.update(session=SESSION)
        assert (await other.recv()).type == "session.updated"


async def test_the_translation_door_s_tokens_apply(door: LiveServer) -> None:
    with pytest.raises(websockets.exceptions.InvalidStatus, match="401"):
        async with connect(door, "not-a-token"):
            pass
    with pytest.raises(websockets.exceptions.InvalidStatus, match="403"):
        async with connect(door, LANGUAGES_ONLY):
            pass


async def test_a_drain_is_a_notice_then_the_restart_close_and_no_error(
    test_model_dir: Path, audio: dict[str, np.ndarray]
) -> None:
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    settings.server.drain_s = 1.0
    pcm = audio["jfk.flac"]
    got: list[Any] = []
    async with serving(settings) as live:
        async with connect(live, "-") as conn:
            assert (await conn.recv()).type == "session.created"
            await conn.session.update(session=SESSION)
            assert (await conn.recv()).type == "session.updated"
            for at in range(0, 24000 * 4, CHUNK):
                await conn.input_audio_buffer.append(audio=b64(pcm[at : at + CHUNK]))
            stopping = asyncio.create_task(live.server.stop(grace=5))
            with pytest.raises(websockets.exceptions.ConnectionClosedError) as closed:
                async with asyncio.timeout(30):
                    async for ev in conn:
                        got.append(ev)
            await stopping
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012  # service restart
    kinds = [e.type for e in got]
    assert "error" not in kinds, kinds  # a client that closes on any error is served to the end
    notice = got[kinds.index("session.x_draining")]
    assert notice.model_extra["code"] == "server_shutting_down" and notice.model_extra["remaining_ms"] > 0
    # the speech before the drain's end was transcribed and sent
    assert COMPLETED in kinds[kinds.index("session.x_draining") :]
