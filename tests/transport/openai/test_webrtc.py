"""The browser flow over WebRTC, with aiortc as the browser: a client secret, an SDP offer with a
microphone track and the ``oai-events`` data channel, OpenAI's events back on the channel and the
translated speech back on an audio track. (test_browser.py runs the demo page in headless
Chromium.)"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import numpy as np
import pytest
import pytest_asyncio

from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.speech import speech_pcm16
from tests.support.webrtc_peer import Call
from translate_svc.model.testing.stable import StableTranslator

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(30)]

SECONDS = 12
TOKEN = "webrtc-test-token-8d2a"


@pytest.fixture(scope="module")
def pcm48k(shared_audio: Path) -> np.ndarray:
    return speech_pcm16(shared_audio / "silero_test.wav", SECONDS, 48000)


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
    assert live.server.http is not None
    return f"http://127.0.0.1:{live.server.http.port}/v1/realtime/translations"


async def mint(http: aiohttp.ClientSession, live: LiveServer) -> str:
    """What the page's own server does: a short-lived key for the page (never the token)."""
    minted = await http.post(
        base(live) + "/client_secrets",
        json={"session": {"audio": {"output": {"language": "es"}}}},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert minted.status == 200
    return str((await minted.json())["value"])


async def test_a_browser_call_gets_events_on_the_data_channel_and_speech_on_its_track(
    web: LiveServer, pcm48k: np.ndarray
) -> None:
    async with aiohttp.ClientSession() as http:
        call = Call(pcm48k)
        await call.dial(http, base(web) + "/calls?language=es", await mint(http, web))
        await asyncio.sleep(SECONDS + 1)  # the clip, at real time
        call.channel.send(json.dumps({"type": "session.close"}))
        await call.until("session.closed")
        await call.hang_up()
        # a forged key is refused before any WebRTC work
        refused = await http.post(
            base(web) + "/calls", data="v=0\r\nm=audio", headers={"Authorization": "Bearer ek_1_2_3"}
        )
        assert refused.status == 401
    events, kinds = call.events, call.kinds()
    assert kinds[:2] == ["session.created", "session.updated"] and kinds[-1] == "session.closed", kinds
    assert "error" not in kinds, [e for e in events if e["type"] == "error"]
    # (simultaneous by default: a segment with commits ends in an empty delta with ``x_done``)
    outs = [e for e in events if e["type"] == "session.output_transcript.delta" and "x_done" not in e]
    ins = [e for e in events if e["type"] == "session.input_transcript.delta"]
    # the segments, not the words: the random-weight model leaves some (or all) texts empty, and an
    # empty text has no delta; every delta sent says something, in the call's language
    assert events[-1]["x_segments_total"] >= 2, events[-1]
    assert all(e["x_language"] == "es" and e["delta"].strip() for e in outs)
    assert events[1]["session"]["audio"]["input"]["transcription"] == {"model": "any"}
    assert all(e["delta"].strip() for e in ins)
    assert "session.output_audio.delta" not in kinds  # speech comes on the track
    # the translated speech reached the browser's track (silence between segments)
    audio = np.concatenate([f.reshape(-1) for f in call.frames])
    assert len(audio) > 48000 * SECONDS // 2 and np.abs(audio).max() > 0
    assert events[-1]["x_segments_total"] >= len({e["x_segment"]["segment_id"] for e in outs + ins})


async def test_browser_calls_count_in_max_streams_and_metrics_and_hear_the_drain(
    test_model_dir: Path, pcm48k: np.ndarray
) -> None:
    from translate_svc.observability import metrics

    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    settings.server.drain_s = 1.0
    settings.limits.max_streams = 1
    async with serving(settings) as live, aiohttp.ClientSession() as http:
        before = metrics.STREAMS_STARTED.labels("main")._value.get()
        first, second = Call(pcm48k, transcription=False), Call(pcm48k, transcription=False)
        await first.dial(http, base(live) + "/calls", "no-token-needed-here")
        assert (await first.until("session.updated"))["session"]["audio"]["output"]["language"] == "es"
        assert metrics.STREAMS_STARTED.labels("main")._value.get() == before + 1
        # the node is at max_streams (1): the next call is refused before any WebRTC work (429)
        await second.pc.setLocalDescription(await second.pc.createOffer())
        refused = await http.post(
            base(live) + "/calls", data=second.pc.localDescription.sdp, headers={"Content-Type": "application/sdp"}
        )
        assert refused.status == 429 and refused.headers["Retry-After"] == "1"
        error = (await refused.json())["error"]
        assert error["code"] == "server_overloaded" and "capacity" in error["message"]
        await second.hang_up()
        # SIGTERM's drain: a notice to reconnect, the rest translated, then the end
        stopping = asyncio.create_task(live.server.stop(grace=5))
        notice = await first.until("session.x_draining")  # a notice, not an error (issue 51)
        assert notice["code"] == "server_shutting_down" and "reconnect" in notice["message"]
        closed = await first.until("session.closed")
        assert closed["x_reason"] == "draining"
        await stopping
        await first.hang_up()


LONG_SECONDS = 20  # the stable translator commits in segments of a few seconds: the first long one ends at ~13 s


async def test_a_browser_call_hears_each_commit_as_it_comes(test_model_dir: Path, shared_audio: Path) -> None:
    """Simultaneous mode (the door's default) on the stable translator: each commit's chunk plays
    on the track while the segment is still spoken, and a segment's speech is not played again
    when its result comes."""
    pcm = speech_pcm16(shared_audio / "silero_test.wav", LONG_SECONDS, 48000)
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    async with (
        serving(settings, runner_factory=lambda: StableTranslator(test_model_dir)) as live,
        aiohttp.ClientSession() as http,
    ):
        call = Call(pcm)
        await call.dial(http, base(live) + "/calls?language=es", "no-token-needed-here")
        await asyncio.sleep(LONG_SECONDS + 1)
        call.channel.send(json.dumps({"type": "session.close"}))
        await call.until("session.closed")
        await call.hang_up()
    events, kinds = call.events, call.kinds()
    assert kinds[-1] == "session.closed" and "error" not in kinds, kinds
    assert "session.output_audio.delta" not in kinds  # speech comes on the track
    assert call.mic.t0 is not None
    mic_ends = call.mic.t0 + LONG_SECONDS
    deltas = ("session.output_transcript.delta", "session.output_audio.delta")  # not the done events (issue 51)
    outs = [(t, e) for t, e in zip(call.event_times, events, strict=True) if e["type"] in deltas]
    commits = [(t, e) for t, e in outs if "x_commit" in e]
    done = {e["x_segment"]["segment_id"]: (t, e) for t, e in outs if "x_done" in e}
    assert commits and done and any(t < mic_ends for t, _ in commits), kinds
    # speech frames (20 ms; silence between): some while a segment with commits is still open,
    # before its result and while the microphone still speaks
    loud = [t for t, f in zip(call.frame_times, call.frames, strict=True) if np.abs(f).max() > 500]
    early = []
    for sid, (t_done, _) in done.items():
        first = min(t for t, e in commits if e["x_segment"]["segment_id"] == sid)
        early += [t for t in loud if first <= t < min(t_done, mic_ends)]
    assert early, (len(loud), [(e["x_segment"], e["x_commit"]) for _, e in commits])
    # each word is 200 ms of tone, played once: a result after commits adds none
    texts = [e["x_done"]["text"] for _, e in done.values()]
    texts += [e["delta"] for _, e in outs if "x_commit" not in e and "x_done" not in e]
    words = sum(len(t.split()) for t in texts)
    segments = len(texts)
    assert words * 10 * 0.9 <= len(loud) <= words * 10 * 1.1 + 3 * segments, (len(loud), words, segments)
