"""How a call's turns end, as both telephony doors read it (``telephony/call.py``, sans I/O): the
call parameter ``eagerness`` (the phone door's URL or Twilio's ``customParameters``; the SIP door's
``X-Translate-Eagerness`` header) over the server's ``vad.eagerness``. A call end to end:
tests/transport/phone/test_semantic_turn_call.py."""

from __future__ import annotations

import dataclasses

import pytest

from translate_svc.errors import InvalidInput
from translate_svc.settings import PhoneSettings
from translate_svc.transport.sip import message
from translate_svc.transport.sip.invite import call_params as sip_params
from translate_svc.transport.telephony.call import CallCodec, call_setup, stream_config
from translate_svc.types import AudioEncoding
from translate_svc.vad.segmenter import EAGERNESS, SegmenterConfig

pytestmark = pytest.mark.unit

CODEC = CallCodec(AudioEncoding.MULAW, 8000)


def test_a_call_chooses_how_its_turns_end_over_the_servers_default() -> None:
    s = PhoneSettings()
    silence, semantic = SegmenterConfig(), SegmenterConfig(eagerness="medium")
    for value in EAGERNESS:
        assert stream_config(call_setup({"eagerness": value}, s), CODEC, silence).vad.eagerness == value
    # "silence" keeps the silence rule on a server whose default is the model's
    assert stream_config(call_setup({"eagerness": "silence"}, s), CODEC, semantic).vad.eagerness == ""
    # unsaid: the server's, every other VAD setting untouched
    assert stream_config(call_setup({}, s), CODEC, semantic).vad == semantic
    low = stream_config(call_setup({"eagerness": "low"}, s), CODEC, semantic).vad
    assert low == dataclasses.replace(semantic, eagerness="low")


def test_an_eagerness_no_one_knows_refuses_the_call_naming_the_values() -> None:
    with pytest.raises(InvalidInput) as e:
        call_setup({"eagerness": "eager"}, PhoneSettings())
    assert "`eagerness` must be one of low, medium, high, auto" in e.value.message and '"silence"' in e.value.message


def test_a_sip_invite_says_it_in_its_header() -> None:
    invite = message.parse(
        b"INVITE sip:eng-spa@127.0.0.1 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\n"
        b"To: <sip:eng-spa@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n"
        b"X-Translate-Eagerness: high\r\nContent-Length: 0\r\n\r\n",
        65536,
    )
    params = sip_params(invite)
    assert params["eagerness"] == "high"
    assert stream_config(call_setup(params, PhoneSettings()), CODEC, SegmenterConfig()).vad.eagerness == "high"
