"""A call's conversation as both telephony doors read it (``telephony/call.py``, sans I/O): the
call parameter ``conversation`` (the phone door's URL or Twilio's ``customParameters``; the SIP
door's ``X-Translate-Conversation`` header) in place of ``source`` and ``target``. The phone door's
calls end to end: tests/transport/phone/test_conversation_call.py."""

from __future__ import annotations

import pytest

from translate_svc.errors import InvalidInput
from translate_svc.settings import PhoneSettings
from translate_svc.transport.sip import message
from translate_svc.transport.sip.invite import call_params as sip_params
from translate_svc.transport.telephony.call import CallCodec, call_setup, stream_config
from translate_svc.types import AudioEncoding
from translate_svc.vad.segmenter import SegmenterConfig

pytestmark = pytest.mark.unit


def test_the_setup_takes_a_conversation_in_place_of_the_settings_languages() -> None:
    s = PhoneSettings()  # its defaults: eng -> spa
    codec = CallCodec(AudioEncoding.MULAW, 8000)
    cfg = stream_config(call_setup({"conversation": " eng, spa ,"}, s), codec, SegmenterConfig())
    assert cfg.conversation == ("eng", "spa") and cfg.target_languages == () and cfg.source_language == ""
    plain = stream_config(call_setup({}, s), codec, SegmenterConfig())
    assert plain.conversation is None and plain.target_languages == ("spa",) and plain.source_language == "eng"
    # one sent beside it is passed on, for the core to refuse naming both
    beside = stream_config(call_setup({"conversation": "eng,spa", "target": "fra"}, s), codec, SegmenterConfig())
    assert beside.conversation == ("eng", "spa") and beside.target_languages == ("fra",)
    with pytest.raises(InvalidInput):
        call_setup({"conversation": "eng," * 20}, s)  # past the parameters' length bound
    # the server's simultaneous default is not a conversation's (the core would refuse it)
    simul = PhoneSettings(simultaneous=True)
    assert not call_setup({"conversation": "eng,spa"}, simul).simultaneous and call_setup({}, simul).simultaneous


def test_a_sip_invite_names_a_conversation_in_its_header_and_not_by_the_dialled_user() -> None:
    invite = message.parse(
        b"INVITE sip:eng-fra@127.0.0.1 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\n"
        b"To: <sip:eng-fra@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n"
        b"X-Translate-Conversation: eng,spa\r\nContent-Length: 0\r\n\r\n",
        65536,
    )
    params = sip_params(invite)
    assert params == {"conversation": "eng,spa"}
    setup = call_setup(params, PhoneSettings())
    assert setup.conversation == ("eng", "spa") and (setup.source, setup.target) == ("", "")


def test_a_conversation_call_names_each_partys_voice_and_rate() -> None:
    s = PhoneSettings()
    codec = CallCodec(AudioEncoding.MULAW, 8000)
    params = {"conversation": "eng,spa", "voices": "spa:2, eng:5", "speeds": "eng:0.85"}
    cfg = stream_config(call_setup(params, s), codec, SegmenterConfig())
    assert cfg.parties.voices == (("spa", 2), ("eng", 5)) and cfg.parties.speeds == (("eng", 0.85),)
    assert stream_config(call_setup({"conversation": "eng,spa"}, s), codec, SegmenterConfig()).parties.voices == ()
    for name, value in [("voices", "spa=2"), ("voices", "spa:two"), ("voices", "spa:2.5"), ("speeds", ":1.2")]:
        with pytest.raises(InvalidInput) as e:
            call_setup({"conversation": "eng,spa", name: value}, s)
        assert f"`{name}` is language:value pairs" in e.value.message, (name, value)


def test_a_sip_invite_names_the_parties_voices_and_rates_in_headers() -> None:
    invite = message.parse(
        b"INVITE sip:translate@127.0.0.1 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\n"
        b"To: <sip:translate@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n"
        b"X-Translate-Conversation: eng,spa\r\nX-Translate-Voices: eng:3\r\nX-Translate-Speeds: spa:1.25\r\n"
        b"Content-Length: 0\r\n\r\n",
        65536,
    )
    setup = call_setup(sip_params(invite), PhoneSettings())
    assert setup.parties.voices == (("eng", 3),) and setup.parties.speeds == (("spa", 1.25),)
