"""The phone door's pure parts (issue 44): G.711 encoding against the decoding tables, the framings'
refusals and messages from the carriers' published formats, marks, the backlog and the 20 ms pacer,
with plain values (the clock passed in)."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from translate_svc.audio import g711
from translate_svc.audio.codec import ALAW_TABLE, MULAW_TABLE
from translate_svc.errors import InvalidInput
from translate_svc.session.events import AudioIn, Invalid, RoomJoin
from translate_svc.settings import PhoneSettings
from translate_svc.transport.phone.asterisk import AsteriskFraming
from translate_svc.transport.phone.audiosocket import AudioSocketFraming, frame
from translate_svc.transport.phone.call import (
    CallCodec,
    Flow,
    Hangup,
    Played,
    Started,
    call_params,
    call_setup,
    stream_config,
)
from translate_svc.transport.phone.mix import UnderMix
from translate_svc.transport.phone.playout import Backlog, FramePacer, Marks, SpeechQueue
from translate_svc.transport.phone.twilio import EXOTEL, SIGNALWIRE, TELNYX, TwilioFraming
from translate_svc.types import AudioEncoding
from translate_svc.vad.segmenter import SegmenterConfig

pytestmark = pytest.mark.unit


def test_every_g711_code_encodes_back_to_itself() -> None:
    codes = np.arange(256)
    ulaw = np.frombuffer(g711.encode_mulaw(MULAW_TABLE.astype(np.float32)), np.uint8)
    alaw = np.frombuffer(g711.encode_alaw(ALAW_TABLE.astype(np.float32)), np.uint8)
    assert (alaw == codes).all()
    assert (ulaw[codes != 0x7F] == codes[codes != 0x7F]).all() and ulaw[0x7F] == 0xFF  # -0 is +0
    assert g711.encode_mulaw(np.zeros(2, np.float32)) == b"\xff\xff" and g711.encode_alaw(np.zeros(1)) == b"\xd5"


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


def test_marks_backlog_and_speech_queue() -> None:
    marks = Marks()
    a, b = marks.add(1, 10.0), marks.add(2, 11.0)
    assert marks.played("unknown") is None
    assert marks.played(b.name) == b and not marks  # a mark played means those before it were too
    assert marks.played(a.name) is None
    backlog = Backlog()
    backlog.sent(2.0, now=100.0)
    backlog.sent(1.0, now=100.5)
    assert backlog.unplayed(101.0) == pytest.approx(2.0)
    q = SpeechQueue()
    q.put(b"a" * 300)
    q.put_mark("m")
    q.put(b"b" * 100)
    assert q.take(320) == (b"a" * 300 + b"b" * 20, ["m"])
    assert q.take(320) == (b"b" * 80, [])


def test_the_backlog_counts_speech_after_a_mark_the_carrier_has_not_played() -> None:
    backlog = Backlog()
    backlog.sent(1.0, now=0.0)
    backlog.mark("m1")
    backlog.sent(1.0, now=5.0)  # at real time m1 played by 1.0, and this second by 6.0
    backlog.mark("m2")
    backlog.sent(0.5, now=10.0)
    # a real-time carrier would hold 0.5 s; this one has not played m1: 1.5 s after it is unheard
    assert backlog.unplayed(10.0) == pytest.approx(1.5)
    backlog.played("m1")
    assert backlog.unplayed(10.0) == pytest.approx(0.5)  # m2 is still pending: 0.5 s after it
    backlog.played("unknown")
    backlog.played("m2")
    assert backlog.unplayed(10.2) == pytest.approx(0.3)  # back to the real-time estimate
    backlog.mark("m3")
    backlog.sent(2.0, now=20.0)
    backlog.cleared(20.0)
    assert backlog.unplayed(20.0) == 0.0


def test_the_pacer_sends_one_frame_per_slot_catches_up_short_delays_and_skips_long_ones() -> None:
    p = FramePacer(start=0.0, frame_s=0.02)
    assert p.due() == 0.0 and p.slots(-0.01) == []
    assert p.slots(0.001) == [pytest.approx(0.001)] and p.due() == pytest.approx(0.02)
    assert p.slots(0.01) == []  # never ahead of a slot
    # a wake 25 ms late (slot 1 due 0.02, slot 2 due 0.04): both slots are sent, none skipped
    assert p.slots(0.045) == [pytest.approx(0.025), pytest.approx(0.005)] and p.skipped == 0
    # the deadlines stay on the call's grid, not on the last wake
    assert p.due() == pytest.approx(0.06)
    # the loop stalled: slots 3..8 (due 0.06..0.16) at 0.165; those late by 60 ms or more are skipped
    lates = p.slots(0.165)
    assert lates == [pytest.approx(0.045), pytest.approx(0.025), pytest.approx(0.005)]
    assert p.skipped == 3 and p.due() == pytest.approx(0.18)
    assert p.sent == 6 and p.k == p.sent + p.skipped
    # catch-up off below a frame: the newest due slot alone is sent
    q = FramePacer(start=0.0, frame_s=0.02, catch_up_s=0.0)
    assert q.slots(0.065) == [pytest.approx(0.005)] and q.skipped == 3


def test_call_setup_from_parameters() -> None:
    s = PhoneSettings()
    assert (
        call_setup({}, s).target == "spa"
        and call_setup({"target": "fra", "simultaneous": "0"}, s).simultaneous is False
    )
    with pytest.raises(InvalidInput):
        call_setup({"source": "x" * 65}, s)


def test_the_under_mix_carries_the_speakers_voice_attenuated_with_the_translation_on_top() -> None:
    speaker, listener = CallCodec(AudioEncoding.LINEAR16, 8000), CallCodec(AudioEncoding.MULAW, 8000)
    mix = UnderMix(speaker, listener, gain=0.25)
    voice = (0.8 * np.sin(np.arange(160) / 5)).astype(np.float32)
    chunk = (voice * 32767).astype("<i2").tobytes()
    # nothing to say: the voice alone, at a quarter
    out, marks = mix.under(chunk)
    assert len(out) == 160 and marks == []
    assert np.allclose(g711.decode_mulaw(out), 0.25 * voice, atol=0.01)
    # 30 ms of translation and a mark: the first chunk carries 20 ms of it on top, the next the
    # rest, and the mark passes with the chunk that ends the speech
    mix.speech(np.full(240, 0.1, np.float32))
    mix.mark("m1")
    assert mix.held_s == pytest.approx(0.03)
    out, marks = mix.under(chunk)
    assert marks == [] and np.allclose(g711.decode_mulaw(out), 0.25 * voice + 0.1, atol=0.01)
    out, marks = mix.under(chunk)
    heard = g711.decode_mulaw(out)
    assert marks == ["m1"] and np.allclose(heard[:80], 0.25 * voice[:80] + 0.1, atol=0.01)
    assert np.allclose(heard[80:], 0.25 * voice[80:], atol=0.01)
    # the speaker left: what is left of the translation goes alone
    mix.speech(np.full(80, 0.1, np.float32))
    mix.mark("m2")
    rest, marks = mix.rest()
    assert len(rest) == 80 and marks == ["m2"] and mix.held_s == 0


def test_the_under_mix_sends_whole_frames_whatever_the_speakers_chunks() -> None:
    speaker, listener = CallCodec(AudioEncoding.LINEAR16, 16000), CallCodec(AudioEncoding.ALAW, 8000)
    mix = UnderMix(speaker, listener, gain=0.5)
    chunk = (np.full(160, 0.4) * 32767).astype("<i2").tobytes()  # 10 ms at 16 kHz
    sizes = [len(mix.under(chunk)[0]) for _ in range(40)]  # (soxr's stream gives ~100 ms blocks)
    assert all(size % 160 == 0 for size in sizes) and 0 < sum(sizes) <= 3200
    mix.speech(np.full(40, 0.1, np.float32))
    mix.mark("m")
    out, marks, fed = b"", [], 40
    while not marks:
        audio, marks = mix.under(chunk)
        out, fed = out + audio, fed + 1
    assert marks == ["m"] and len(out) > 0  # the chunk that ends the speech goes out whole
    # nothing made up: never more audio out than came in (at 8 kHz, 80 samples a chunk)
    assert sum(sizes) + len(out) + len(mix.rest()[0]) <= fed * 80


def test_a_call_that_names_a_room_speaks_into_it_in_segment_mode_with_its_transcript() -> None:
    s = PhoneSettings()  # simultaneous by default
    codec = CallCodec(AudioEncoding.MULAW, 8000)
    plain = call_setup({}, s)
    assert plain.room is None and plain.simultaneous is True
    assert stream_config(plain, codec, SegmenterConfig()).output.transcript is False
    setup = call_setup({"room": "town-hall", "participant": "mayor", "target": "fra"}, s)
    assert setup.room == RoomJoin("town-hall", "mayor") and setup.simultaneous is False
    config = stream_config(setup, codec, SegmenterConfig())
    assert config.room == RoomJoin("town-hall", "mayor") and config.simultaneous is None
    assert config.target_languages == ("fra",) and config.output.transcript is True  # listeners read it
    assert call_setup({"x_room": "lobby"}, s).room == RoomJoin("lobby", "")  # the OpenAI door's name
    # asked for explicitly, simultaneous stays (the room then refuses it, saying why)
    assert call_setup({"room": "lobby", "simultaneous": "1"}, s).simultaneous is True
    with pytest.raises(InvalidInput, match="send `room`"):
        call_setup({"participant": "mayor"}, s)
    with pytest.raises(InvalidInput):
        call_setup({"room": "r" * 65}, s)


def test_asterisk_channel_variables_name_the_room() -> None:
    js = AsteriskFraming()
    variables = {"TRANSLATE_ROOM": "town-hall", "TRANSLATE_PARTICIPANT": "mayor"}
    (started,) = js.receive(json.dumps({"event": "MEDIA_START", "format": "ulaw", "channel_variables": variables}))
    assert isinstance(started, Started) and started.params == {"room": "town-hall", "participant": "mayor"}


def test_a_signed_calls_start_message_cannot_choose_whom_it_meets() -> None:
    """(Issue 57.) The start message's parameters go on top of the URL's, except, for a call whose
    URL is signed, those that say whom it meets: they must match the signed URL's."""
    url = {"room": "town-hall", "source": "eng"}
    assert call_params(url, {"target": "fra"}, signed=True) == {"room": "town-hall", "source": "eng", "target": "fra"}
    assert call_params(url, {"room": "town-hall"}, signed=True)["room"] == "town-hall"
    assert call_params(url, {"room": "other"}, signed=False)["room"] == "other"  # a token's call: its own
    for given in ({"room": "other"}, {"participant": "mayor"}, {"call": "c1"}, {"x_room": "town-hall"}):
        with pytest.raises(InvalidInput, match="not signed"):
            call_params(url, given, signed=True)
