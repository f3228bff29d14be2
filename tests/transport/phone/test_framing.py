"""The phone door's framings (issue 44): their refusals and messages from the carriers' published
formats (Twilio and its cousins, Asterisk chan_websocket, AudioSocket), with plain values. The call
core's pure parts (G.711, marks, the backlog, the pacer, the mix) are tested in the telephony floor's
tests (``tests/transport/telephony/test_call_core.py``)."""

from __future__ import annotations

import base64
import json

import pytest

from translate_svc.errors import InvalidInput
from translate_svc.session.events import AudioIn, Invalid
from translate_svc.transport.phone.asterisk import AsteriskFraming
from translate_svc.transport.phone.audiosocket import AudioSocketFraming, frame
from translate_svc.transport.phone.twilio import EXOTEL, SIGNALWIRE, TELNYX, TwilioFraming
from translate_svc.transport.telephony.call import CallCodec, Flow, Hangup, Played, Started
from translate_svc.types import AudioEncoding

pytestmark = pytest.mark.unit


def twilio_start(**fmt: object) -> str:
    media = {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1, **fmt}
    return json.dumps(
        {
            "event": "start",
            "streamSid": "MZ1",
            "start": {"callSid": "CA1", "customParameters": {"target": "fra"}, "mediaFormat": media},
        }
    )


def test_twilio_messages_both_ways() -> None:
    f = TwilioFraming()
    (started,) = f.receive(twilio_start())
    assert isinstance(started, Started) and started.params == {"target": "fra"} and f.codec is not None
    (audio,) = f.receive(
        json.dumps({"event": "media", "media": {"track": "inbound", "payload": base64.b64encode(b"\x01\x02").decode()}})
    )
    assert isinstance(audio, AudioIn) and audio.data == b"\x01\x02"
    assert f.receive(json.dumps({"event": "mark", "mark": {"name": "seg1.1"}})) == [Played("seg1.1")]
    assert f.receive(json.dumps({"event": "stop"})) == [Hangup("stop")]
    (out,) = f.media(b"\xff" * 160)
    assert json.loads(out) == {
        "event": "media",
        "streamSid": "MZ1",
        "media": {"payload": base64.b64encode(b"\xff" * 160).decode()},
    }
    assert json.loads(f.mark("m")[0]) == {"event": "mark", "streamSid": "MZ1", "mark": {"name": "m"}}
    assert json.loads(f.clear()[0]) == {"event": "clear", "streamSid": "MZ1"}
    assert len(f.media(b"\xff" * 8001)) == 2  # a second of speech per message at most


@pytest.mark.parametrize(
    "message",
    ["{", "[]", json.dumps({"event": "nope"}), json.dumps({"event": "media", "media": {"payload": "AAAA"}})],
)
def test_twilio_refusals_are_invalid_requests(message: str) -> None:
    (out,) = TwilioFraming().receive(message)  # (media before start is refused too)
    assert isinstance(out, Invalid) and isinstance(out.error, InvalidInput)


def test_exotel_names_and_pcm() -> None:
    f = TwilioFraming(EXOTEL)
    start = {
        "event": "start",
        "stream_sid": "S1",
        "start": {"media_format": {"encoding": "base64", "sample_rate": 8000}},
    }
    (started,) = f.receive(json.dumps(start))
    assert isinstance(started, Started) and started.codec.encoding is AudioEncoding.LINEAR16
    (bad,) = f.receive(json.dumps({"event": "media", "media": {"payload": base64.b64encode(b"\x01").decode()}}))
    assert isinstance(bad, Invalid)  # an odd number of bytes is not 16-bit PCM
    assert json.loads(f.mark("m")[0])["stream_sid"] == "S1"


def payloads(out: list[str | bytes]) -> list[bytes]:
    return [base64.b64decode(json.loads(m)["media"]["payload"]) for m in out]


def test_exotel_voicebot_start_and_media_of_whole_320_bytes() -> None:
    """Exotel's start as its "WebSocket protocol" page has it (``audio/x-raw``, the rate a
    string); what goes back is a multiple of 320 bytes, 3.2 KB at least ("non-compliant sizes
    create gaps in audio playback"), padded with silence."""
    f = TwilioFraming(EXOTEL)
    fmt = {"encoding": "audio/x-raw", "sample_rate": "16000", "bit_rate": "16"}
    (started,) = f.receive(json.dumps({"event": "start", "stream_sid": "S1", "start": {"media_format": fmt}}))
    assert isinstance(started, Started) and started.codec == CallCodec(AudioEncoding.LINEAR16, 16000)
    sizes = [len(p) for p in payloads(f.media(b"\x01\x00" * 16_123))]  # 1.008 s at 16 kHz
    assert sizes == [32_000, 3200]
    assert [len(p) for p in payloads(f.media(b"\x01\x00" * 170))] == [3200]
    (tail,) = payloads(f.media(b"\x01\x00" * 1700))
    assert tail[:3400] == b"\x01\x00" * 1700 and tail[3400:] == bytes(3520 - 3400)  # the speech, then silence


def test_telnyx_media_back_is_whole_20_ms_rtp_frames_and_an_error_frame_is_not_fatal() -> None:
    """Telnyx takes 20 ms to 30 s of RTP payload a media message; its ``error`` frame is about a
    frame it was sent, and its stream goes on."""
    f = TwilioFraming(TELNYX)
    fmt = {"encoding": "PCMA", "sample_rate": 8000, "channels": 1}
    f.receive(
        json.dumps({"event": "start", "stream_id": "S", "start": {"call_control_id": "v3:x", "media_format": fmt}})
    )
    sizes = [len(p) for p in payloads(f.media(b"\x01" * 8005))]
    assert sizes == [8000, 160]  # the 5 bytes left padded to a 20 ms frame of A-law silence
    assert payloads(f.media(b"\x01" * 8005))[1] == b"\x01" * 5 + b"\xd5" * 155
    error = {"event": "error", "stream_id": "S", "error": {"title": "malformed_frame", "code": "100003"}}
    assert f.receive(json.dumps(error)) == [] and f.notices == 1


def test_signalwire_l16_streams() -> None:
    """``codec="L16@16000h"`` / ``"L16@24000h"``: SignalWire's ``audio/x-L16``."""
    for rate in (16000, 24000):
        f = TwilioFraming(SIGNALWIRE)
        (started,) = f.receive(twilio_start(encoding="audio/x-L16", sampleRate=rate))
        assert isinstance(started, Started) and started.codec == CallCodec(AudioEncoding.LINEAR16, rate)


def test_asterisk_both_control_modes() -> None:
    plain = AsteriskFraming()
    (started,) = plain.receive(
        "MEDIA_START connection_id:abc channel:WebSocket/x format:ulaw optimal_frame_size:160 ptime:20"
    )
    assert isinstance(started, Started) and started.call_id == "abc"
    out = plain.media(b"\x00" * 200)
    assert out[0] == "START_MEDIA_BUFFERING" and out[1] == b"\x00" * 200 + b"\xff" * 120  # whole frames
    assert plain.mark("seg1.1") == ["STOP_MEDIA_BUFFERING seg1.1"]
    assert plain.receive("MEDIA_BUFFERING_COMPLETED seg1.1") == [Played("seg1.1")]
    assert plain.receive("MEDIA_XOFF") == [Flow(True)] and plain.receive("MEDIA_XON") == [Flow(False)]
    js = AsteriskFraming()
    js.receive(
        json.dumps(
            {
                "event": "MEDIA_START",
                "format": "slin16",
                "optimal_frame_size": 640,
                "channel_variables": {"TRANSLATE_TARGET": "deu"},
            }
        )
    )
    assert js.codec is not None and js.codec.rate == 16000
    big = js.media(b"\x01\x00" * 40000)
    assert all(len(m) <= 65500 and len(m) % 640 == 0 for m in big)
    assert json.loads(js.mark("m")[0]) == {"command": "MARK_MEDIA", "correlation_id": "m"}
    assert js.receive(json.dumps({"event": "MEDIA_MARK_PROCESSED", "correlation_id": "m"})) == [Played("m")]
    assert json.loads(js.hangup()[0]) == {"command": "HANGUP"}
    assert isinstance(AsteriskFraming().receive(b"\x00")[0], Invalid)  # media before MEDIA_START


def test_audiosocket_frames_in_pieces_and_the_size_bound() -> None:
    f = AudioSocketFraming(1000)
    wire = frame(0x01, bytes(16)) + frame(0x10, bytes(320)) + frame(0x00)
    got = [item for i in range(len(wire)) for item in f.receive(wire[i : i + 1])]  # one byte at a time
    assert isinstance(got[0], Started) and isinstance(got[1], AudioIn) and got[2] == Hangup("hangup")
    big = AudioSocketFraming(1000)
    (refused,) = big.receive(frame(0x01, bytes(16)) + frame(0x10, bytes(320))[:0] + bytes([0x10, 0x04, 0x00]))
    assert isinstance(refused, Invalid) and "1024" in str(refused.error)  # refused from its header
    assert isinstance(AudioSocketFraming(1000).receive(frame(0x10, bytes(2)))[0], Invalid)  # audio before the UUID


def test_asterisk_channel_variables_name_the_room() -> None:
    js = AsteriskFraming()
    variables = {"TRANSLATE_ROOM": "town-hall", "TRANSLATE_PARTICIPANT": "mayor"}
    (started,) = js.receive(json.dumps({"event": "MEDIA_START", "format": "ulaw", "channel_variables": variables}))
    assert isinstance(started, Started) and started.params == {"room": "town-hall", "participant": "mayor"}
