"""The speech watermark (``model.watermark``) heard by real peers of the call doors: baresip calling
the SIP door (G.711 µ-law at 8 kHz, what it heard dumped by its ``sndfile`` filter) and aiortc as a
browser on the OpenAI realtime door's WebRTC (Opus at 48 kHz on the call's track), each on two real
servers of the test checkpoint, one marking (PerTh) and one not. What the peer heard is cut at its
silences into the translations' speech; each stretch long enough to read (``READ_S``: the test
vocoder's output reads reliably from 4 s, tests/transport/grpc/test_speech_watermark.py) carries
the mark where marking is on and not where it is off."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import numpy as np
import pytest
import pytest_asyncio
import soundfile as sf

from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.phone_carriers import calls_ended
from tests.support.sip_peers import baresip_call, speech_wav
from tests.support.speech import speech_pcm16
from tests.support.webrtc_peer import Call
from translate_svc.marking.watermarker import shared

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(60)]

READ_S = 4.0
MARKED_OVER, UNMARKED_UNDER = 0.8, 0.2
TOKEN = "marked-peers-token-5c1e"
SPEECH_S, TAIL_S = 11.0, 8.0
#: a quiet stretch this long (s) ends a translation's speech
GAP_S = 0.1


async def _server(test_model_dir: Path, watermark: str, tokens: Path) -> AsyncIterator[LiveServer]:
    settings = make_settings(test_model_dir, watermark=watermark)
    settings.sip.port = 0
    settings.server.http_port = 0
    settings.auth.tokens_file = tokens
    async with serving(settings, warmup=False) as live:
        yield live


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tokens") / "tokens"
    path.write_text(f"{TOKEN} stream\n")
    return path


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def marked(test_model_dir: Path, tokens: Path) -> AsyncIterator[LiveServer]:
    async for live in _server(test_model_dir, "perth", tokens):
        yield live


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def unmarked(test_model_dir: Path, tokens: Path) -> AsyncIterator[LiveServer]:
    async for live in _server(test_model_dir, "off", tokens):
        yield live


def stretches(samples: np.ndarray, rate: int) -> list[np.ndarray]:
    """``samples`` cut at every quiet stretch of ``GAP_S`` or more: the sounding stretches."""
    loud = np.abs(samples) > 1e-3
    gap = int(GAP_S * rate)
    out, start, quiet = [], None, 0
    for i, x in enumerate(loud):
        if x:
            start = i if start is None else start
            quiet = 0
        elif start is not None:
            quiet += 1
            if quiet >= gap:
                out.append(samples[start : i - quiet + 1])
                start, quiet = None, 0
    if start is not None:
        out.append(samples[start:])
    return out


def check(heard: np.ndarray, rate: int, marks: bool) -> None:
    long = [w for w in stretches(heard, rate) if len(w) >= READ_S * rate]
    assert long, f"no speech of {READ_S} s to read: {[len(w) / rate for w in stretches(heard, rate)]} s"
    for w in long:
        p = shared().detect(w, rate).probability
        assert p > MARKED_OVER if marks else p < UNMARKED_UNDER, (marks, p, len(w) / rate)


async def sip_call(live: LiveServer, tmp: Path, shared_audio: Path) -> np.ndarray:
    wav = speech_wav(tmp, shared_audio, SPEECH_S, TAIL_S)
    port = int(live.server.ports()["sip_port"])
    out, heard = await baresip_call(tmp, wav, f"sip:eng-fra@127.0.0.1:{port}", seconds=SPEECH_S + TAIL_S + 6)
    await calls_ended(live.server)
    assert heard is not None, out[-2000:]
    samples, rate = sf.read(heard, dtype="float32", always_2d=True)
    assert rate == 8000
    return np.asarray(samples.mean(axis=1))


async def webrtc_call(live: LiveServer, shared_audio: Path) -> np.ndarray:
    assert live.server.http is not None
    base = f"http://127.0.0.1:{live.server.http.port}/v1/realtime/translations"
    pcm = speech_pcm16(shared_audio / "jfk.flac", SPEECH_S, 48000)
    async with aiohttp.ClientSession() as http:
        minted = await http.post(
            base + "/client_secrets",
            json={"session": {"audio": {"output": {"language": "fr"}}}},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert minted.status == 200
        call = Call(pcm, "fr", session={"x_simultaneous_step_ms": 0})  # whole segments' speech
        await call.dial(http, base + "/calls?language=fr", str((await minted.json())["value"]))
        await asyncio.sleep(SPEECH_S + TAIL_S)  # the clip at real time, then the translations' tail
        call.channel.send(json.dumps({"type": "session.close"}))
        await call.until("session.closed")
        await call.hang_up()
    assert "error" not in call.kinds(), [e for e in call.events if e["type"] == "error"]
    # aiortc decodes the call's Opus to 48 kHz stereo, interleaved PCM16
    pcm16 = np.concatenate([f.reshape(-1) for f in call.frames]).reshape(-1, 2).mean(axis=1)
    return np.asarray(pcm16 / 32768.0, np.float32)


async def test_baresip_hears_marked_speech_where_marking_is_on(
    marked: LiveServer, unmarked: LiveServer, shared_audio: Path, tmp_path: Path
) -> None:
    (tmp_path / "on").mkdir()
    (tmp_path / "off").mkdir()
    check(await sip_call(marked, tmp_path / "on", shared_audio), 8000, marks=True)
    check(await sip_call(unmarked, tmp_path / "off", shared_audio), 8000, marks=False)


async def test_a_webrtc_browser_hears_marked_speech_where_marking_is_on(
    marked: LiveServer, unmarked: LiveServer, shared_audio: Path
) -> None:
    check(await webrtc_call(marked, shared_audio), 48000, marks=True)
    check(await webrtc_call(unmarked, shared_audio), 48000, marks=False)
