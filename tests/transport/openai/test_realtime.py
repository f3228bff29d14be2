"""The OpenAI-compatible door, driven by the real ``openai`` package: ``AsyncOpenAI(base_url=...,
api_key=...).realtime.translations.connect(...)`` against a real server on loopback."""

from __future__ import annotations

import asyncio
import base64
import json
import time
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
from translate_svc.model.testing.stable import StableTranslator

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(40)]

SECONDS = 20  # of silero_test.wav, sent at real time
CHUNK = 4800  # 200 ms at 24 kHz: OpenAI's frame
TOKEN = "rt-test-token-5b8e2c"
MODEL = "gpt-realtime-translate"


@pytest.fixture(scope="module")
def pcm24k(shared_audio: Path) -> np.ndarray:
    return speech_pcm16(shared_audio / "silero_test.wav", SECONDS, 24000)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def door(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    tokens = tmp_path_factory.mktemp("tokens") / "tokens"
    tokens.write_text(f"{TOKEN} stream\nrt-languages-only-1c9d languages\n")
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    settings.auth.tokens_file = tokens
    settings.limits.max_streams = 2
    async with serving(settings) as live:
        yield live


def client(live: LiveServer, token: str = TOKEN) -> AsyncOpenAI:
    assert live.server.http is not None
    return AsyncOpenAI(base_url=f"http://127.0.0.1:{live.server.http.port}/v1", api_key=token, max_retries=0)


def grpc_metadata() -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {TOKEN}"),)


async def grpc_segments(live: LiveServer, pcm24k: np.ndarray) -> list[pb.SegmentResult]:
    """The same 24 kHz audio through the gRPC door: the reference."""
    cfg = pb.StreamingConfig(
        format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=24000, channels=1),
        source_language="eng",
        target_languages=["spa"],
        output=pb.OutputOptions(text=True, speech=False, transcript=True),
    )
    msgs = [pb.StreamingTranslateRequest(config=cfg)]
    msgs += [pb.StreamingTranslateRequest(audio=pcm24k[i : i + CHUNK].tobytes()) for i in range(0, len(pcm24k), CHUNK)]
    call = live.stub.StreamingTranslate(iter(msgs), timeout=120, metadata=grpc_metadata())
    return [r.segment async for r in call if r.HasField("segment")]


async def test_the_openai_sdk_translates_a_real_time_stream_like_the_grpc_door(
    door: LiveServer, pcm24k: np.ndarray
) -> None:
    events: list[Any] = []
    async with client(door).realtime.translations.connect(model=MODEL) as conn:
        created = await conn.recv()
        assert created.type == "session.created" and created.session.model == MODEL
        await conn.session.update(
            session={
                "audio": {
                    "output": {"language": "es"},
                    # the transcript needs the spoken language (this test server has no identifier)
                    "input": {"language": "en", "transcription": {"model": "whisper-1"}},
                },
                "x_captions_interval_ms": 500,  # our extension: live captions on empty transcript deltas
                "x_simultaneous_step_ms": 0,  # segment mode (the default is simultaneous), as gRPC's
            }
        )

        async def send() -> None:
            t0 = time.perf_counter()
            for n, at in enumerate(range(0, len(pcm24k), CHUNK)):
                await asyncio.sleep(max(0.0, t0 + n * 0.2 - time.perf_counter()))
                chunk = pcm24k[at : at + CHUNK].tobytes()
                await conn.session.input_audio_buffer.append(audio=base64.b64encode(chunk).decode())
            await conn.session.close()

        sender = asyncio.create_task(send())
        async for ev in conn:
            events.append(ev)
            if ev.type == "session.closed":
                break
        await sender
    kinds = [e.type for e in events]
    assert kinds[0] == "session.updated" and kinds[-1] == "session.closed" and "error" not in kinds, kinds
    assert events[0].session.audio.output.language == "es"
    want = await grpc_segments(door, pcm24k)
    assert len(want) >= 4
    outs = [e for e in events if e.type == "session.output_transcript.delta"]
    ins = [e for e in events if e.type == "session.input_transcript.delta" and not e.model_extra.get("x_interim")]
    audio = [e for e in events if e.type == "session.output_audio.delta"]
    # live captions: empty deltas (a client appending deltas appends nothing), each before its
    # segment's own deltas
    captions = [(n, e) for n, e in enumerate(events) if e.model_extra.get("x_interim")]
    assert captions and all(e.type == "session.input_transcript.delta" and e.delta == "" for _, e in captions)
    finals_at: dict[int, int] = {}  # segment id -> its first delta
    for n, e in enumerate(events):
        if e.model_extra.get("x_segment"):
            finals_at.setdefault(e.x_segment["segment_id"], n)
    for n, e in captions:
        caption = e.x_interim
        assert caption["end_ms"] > caption["start_ms"] and set(caption["translations"]) == {"es"}
        assert n < finals_at.get(caption["segment_id"], len(events)), caption
    # one delta per segment (a whole segment's text), spaced; the exact span as an extension
    got_out = [(e.x_segment["start_ms"], e.x_segment["end_ms"], e.delta.strip()) for e in outs]
    assert got_out == [(s.start_ms, s.end_ms, s.translations[0].text) for s in want if s.translations[0].text]
    got_in = [(e.x_segment["end_ms"], e.delta.strip()) for e in ins]
    assert got_in == [(s.end_ms, s.transcript.text) for s in want if s.transcript.text]
    assert all(e.elapsed_ms == e.x_segment["end_ms"] for e in outs + ins + audio)
    # speech: 24 kHz PCM16 chunks of at most 200 ms, for the segments that have text
    assert audio and all(e.sample_rate == 24000 and e.format == "pcm16" and e.channels == 1 for e in audio)
    sizes = [len(base64.b64decode(e.delta)) for e in audio]
    assert max(sizes) <= 2 * CHUNK and all(s % 2 == 0 for s in sizes)
    assert {e.x_segment["segment_id"] for e in audio} <= {s.segment_id for s in want}
    assert events[-1].model_extra["x_segments_total"] == len(want)


async def errors_of(live: LiveServer, *events: dict[str, Any], token: str = TOKEN) -> list[Any]:
    """Send ``events`` after session.created; every event the server sends until it closes."""
    got: list[Any] = []
    async with client(live, token).realtime.translations.connect(model=MODEL) as conn:
        assert (await conn.recv()).type == "session.created"
        for e in events:
            await conn.send(e)  # type: ignore[arg-type]
        async with asyncio.timeout(30):
            async for ev in conn:
                got.append(ev)
    return got


async def test_the_sdk_gets_the_documented_errors(door: LiveServer) -> None:
    # a bad token: the handshake is refused (HTTP 401), with OpenAI's error shape in the body
    with pytest.raises(Exception, match="401") as refused:
        await errors_of(door, token="not-a-token")
    assert "websockets" in type(refused.value).__module__ or "openai" in type(refused.value).__module__
    # a token without the "stream" permission: 403
    with pytest.raises(Exception, match="403"):
        await errors_of(door, token="rt-languages-only-1c9d")
    # a language the model does not have: an error event, then the server closes the session
    got = await errors_of(door, {"type": "session.update", "session": {"audio": {"output": {"language": "tlh"}}}})
    assert [e.type for e in got] == ["error"], got
    assert got[0].error.type == "invalid_request_error" and got[0].error.code == "invalid_value"
    assert "tlh" in got[0].error.message
    # audio that is not 24 kHz PCM16 (an odd number of bytes): an error event, then the close
    update = {"type": "session.update", "session": {"audio": {"output": {"language": "es"}}}}
    odd = {"type": "session.input_audio_buffer.append", "audio": base64.b64encode(b"\x01\x02\x03").decode()}
    got = await errors_of(door, update, odd)
    assert [e.type for e in got] == ["session.updated", "error", "session.closed"], got
    assert got[1].error.code == "invalid_value" and "PCM16" in got[1].error.message
    assert got[2].x_reason == "error"  # closed after its open speech (none here), then the error
    # audio before any output language: an error event saying what to do; the session stays open
    early = {"type": "session.input_audio_buffer.append", "audio": base64.b64encode(bytes(480)).decode()}
    got = await errors_of(door, early, {"type": "session.close"})
    assert got[0].type == "error" and got[0].error.code == "missing_output_language", got
    # language detection ("auto") on a server without the language identifier
    auto = {
        "type": "session.update",
        "session": {"audio": {"output": {"language": "es"}, "input": {"language": "auto"}}},
    }
    got = await errors_of(door, auto)
    assert [e.type for e in got] == ["error"] and got[0].error.code == "unsupported_feature", got
    assert "download-lid-model" in got[0].error.message
    # live captions more often than the server allows: the error names the smallest interval
    fast = {
        "type": "session.update",
        "session": {"x_captions_interval_ms": 20, "audio": {"output": {"language": "es"}}},
    }
    got = await errors_of(door, fast)
    assert [e.type for e in got] == ["error"] and got[0].error.code == "invalid_value", got
    assert "250" in got[0].error.message, got[0].error.message
    # a simultaneous step outside the server's limits, or not a number: the error says the range
    for step in (100, "1000"):
        bad = {
            "type": "session.update",
            "session": {"x_simultaneous_step_ms": step, "audio": {"output": {"language": "es"}}},
        }
        got = await errors_of(door, bad)
        assert [e.type for e in got] == ["error"] and got[0].error.code == "invalid_value", got
        assert ("500" if step == 100 else "x_simultaneous_step_ms") in got[0].error.message, got[0].error.message


async def test_sessions_count_in_max_streams_and_in_metrics(door: LiveServer) -> None:
    from translate_svc.observability import metrics

    update = {"type": "session.update", "session": {"audio": {"output": {"language": "es"}}}}
    before = metrics.STREAMS_STARTED.labels("main")._value.get()
    async with (
        client(door).realtime.translations.connect(model=MODEL) as one,
        client(door).realtime.translations.connect(model=MODEL) as two,
    ):
        for conn in (one, two):
            assert (await conn.recv()).type == "session.created"
            await conn.send(update)  # type: ignore[arg-type]
            assert (await conn.recv()).type == "session.updated"
        assert metrics.STREAMS_STARTED.labels("main")._value.get() == before + 2
        # the third: max_streams is 2, refused at the handshake (HTTP 429, Retry-After), no WebSocket
        with pytest.raises(Exception, match="HTTP 429") as refused:
            await errors_of(door, update)
        response = refused.value.response  # type: ignore[attr-defined]  # websockets' InvalidStatus
        error = json.loads(response.body)["error"]
        assert response.headers["Retry-After"] == "1" and error["code"] == "server_overloaded", error
        assert "capacity" in error["message"] and error["x_retry_after_ms"] >= 1000
        await one.session.close()
        await two.session.close()
        for conn in (one, two):
            assert [e.type async for e in conn][-1] == "session.closed"


async def test_a_draining_server_tells_the_session_to_reconnect_before_it_closes(
    test_model_dir: Path, pcm24k: np.ndarray
) -> None:
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    settings.server.drain_s = 1.0
    async with serving(settings) as live:
        got: list[Any] = []
        async with client(live).realtime.translations.connect(model=MODEL) as conn:
            assert (await conn.recv()).type == "session.created"
            await conn.session.update(session={"audio": {"output": {"language": "es"}}})
            assert (await conn.recv()).type == "session.updated"
            for at in range(0, 5 * CHUNK, CHUNK):
                chunk = base64.b64encode(pcm24k[at : at + CHUNK].tobytes()).decode()
                await conn.session.input_audio_buffer.append(audio=chunk)
            stopping = asyncio.create_task(live.server.stop(grace=5))
            # the socket closes with 1012 (service restart): an SDK without reconnect options
            # raises it (tests/transport/openai/test_door.py reconnects)
            with pytest.raises(websockets.exceptions.ConnectionClosedError) as closed:
                async with asyncio.timeout(30):
                    async for ev in conn:
                        got.append(ev)
            await stopping
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    kinds = [e.type for e in got]
    # a notice of its own kind, not an error: clients that close on any error stay (issue 51); the
    # SDK parses the unknown type as an object whose type is its own, its fields as extras
    assert "error" not in kinds and kinds.count("session.x_draining") == 1, kinds
    notice = got[kinds.index("session.x_draining")]
    assert notice.model_extra["code"] == "server_shutting_down" and "reconnect" in notice.model_extra["message"]
    # the end says how far the audio was translated and how to resume, then the session closes
    assert kinds[-1] == "session.closed" and got[-1].model_extra["x_reason"] == "draining", kinds
    assert "reconnect" in got[-1].model_extra["x_message"]
    assert got[-1].model_extra["x_resume"]  # how to resume (the door's tests)


async def test_a_client_secret_opens_sessions_until_it_expires_and_mints_nothing(door: LiveServer) -> None:
    minted = await client(door).realtime.translations.client_secrets.create(
        session={"model": MODEL, "audio": {"output": {"language": "es"}}}, expires_after={"seconds": 60}
    )
    assert minted.value.startswith("ek_") and minted.session.type == "translation"
    assert 0 < minted.expires_at - time.time() <= 60
    update = {"type": "session.update", "session": {"audio": {"output": {"language": "es"}}}}
    got = await errors_of(door, update, {"type": "session.close"}, token=minted.value)
    assert [e.type for e in got] == ["session.updated", "session.closed"], got
    # the server caps the lifetime; a secret cannot mint another; a forged one is refused
    assert door.server.http is not None
    capped = await client(door).realtime.translations.client_secrets.create(
        session={"model": MODEL}, expires_after={"seconds": 7200}
    )
    assert capped.expires_at - time.time() <= door.server.settings.auth.client_secret_ttl_s
    with pytest.raises(Exception, match="401"):
        await client(door, minted.value).realtime.translations.client_secrets.create(session={"model": MODEL})
    with pytest.raises(Exception, match="403"):
        await client(door, "rt-languages-only-1c9d").realtime.translations.client_secrets.create(
            session={"model": MODEL}
        )
    forged = minted.value[:-4] + ("0000" if not minted.value.endswith("0000") else "1111")
    with pytest.raises(Exception, match="401"):
        await errors_of(door, token=forged)


async def test_a_revoked_token_ends_its_session(test_model_dir: Path, tmp_path: Path, pcm24k: np.ndarray) -> None:
    import os

    tokens = tmp_path / "tokens"
    tokens.write_text(f"{TOKEN} stream\n")
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    settings.auth.tokens_file = tokens
    got: list[Any] = []
    async with serving(settings) as live:
        async with client(live).realtime.translations.connect(model=MODEL) as conn:
            assert (await conn.recv()).type == "session.created"
            await conn.session.update(session={"audio": {"output": {"language": "es"}}})
            assert (await conn.recv()).type == "session.updated"
            for at in range(0, 5 * CHUNK, CHUNK):
                await conn.session.input_audio_buffer.append(
                    audio=base64.b64encode(pcm24k[at : at + CHUNK].tobytes()).decode()
                )
            tmp = tokens.with_suffix(".new")
            tmp.write_text("another-token-2f8a stream\n")  # TOKEN revoked
            os.replace(tmp, tokens)
            revoked_at = time.perf_counter()
            async with asyncio.timeout(10):
                async for ev in conn:
                    got.append(ev)
                    if ev.type == "session.closed":
                        break
            took = time.perf_counter() - revoked_at
    kinds = [e.type for e in got]
    assert kinds[-2:] == ["error", "session.closed"], kinds
    assert got[-2].error.code == "revoked" and got[-2].error.type == "invalid_request_error"
    assert "revoked" in got[-2].error.message
    assert got[-1].model_extra["x_reason"] == "revoked" and took < 5.0


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stable_door(test_model_dir: Path) -> AsyncIterator[LiveServer]:
    """A server on the stable test translator: exact commit points (one word per 400 ms)."""
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    async with serving(settings, runner_factory=lambda: StableTranslator(test_model_dir)) as live:
        yield live


async def stream_events(
    live: LiveServer, pcm24k: np.ndarray, session: dict[str, Any], *, chunk_s: float
) -> tuple[list[tuple[int, Any]], int]:
    """``pcm24k`` through the SDK, a 200 ms chunk every ``chunk_s``; every event the server sends,
    each with how many chunks had been appended when it arrived, and the number of chunks."""
    chunks = [pcm24k[at : at + CHUNK].tobytes() for at in range(0, len(pcm24k), CHUNK)]
    sent = 0
    got: list[tuple[int, Any]] = []
    async with client(live).realtime.translations.connect(model=MODEL) as conn:
        assert (await conn.recv()).type == "session.created"
        await conn.session.update(session=session)  # type: ignore[arg-type]

        async def send() -> None:
            nonlocal sent
            t0 = time.perf_counter()
            for n, chunk in enumerate(chunks):
                await asyncio.sleep(max(0.0, t0 + n * chunk_s - time.perf_counter()))
                await conn.session.input_audio_buffer.append(audio=base64.b64encode(chunk).decode())
                sent = n + 1
            await conn.session.close()

        sender = asyncio.create_task(send())
        async with asyncio.timeout(120):
            async for ev in conn:
                got.append((sent, ev))
                if ev.type == "session.closed":
                    break
        await sender
    return got, len(chunks)


async def test_the_door_is_simultaneous_by_default_deltas_come_while_audio_is_sent(
    stable_door: LiveServer, pcm24k: np.ndarray
) -> None:
    session = {"audio": {"output": {"language": "es"}, "input": {"transcription": {"model": "x"}, "language": "en"}}}
    got, total = await stream_events(stable_door, pcm24k, session, chunk_s=0.1)  # twice real time
    events = [e for _, e in got]
    kinds = [e.type for e in events]
    assert kinds[0] == "session.updated" and kinds[-1] == "session.closed" and "error" not in kinds, kinds
    commits = [(n, e) for n, e in got if e.model_extra.get("x_commit") is not None]
    text_commits = [(n, e) for n, e in commits if e.type == "session.output_transcript.delta"]
    audio_commits = [(n, e) for n, e in commits if e.type == "session.output_audio.delta"]
    assert text_commits and audio_commits, kinds
    # deltas while the audio is still being sent: before the last chunk was appended
    assert any(n < total for n, _ in text_commits), [n for n, _ in text_commits]
    assert any(n < total for n, _ in audio_commits), [n for n, _ in audio_commits]
    assert all(e.elapsed_ms == e.x_commit["source_ms"] for _, e in commits)
    assert all(e.sample_rate == 24000 and e.format == "pcm16" and e.channels == 1 for _, e in audio_commits)
    # each segment: its commits' text deltas, joined, are its final text (in the done event), and
    # the result sends no text or speech again
    done = [e for e in events if e.model_extra.get("x_done") is not None]
    assert done and all(e.type == "session.output_transcript.delta" and e.delta == "" for e in done)
    joined: dict[int, str] = {}
    for _, e in text_commits:
        joined[e.x_segment["segment_id"]] = joined.get(e.x_segment["segment_id"], "") + e.delta
    first = next(e.x_segment["segment_id"] for e in events if e.type == "session.output_transcript.delta" and e.delta)
    for e in done:
        sid = e.x_segment["segment_id"]
        text = joined[sid] if sid == first else joined[sid].removeprefix(" ")  # a space between segments
        assert text == e.x_done["text"], (sid, text, e.x_done)
        assert e.elapsed_ms == e.x_segment["end_ms"] and e.x_timing["latency_ms"] >= 0
    done_ids = {e.x_segment["segment_id"] for e in done}
    assert set(joined) == done_ids
    for e in events:
        sid = (e.model_extra.get("x_segment") or {}).get("segment_id")
        if sid in done_ids and e.type in ("session.output_transcript.delta", "session.output_audio.delta"):
            assert e.model_extra.get("x_commit") is not None or e.model_extra.get("x_done") is not None, e
    # the speech of a segment is its commits' chunks: 200 ms of tone per word (stable translator)
    for sid in done_ids:
        samples = sum(len(base64.b64decode(e.delta)) // 2 for _, e in audio_commits if e.x_segment["segment_id"] == sid)
        words = len(next(e for e in done if e.x_segment["segment_id"] == sid).x_done["text"].split())
        assert samples == words * 24000 // 5, (sid, samples, words)
    # the transcript still comes once per segment, when it closes
    ins = [e for e in events if e.type == "session.input_transcript.delta"]
    assert {e.x_segment["segment_id"] for e in ins} >= done_ids


async def test_x_simultaneous_step_ms_0_gives_segment_mode(stable_door: LiveServer, pcm24k: np.ndarray) -> None:
    session = {"audio": {"output": {"language": "es"}}, "x_simultaneous_step_ms": 0}
    got, _ = await stream_events(stable_door, pcm24k, session, chunk_s=0.0)
    events = [e for _, e in got]
    kinds = [e.type for e in events]
    assert kinds[-1] == "session.closed" and "error" not in kinds, kinds
    assert not [e for e in events if e.model_extra.get("x_commit") or e.model_extra.get("x_done")]
    outs = [e for e in events if e.type == "session.output_transcript.delta"]
    audio = [e for e in events if e.type == "session.output_audio.delta"]
    assert len(outs) >= 2 and audio
    # one delta per segment, its whole text, and its speech, all at the segment's end
    assert len({e.x_segment["segment_id"] for e in outs}) == len(outs)
    assert all(e.elapsed_ms == e.x_segment["end_ms"] for e in outs + audio)
    assert all("x_timing" in e.model_extra for e in outs)


async def test_a_session_update_retargets_a_running_session(door: LiveServer, pcm24k: np.ndarray) -> None:
    """Issue 35: another output language while the session runs is an update, not an error: the
    SDK gets ``session.updated`` naming the first segment in the new languages, and from that
    segment on every segment's deltas are in exactly those (their ``x_language``), before it in the
    old one; a language the server cannot use is an ``error`` and the session goes on."""
    events: list[Any] = []
    async with client(door).realtime.translations.connect(model=MODEL) as conn:
        assert (await conn.recv()).type == "session.created"
        await conn.session.update(
            session={"audio": {"output": {"language": "es"}}, "x_simultaneous_step_ms": 0}  # type: ignore[typeddict-unknown-key]
        )
        half = len(pcm24k) // 2 // CHUNK * CHUNK

        async def send() -> None:
            for at in range(0, len(pcm24k), CHUNK):
                if at == half:
                    await conn.session.update(session={"audio": {"output": {"language": "zz-Nope"}}})
                    await conn.session.update(session={"audio": {"output": {"languages": ["es", "fr"]}}})  # type: ignore[typeddict-unknown-key]
                chunk = pcm24k[at : at + CHUNK].tobytes()
                await conn.session.input_audio_buffer.append(audio=base64.b64encode(chunk).decode())
                await asyncio.sleep(0.02)  # faster than real time, slower than a burst
            await conn.session.close()

        sender = asyncio.create_task(send())
        async for ev in conn:
            events.append(ev)
            if ev.type == "session.closed":
                break
        await sender
    updates = [e for e in events if e.type == "session.updated"]
    errors = [e for e in events if e.type == "error"]
    assert len(errors) == 1 and errors[0].error.code == "invalid_value", errors
    retarget = updates[-1]
    first = retarget.model_extra["x_first_segment_id"]
    assert retarget.session.audio.output.model_extra.get("languages") == ["es", "fr"]
    # a segment's languages, as its text and speech deltas name them (an empty text or speech
    # sends none: the test checkpoint's words are random, so each target is checked where it spoke)
    outs = [
        e
        for e in events
        if e.type in ("session.output_transcript.delta", "session.output_audio.delta")
        and e.model_extra.get("x_segment")
    ]
    by_segment: dict[int, set[str]] = {}
    for e in outs:
        by_segment.setdefault(e.x_segment["segment_id"], set()).add(e.x_language)
    before = [s for s in by_segment if s < first]
    after = [s for s in by_segment if s >= first]
    assert before and after, by_segment
    assert all(by_segment[s] <= {"es"} for s in before), by_segment
    assert all(by_segment[s] <= {"es", "fr"} for s in after), by_segment
    assert any("fr" in by_segment[s] for s in after), by_segment
