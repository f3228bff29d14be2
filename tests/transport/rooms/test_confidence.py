"""Confidence on the rooms' doors (issue 72): a WebSocket listener's ``room.segment`` carries the
translation's ``avg_logprob`` (and its transcript's), and so does the MCP captions resource's
each entry, on a real server with the test checkpoint (not the stable translator: its made-up
text has no log-probabilities), a speaker through gRPC, a listener through aiohttp's WebSocket
client and the ``mcp`` SDK's client; a caption carries none. The values are noise on random
weights: the test holds their structure, range and that they follow the speech."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.support.live_server import serving
from tests.support.mcp_door import http_client, mcp_settings, mcp_url
from tests.support.rooms import listen_url, speak, speaker_config, wait_for
from tests.support.speech import speech_pcm16
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.transport.rooms.protocol import LISTEN_SUBPROTOCOL

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(40)]


def ok(value: Any) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value <= 0.0


async def test_a_room_segment_carries_its_confidence(test_model_dir: Path, shared_audio: Path) -> None:
    settings = mcp_settings(test_model_dir)  # rooms, the HTTP port and the MCP endpoint
    settings.model.test_translator = None  # the test checkpoint's own decode
    pcm = speech_pcm16(shared_audio / "jfk.flac", 11.0, 16000).tobytes()
    events: list[dict[str, Any]] = []
    async with serving(settings) as live, aiohttp.ClientSession() as http:
        async with http.ws_connect(listen_url(live, "conf-1", "spa"), protocols=(LISTEN_SUBPROTOCOL,)) as ws:

            async def read() -> None:
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        events.append(json.loads(msg.data))

            reader = asyncio.create_task(read())
            await wait_for(lambda: any(e["type"] == "room.started" for e in events))
            config = speaker_config("conf-1", "mayor")
            config.output.transcript = True
            config.interim_interval_ms = 500
            own: list[pb.SegmentResult] = []
            await speak(live.stub, config, pcm, own)
            assert len(own) >= 2
            segments = lambda: [e for e in events if e["type"] == "room.segment"]  # noqa: E731
            await wait_for(lambda: len(segments()) >= len(own))
            await ws.close()
            await reader
        uri = "translate-svc://rooms/conf-1/captions/spa"
        async with Client(streamable_http_client(mcp_url(live), http_client=http_client(None))) as c:
            read = json.loads((await c.read_resource(uri)).contents[0].text)["captions"]
    got = segments()
    scores = [e["avg_logprob"] for e in got]
    assert all(e["text"] for e in got) and all(ok(v) for v in scores)
    assert len(set(scores)) == len(scores)  # each segment its own
    assert all(e["transcript"] is not None and ok(e["transcript"]["avg_logprob"]) for e in got)
    # the speaker's own transcripts: the same values the listeners got
    assert [e["transcript"]["avg_logprob"] for e in got] == pytest.approx(
        [s.transcript.avg_logprob for s in own], abs=1e-6
    )
    captions = [e for e in events if e["type"] == "room.caption"]
    assert all("avg_logprob" not in e for e in captions)
    # the MCP captions resource: the same values, entry by entry
    assert [e["segment_id"] for e in read] == [e["segment_id"] for e in got]
    assert [e["avg_logprob"] for e in read] == pytest.approx(scores, abs=1e-9)
    assert [e["transcript"]["avg_logprob"] for e in read] == pytest.approx(
        [e["transcript"]["avg_logprob"] for e in got], abs=1e-9
    )
