"""The OpenAI-compatible door keeps its word (issue 35), with the real ``openai`` SDK on loopback:
an append of any size up to the published limit (a 2 MiB one) is taken and one over it is refused
without ending the session; a text-only output language works through ``x_speech: false``; input
transcription with no language and no identifier says so; a drain closes the socket with 1012 and
``x_resume``, and the SDK reconnects (through a balancer, to the next server) and goes on."""

from __future__ import annotations

import asyncio
import base64
import contextlib
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

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(45)]

MODEL = "gpt-realtime-translate"
CHUNK = 4800  # 200 ms at 24 kHz


@pytest.fixture(scope="module")
def pcm24k(shared_audio: Path) -> np.ndarray:
    return speech_pcm16(shared_audio / "silero_test.wav", 60.0, 24000)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def door(test_model_dir: Path) -> AsyncIterator[LiveServer]:
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    async with serving(settings) as live:
        yield live


def client(port: int) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="-", max_retries=0)


def b64(pcm: np.ndarray | bytes) -> str:
    return base64.b64encode(pcm if isinstance(pcm, bytes) else pcm.tobytes()).decode()


async def until_closed(conn: Any) -> list[Any]:
    events = []
    async for ev in conn:
        events.append(ev)
        if ev.type == "session.closed":
            break
    return events


async def test_a_2_mib_append_is_taken_and_one_over_the_limit_is_refused_not_fatal(
    door: LiveServer, pcm24k: np.ndarray
) -> None:
    assert door.server.http is not None
    big = pcm24k.tobytes()[: 2 * 1024 * 1024]  # 43.7 s of 24 kHz PCM16, in one event
    async with client(door.server.http.port).realtime.translations.connect(model=MODEL) as conn:
        created = await conn.recv()
        limit = created.session.model_extra["x_limits"]["max_append_bytes"]
        assert limit == door.server.settings.limits.ws_max_append_bytes >= 2 * 1024 * 1024
        await conn.session.update(session={"audio": {"output": {"language": "es"}}, "x_simultaneous_step_ms": 0})  # type: ignore[typeddict-unknown-key]
        await conn.session.input_audio_buffer.append(audio=b64(big))
        over = bytes(limit + 4096)  # silence, just over the limit: within the message's slack
        await conn.session.input_audio_buffer.append(audio=b64(over), event_id="too-big")
        await conn.session.input_audio_buffer.append(audio=b64(pcm24k.tobytes()[len(big) : len(big) + 48000]))
        await conn.session.close()
        events = await until_closed(conn)
    errors = [e for e in events if e.type == "error"]
    assert [(e.error.code, e.error.event_id) for e in errors] == [("append_too_large", "too-big")]
    closed = events[-1]
    assert closed.type == "session.closed" and closed.model_extra["x_reason"] == "closed"
    # the big append whole, the last too
    assert abs(closed.model_extra["x_audio_received_ms"] - (len(big) + 48000) / 48) <= 1
    assert closed.model_extra["x_segments_total"] >= 10


async def test_a_text_only_language_is_refused_with_the_extension_to_use_and_served_with_it(
    door: LiveServer, pcm24k: np.ndarray
) -> None:
    assert door.server.http is not None
    card = door.server.app.sessions.card
    text_only = sorted(card.text_codes - card.speech_codes)[0]
    port = door.server.http.port
    async with client(port).realtime.translations.connect(model=MODEL) as conn:
        await conn.recv()
        await conn.session.update(session={"audio": {"output": {"language": text_only}}})
        refused = await until_closed(conn)
    [error] = [e for e in refused if e.type == "error"]
    assert '"x_speech": false' in error.error.message and text_only in error.error.message
    async with client(port).realtime.translations.connect(model=MODEL) as conn:
        await conn.recv()
        await conn.session.update(
            session={"audio": {"output": {"language": text_only}}, "x_speech": False, "x_simultaneous_step_ms": 0}  # type: ignore[typeddict-unknown-key]
        )
        await conn.session.input_audio_buffer.append(audio=b64(pcm24k[: 24000 * 12]))
        await conn.session.close()
        events = await until_closed(conn)
    kinds = {e.type for e in events}
    assert "error" not in kinds and "session.output_audio.delta" not in kinds, kinds
    assert events[0].type == "session.updated" and events[0].session.model_extra["x_speech"] is False
    assert events[-1].model_extra["x_segments_total"] >= 2


async def test_transcription_without_a_language_on_a_server_without_an_identifier_says_so(
    door: LiveServer, pcm24k: np.ndarray
) -> None:
    assert door.server.http is not None and door.server.app.sessions.card.identifier is None
    async with client(door.server.http.port).realtime.translations.connect(model=MODEL) as conn:
        await conn.recv()
        await conn.session.update(
            session={"audio": {"output": {"language": "es"}, "input": {"transcription": {"model": "x"}}}}
        )
        await conn.session.input_audio_buffer.append(audio=b64(pcm24k[: 24000 * 8]))
        await conn.session.close()
        events = await until_closed(conn)
    errors = [e for e in events if e.type == "error"]
    assert [e.error.code for e in errors] == ["missing_input_language"], errors
    assert "audio.input.language" in errors[0].error.message
    assert events[-1].model_extra["x_segments_total"] >= 1  # it went on, translating


class Balancer:
    """A TCP proxy on loopback in front of servers, as a Kubernetes Service is: each new
    connection goes to ``target`` (a port), changed when a server drains."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Balancer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for t in self._pipes:
            t.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target)

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            with contextlib.suppress(ConnectionError, OSError):
                w.close()

        for t in (asyncio.create_task(pipe(reader, up_w)), asyncio.create_task(pipe(up_r, writer))):
            self._pipes.add(t)
            t.add_done_callback(self._pipes.discard)


#: what the resuming client sends again before x_resume_offset_ms (x_resume_lead_in_ms)
LEAD_IN_MS = 1000


async def test_a_drain_closes_with_1012_and_the_openai_sdk_reconnects_and_goes_on(
    test_model_dir: Path, pcm24k: np.ndarray
) -> None:
    from openai.types.websocket_reconnection import ReconnectingEvent, ReconnectingOverrides

    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    settings.server.drain_s = 0.5
    audio = pcm24k[: 24000 * 40]
    resume: list[str] = []
    reconnects: list[int] = []

    def on_reconnecting(ev: ReconnectingEvent) -> ReconnectingOverrides:
        reconnects.append(ev.close_code)
        # where the drained server's session.closed said, with a lead-in of 1 s before its offset
        return {"extra_query": {"x_resume": resume[-1], "x_resume_lead_in_ms": str(LEAD_IN_MS)}}

    async with serving(settings) as first, serving(settings) as second:
        assert first.server.http is not None and second.server.http is not None
        async with Balancer(first.server.http.port) as lb:
            stopping: list[asyncio.Task[None]] = []
            events: list[Any] = []
            # a client that keeps its audio: when the drained session closes it waits for the SDK's
            # reconnect, then sends again from x_resume_offset_ms less the lead-in (appends the old
            # server did not read, or that failed while the SDK reconnected, are not lost)
            rewind_to: list[int] = []  # ms, from the drained session.closed
            reconnected = asyncio.Event()
            connect = client(lb.port).realtime.translations.connect
            async with connect(model=MODEL, on_reconnecting=on_reconnecting) as conn:
                await conn.session.update(
                    session={"audio": {"output": {"language": "es"}}, "x_simultaneous_step_ms": 0}  # type: ignore[typeddict-unknown-key]
                )

                async def send() -> None:
                    at, sent = 0, 0
                    while at < len(audio):
                        if sent == 75 and not stopping:  # 15 s in: the first server drains
                            lb.target = second.server.http.port  # type: ignore[union-attr]
                            stopping.append(asyncio.create_task(first.server.stop(grace=5)))
                        if rewind_to and not reconnected.is_set():
                            await reconnected.wait()
                            at = (rewind_to[0] - LEAD_IN_MS) * 24  # 24 samples per ms
                        with contextlib.suppress(websockets.exceptions.ConnectionClosed):
                            await conn.session.input_audio_buffer.append(audio=b64(audio[at : at + CHUNK]))
                            at += CHUNK
                        sent += 1
                        await asyncio.sleep(0.02)
                    await conn.session.close()

                sender = asyncio.create_task(send())
                async with asyncio.timeout(180):
                    async for ev in conn:
                        events.append(ev)
                        if ev.type == "session.closed" and ev.model_extra.get("x_resume"):
                            resume.append(ev.model_extra["x_resume"])
                            rewind_to.append(ev.model_extra["x_resume_offset_ms"])
                        elif ev.type == "session.created" and rewind_to:
                            reconnected.set()
                        elif ev.type == "session.closed":
                            break
                    await sender
            await asyncio.gather(*stopping)
    assert reconnects == [1012] and lb.connections == 2
    kinds = [e.type for e in events]
    assert kinds.count("session.created") == 2, kinds  # one per connection
    # the drain's notice is an event of its own, not an error (issue 51); the end is session.closed
    assert "error" not in kinds and kinds.count("session.x_draining") == 1, kinds
    drained = next(e for e in events if e.type == "session.closed")
    offset, next_id = drained.model_extra["x_audio_received_ms"], drained.model_extra["x_segments_total"]
    assert drained.model_extra["x_reason"] == "draining" and 0 < offset and 0 < next_id
    assert 0 < drained.model_extra["x_resume_offset_ms"] <= offset
    last = events[-1]
    assert last.type == "session.closed" and last.model_extra["x_reason"] == "closed"
    assert last.model_extra["x_segments_total"] > next_id  # segment ids run on over the move
    # what the second server sent is placed after the first's: ids from next_id, times from where
    # the first stopped reading (the lead-in before it only listened to, not translated again)
    moved = [e.x_segment for e in events[events.index(drained) :] if e.model_extra.get("x_segment")]
    resumed_at = drained.model_extra["x_resume_offset_ms"]
    assert moved and all(x["segment_id"] >= next_id and x["start_ms"] >= resumed_at for x in moved)
    # nothing lost: the timeline ends where the audio does
    assert abs(last.model_extra["x_audio_received_ms"] - len(audio) / 24) <= 1, last.model_extra
