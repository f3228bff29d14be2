"""The browser flow over WebRTC, with aiortc as the browser: a client secret, an SDP offer with a
microphone track and the ``oai-events`` data channel, OpenAI's events back on the channel and the
translated speech back on an audio track. (The headless-Chromium test of the demo page is not
built yet: issue 20.)"""

from __future__ import annotations

import asyncio
import fractions
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
import pytest
import pytest_asyncio
import soxr
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from tests.conftest import LiveServer, make_settings, serving
from translate_svc.client.raw import load_pcm16k

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(25)]

SECONDS = 12
TOKEN = "webrtc-test-token-8d2a"


class Microphone(MediaStreamTrack):
    """A clip as a live microphone: 20 ms frames of 48 kHz mono at real time, then silence."""

    kind = "audio"

    def __init__(self, pcm48k: np.ndarray) -> None:
        super().__init__()
        self.pcm = pcm48k
        self.pts = 0
        self.t0: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self.t0 is None:
            self.t0 = time.perf_counter()
        await asyncio.sleep(max(0.0, self.t0 + self.pts / 48000 - time.perf_counter()))
        x = np.zeros(960, np.int16)
        chunk = self.pcm[self.pts : self.pts + 960]
        x[: len(chunk)] = chunk
        frame = av.AudioFrame.from_ndarray(x[None, :], format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 48000, self.pts, fractions.Fraction(1, 48000)
        self.pts += 960
        return frame


@pytest.fixture(scope="module")
def pcm48k(shared_audio: Path) -> np.ndarray:
    pcm = load_pcm16k(shared_audio / "silero_test.wav")[: 16000 * SECONDS].astype(np.float32) / 32768.0
    return np.clip(np.round(soxr.resample(pcm, 16000, 48000) * 32767), -32768, 32767).astype(np.int16)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def web(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    tokens = tmp_path_factory.mktemp("tokens") / "tokens"
    tokens.write_text(f"{TOKEN} stream\n")
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    settings.auth.tokens_file = tokens
    async with serving(settings) as live:
        yield live


def base(live: LiveServer) -> str:
    assert live.server.realtime is not None
    return f"http://127.0.0.1:{live.server.realtime.port}/v1/realtime/translations"


async def test_a_browser_call_gets_events_on_the_data_channel_and_speech_on_its_track(
    web: LiveServer, pcm48k: np.ndarray
) -> None:
    async with aiohttp.ClientSession() as http:
        # the page's server mints a short-lived key; the page never sees the token
        minted = await http.post(
            base(web) + "/client_secrets",
            json={"session": {"audio": {"output": {"language": "es"}}}},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert minted.status == 200
        secret = (await minted.json())["value"]
        pc = RTCPeerConnection()
        pc.addTrack(Microphone(pcm48k))
        channel = pc.createDataChannel("oai-events")
        events: list[dict[str, Any]] = []
        closed = asyncio.Event()
        frames: list[np.ndarray] = []

        @channel.on("open")
        def on_open() -> None:
            update = {"audio": {"output": {"language": "es"}, "input": {"transcription": {"model": "any"}}}}
            channel.send(json.dumps({"type": "session.update", "session": update}))

        @channel.on("message")
        def on_message(message: str) -> None:
            events.append(json.loads(message))
            if events[-1]["type"] == "session.closed":
                closed.set()

        readers: list[asyncio.Future[None]] = []

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            async def read() -> None:
                try:
                    while True:
                        frame = await track.recv()
                        frames.append(frame.to_ndarray())  # type: ignore[union-attr]
                except MediaStreamError:
                    return

            readers.append(asyncio.ensure_future(read()))

        await pc.setLocalDescription(await pc.createOffer())
        answer = await http.post(
            base(web) + "/calls?language=es",
            data=pc.localDescription.sdp,
            headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/sdp"},
        )
        assert answer.status == 201 and answer.content_type == "application/sdp"
        await pc.setRemoteDescription(RTCSessionDescription(sdp=await answer.text(), type="answer"))
        await asyncio.sleep(SECONDS + 1)  # the clip, at real time
        channel.send(json.dumps({"type": "session.close"}))
        await asyncio.wait_for(closed.wait(), 30)
        await pc.close()
        await asyncio.gather(*readers)
        # a forged key is refused before any WebRTC work
        refused = await http.post(
            base(web) + "/calls", data="v=0\r\nm=audio", headers={"Authorization": "Bearer ek_1_2_3"}
        )
        assert refused.status == 401
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["session.created", "session.updated"] and kinds[-1] == "session.closed", kinds
    assert "error" not in kinds, [e for e in events if e["type"] == "error"]
    outs = [e for e in events if e["type"] == "session.output_transcript.delta"]
    ins = [e for e in events if e["type"] == "session.input_transcript.delta"]
    # (the random-weight model leaves some segments' texts empty: those have no delta)
    assert len(outs) >= 2 and all(e["x_language"] == "es" and e["delta"].strip() for e in outs)
    assert events[1]["session"]["audio"]["input"]["transcription"] == {"model": "any"}
    assert all(e["delta"].strip() for e in ins)
    assert "session.output_audio.delta" not in kinds  # speech comes on the track
    # the translated speech reached the browser's track (silence between segments)
    audio = np.concatenate([f.reshape(-1) for f in frames])
    assert len(audio) > 48000 * SECONDS // 2 and np.abs(audio).max() > 0
    assert events[-1]["x_segments_total"] >= len({e["x_segment"]["segment_id"] for e in outs + ins})
