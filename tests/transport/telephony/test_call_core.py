"""The telephony floor's pure parts (issues 44 and 71): G.711 encoding against the decoding tables,
marks, the backlog, the speech queue and the 20 ms pacer, a call's setup from its parameters, and
the mix of the other leg's voice under its translation, with plain values (the clock passed in)."""

from __future__ import annotations

import numpy as np
import pytest

from translate_svc.audio import g711
from translate_svc.audio.codec import ALAW_TABLE, MULAW_TABLE
from translate_svc.errors import InvalidInput
from translate_svc.session.events import RoomJoin
from translate_svc.settings import PhoneSettings
from translate_svc.transport.telephony.call import CallCodec, call_params, call_setup, stream_config
from translate_svc.transport.telephony.mix import UnderMix
from translate_svc.transport.telephony.playout import Backlog, FramePacer, Marks, SpeechQueue
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
