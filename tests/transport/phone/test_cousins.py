"""Twilio's cousins end to end (issue 57): fake Telnyx, SignalWire and Exotel calls
(``phone_cousins.py``, each written from its vendor's published media-streaming format) against a
real ``translate-svc serve --phone`` process (ports 0, found by its ready file; the stable
translator). Each fake streams real speech at real time in its own framing and codec, and gets the
translation back in its framing: the server's messages are only those its vendor takes (``media``,
``mark``), addressed to its stream, each media message of a size its vendor plays; the speech
decodes in the call's codec to the stable translator's tones, whole words before each mark; every
mark comes back once its audio has played, the server counts each one, and its ear-voice lag is
the one the carrier saw (``phone_lag.py``). Then what the door does with each carrier's bad input:
a close 1008 and ``INVALID_ARGUMENT``, while Telnyx's own ``error`` frame (about what it was sent)
leaves the call going. The server's side is read from its /metrics (the calls' codes, the lag
histogram), never from a log line.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from tests.support.metrics import Metrics
from tests.support.phone_carriers import (
    CarrierLog,
    MediaStreamCarrier,
    alaw_bytes,
    alaw_decode,
    ulaw_bytes,
    ulaw_decode,
)
from tests.support.phone_cousins import FakeExotel, FakeSignalWire, FakeTelnyx
from tests.support.phone_lag import CLOSE_SILENCE_MS, LAG_TOLERANCE_S, carrier_lags, segment_ends
from tests.support.raw import channel
from tests.support.server_process import ServerProcess
from tests.support.speech import speech_pcm16
from tests.support.waiting import eventually
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc
from translate_svc.model.testing.stable import SPEECH_S

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(60)]

#: the seconds of speech each call streams
SPEECH_SECONDS = 8.0


@dataclass
class Served:
    """The server process, its /metrics, and the figures the tests read from them."""

    proc: ServerProcess
    metrics: Metrics

    def url(self, carrier: str, query: str = "") -> str:
        http_port = self.proc.info.http_port
        return f"ws://127.0.0.1:{http_port}/v1/phone/{carrier}" + (f"?{query}" if query else "")

    async def calls(self, code: str) -> float:
        """Calls (every door's streams) ended with ``code`` so far."""
        return await self.metrics.value(rf'translate_svc_tenant_calls_total\{{[^}}]*code="{code}"[^}}]*\}}')

    async def lags(self, carrier: str) -> tuple[float, float]:
        """The ear-voice lag histogram of ``carrier``: its sum (seconds) and count."""
        name = "translate_svc_phone_ear_voice_lag_seconds"
        labels = rf'\{{carrier="{carrier}"\}}'
        return await self.metrics.value(name + "_sum" + labels), await self.metrics.value(name + "_count" + labels)

    async def ended(self, code: str, before: float) -> None:
        """A call more than ``before`` has ended with ``code``."""

        async def check() -> bool:
            return await self.calls(code) > before

        await eventually(check, f"a call ended {code}", 30.0, 0.05)


@pytest.fixture(scope="module")
def served(test_model_dir: Path) -> Iterator[Served]:
    proc = ServerProcess(
        [
            *("--model", str(test_model_dir), "--host", "127.0.0.1", "--port", "0", "--http-port", "0"),
            *("--phone", "--test-translator", "stable"),
        ],
        env={
            "TRANSLATE_SVC_SERVER__METRICS_PORT": "0",  # it picks, and says in its ready file
            "TRANSLATE_SVC_VAD__MIN_SILENCE_MS": str(CLOSE_SILENCE_MS),  # phone_lag.py
        },
    )
    try:
        yield Served(proc, Metrics(proc.metrics_port))
    finally:
        proc.stop()


def pcm16_le(samples: np.ndarray) -> bytes:
    return samples.astype("<i2").tobytes()


def l16_decode(data: bytes) -> np.ndarray:
    return np.frombuffer(data, "<i2").astype(np.float32) / 32768.0


def runs(items: list[bytes | str]) -> list[int]:
    """Bytes of speech before each mark."""
    out, run = [], 0
    for item in items:
        if isinstance(item, str):
            out.append(run)
            run = 0
        else:
            run += len(item)
    return out


async def a_call(
    served: Served,
    fake: MediaStreamCarrier,
    audio: bytes,
    decode: Callable[[bytes], np.ndarray],
    encoding: int,
) -> CarrierLog:
    """``fake`` streams ``audio`` (its codec) through a whole call; what it heard is checked against
    its vendor's format, and the server's count of marks and ear-voice lag against what it saw."""
    ok0 = await served.calls("OK")
    lag_sum0, lag_count0 = await served.lags(fake.carrier)
    log = await fake.call(audio)
    assert log.close_code == 1000, f"the call was closed {log.close_code}"
    await served.ended("OK", ok0)
    # only what the vendor takes, addressed to this stream (each fake's check); speech and marks
    assert set(log.events) == {"media", "mark"}, log.events
    assert log.marks and set(log.echoed) == set(log.marks), "every mark came back once its audio had played"
    # each mark follows its segment's speech: whole words of the stable translator's speech in the
    # call's codec and rate
    word = round(SPEECH_S * fake.rate) * fake.sample_bytes
    assert all(r > 0 and r % word == 0 for r in runs(log.items)), (runs(log.items), word)
    speech = decode(b"".join(i for i in log.items if isinstance(i, bytes)))
    assert_tones(speech)
    # the server counted each mark it was sent back, and its lag is the one the carrier saw
    silence = fake.silence * (fake.rate * 3 * fake.sample_bytes // len(fake.silence))
    async with channel(f"127.0.0.1:{served.proc.port}") as ch:
        ends = await segment_ends(pb_grpc.TranslatorStub(ch), audio + silence, encoding, fake.rate, "eng", "spa")
    seen = carrier_lags(log, ends)
    lag_sum, lag_count = await served.lags(fake.carrier)
    assert lag_count - lag_count0 == len(log.marks)
    assert abs((lag_sum - lag_sum0) - sum(seen)) <= LAG_TOLERANCE_S * len(seen), (lag_sum - lag_sum0, sum(seen))
    return log


def assert_tones(speech: np.ndarray) -> None:
    """The stable translator speaks a tone of 200 to 690 Hz at amplitude 0.1 per word: decoded in
    the right codec (and byte order) its level is a sine's (0.071 RMS) and neighbouring samples
    are close (a mean step under 0.6 of the mean level at 8 kHz); decoded wrong it is noise
    (steps of about 1.4 times the level) or another level."""
    rms = float(np.sqrt(np.mean(speech**2)))
    assert 0.05 < rms < 0.09, f"the speech's level is {rms:.3f}, not the stable translator's tones"
    roughness = float(np.mean(np.abs(np.diff(speech))) / np.mean(np.abs(speech)))
    assert roughness < 0.8, f"the speech is noise (step {roughness:.2f} of its level): a wrong codec or byte order"


@pytest.mark.parametrize(
    ("codec", "encode", "decode", "encoding"),
    [
        pytest.param("PCMU", ulaw_bytes, ulaw_decode, pb.MULAW, id="PCMU"),
        pytest.param("PCMA", alaw_bytes, alaw_decode, pb.ALAW, id="PCMA"),
    ],
)
async def test_a_telnyx_call_in_its_rtp_codec(
    served: Served,
    shared_audio: Path,
    codec: str,
    encode: Callable[[np.ndarray], bytes],
    decode: Callable[[bytes], np.ndarray],
    encoding: int,
) -> None:
    """Languages from the stream's custom parameters (TeXML ``<Parameter>``s); speech back in
    RTP payloads of whole 20 ms frames (FakeTelnyx checks 20 ms to 30 s a message)."""
    audio = encode(speech_pcm16(shared_audio / "jfk.flac", SPEECH_SECONDS, 8000))
    fake = FakeTelnyx(served.url("telnyx"), codec=codec, custom={"source": "eng", "target": "spa"})
    log = await a_call(served, fake, audio, decode, encoding)
    assert all(n % 160 == 0 for n in log.media_sizes), log.media_sizes


async def test_a_signalwire_call_in_l16_at_16_khz(served: Served, shared_audio: Path) -> None:
    """``codec="L16@16000h"``: ``audio/x-L16`` at 16000 Hz both ways; the languages from the
    ``<Parameter>``s (a SignalWire stream URL takes no query string), the token in the
    ``Authorization`` header that ``authBearerToken`` sets (this server asks for none)."""
    audio = pcm16_le(speech_pcm16(shared_audio / "silero_test.wav", SPEECH_SECONDS, 16000))
    fake = FakeSignalWire(
        served.url("signalwire"), rate=16000, custom={"source": "eng", "target": "spa"}, token="unused-here"
    )
    await a_call(served, fake, audio, l16_decode, pb.LINEAR16)


async def test_an_exotel_voicebot_call_in_raw_slin(served: Served, shared_audio: Path) -> None:
    """The Voicebot applet's URL carries the languages; ``audio/x-raw`` 16-bit PCM at 8 kHz in
    ~100 ms messages; speech back in messages of whole 320 bytes, 3.2 KB at least (FakeExotel
    checks each)."""
    audio = pcm16_le(speech_pcm16(shared_audio / "jfk.flac", SPEECH_SECONDS, 8000))
    fake = FakeExotel(served.url("exotel", "source=eng&target=spa"), custom={"source": "eng", "target": "spa"})
    log = await a_call(served, fake, audio, l16_decode, pb.LINEAR16)
    assert all(n % 320 == 0 and n >= 3200 for n in log.media_sizes), log.media_sizes


# -- bad input ---------------------------------------------------------------------------------------


async def exchange(url: str, *messages: dict[str, Any] | bytes) -> int | None:
    """Send ``messages`` (JSON objects as text frames) on one connection, read until the server
    closes; its close code."""
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        for m in messages:
            await (ws.send_bytes(m) if isinstance(m, bytes) else ws.send_str(json.dumps(m)))
        async for _ in ws:
            pass
        return ws.close_code


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def telnyx_g722() -> list[dict[str, Any] | bytes]:
    """A codec Telnyx streams (G722, OPUS, AMR-WB) that the door does not decode."""
    f = FakeTelnyx("")
    start = f.start()
    start["start"]["media_format"] = {"encoding": "G722", "sample_rate": 16000, "channels": 1}
    return [f.connected(), start]


def telnyx_payload_not_base64() -> list[dict[str, Any] | bytes]:
    f = FakeTelnyx("")
    return [f.connected(), f.start(), f.media(1, 0, "@@@")]


def signalwire_l16_odd_bytes() -> list[dict[str, Any] | bytes]:
    """16-bit PCM cannot have an odd number of bytes."""
    f = FakeSignalWire("", rate=16000)
    return [f.connected(), f.start(), f.media(1, 0, b64(b"\x00" * 641))]


def signalwire_binary_frame() -> list[dict[str, Any] | bytes]:
    f = FakeSignalWire("")
    return [f.connected(), f.start(), b"\xff" * 160]


def exotel_media_before_start() -> list[dict[str, Any] | bytes]:
    f = FakeExotel("")
    return [f.connected(), f.media(1, 0, b64(b"\x00" * 1600))]


def exotel_rate_not_a_number() -> list[dict[str, Any] | bytes]:
    f = FakeExotel("")
    start = f.start()
    start["start"]["media_format"]["sample_rate"] = "8 kHz"
    return [f.connected(), start]


@pytest.mark.parametrize(
    ("carrier", "messages"),
    [
        pytest.param("telnyx", telnyx_g722, id="telnyx-g722"),
        pytest.param("telnyx", telnyx_payload_not_base64, id="telnyx-payload-not-base64"),
        pytest.param("signalwire", signalwire_l16_odd_bytes, id="signalwire-l16-odd-bytes"),
        pytest.param("signalwire", signalwire_binary_frame, id="signalwire-binary-frame"),
        pytest.param("exotel", exotel_media_before_start, id="exotel-media-before-start"),
        pytest.param("exotel", exotel_rate_not_a_number, id="exotel-rate-not-a-number"),
    ],
)
async def test_bad_input_from_a_cousin_ends_its_call_1008_invalid_argument(
    served: Served, carrier: str, messages: Callable[[], list[dict[str, Any] | bytes]]
) -> None:
    before = await served.calls("INVALID_ARGUMENT")
    assert await exchange(served.url(carrier), *messages()) == 1008
    await served.ended("INVALID_ARGUMENT", before)


async def test_a_telnyx_error_frame_leaves_the_call_going(served: Served) -> None:
    """Telnyx sends ``error`` (e.g. 100003 ``malformed_frame``) about a frame it was sent; its
    stream goes on, and so does the call: it ends when Telnyx says ``stop``, ``OK``."""
    f = FakeTelnyx("")
    silence = b64(b"\xff" * 160)
    ok0 = await served.calls("OK")
    code = await exchange(
        served.url("telnyx"),
        f.connected(),
        f.start(),
        *(f.media(k, 20 * (k - 1), silence) for k in range(1, 11)),
        f.error("100003", "malformed_frame", "the frame could not be read"),
        *(f.media(k, 20 * (k - 1), silence) for k in range(11, 21)),
        f.stop(),
    )
    assert code == 1000
    await served.ended("OK", ok0)
