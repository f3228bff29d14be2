"""The SIP door's sans-I/O parts with plain values (issue 60): messages parsed within their bounds
(RFC 3261 §7; anything else is ``SipParseError``, never another exception), SDP offer/answer
(RFC 3264), RTP packets and RFC 4733 events, and the source checks made before any state."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from translate_svc.session.events import AudioIn
from translate_svc.transport.sip import sdp
from translate_svc.transport.sip.guard import AllowList, InviteRate
from translate_svc.transport.sip.message import MAX_HEADERS, SipParseError, parse, response
from translate_svc.transport.sip.rtp import RtpFraming, build_packet, parse_packet
from translate_svc.transport.sip.stream import read_messages
from translate_svc.transport.telephony.call import Dtmf

pytestmark = pytest.mark.unit

INVITE = (
    b"INVITE sip:eng-spa@127.0.0.1 SIP/2.0\r\n"
    b"v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKabc\r\n"
    b"f: <sip:a@10.0.0.1>;tag=1\r\n"
    b"t: <sip:eng-spa@127.0.0.1>\r\n"
    b"i: call-1\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Subject: a folded\r\n line\r\n"
    b"l: 4\r\n\r\nbody"
)


def test_a_request_parses_with_compact_and_folded_headers() -> None:
    msg = parse(INVITE, 8192)
    assert msg.method == "INVITE" and msg.call_id == "call-1" and msg.branch() == "z9hG4bKabc"
    assert msg.from_tag() == "1" and msg.to_tag() == "" and msg.body == b"body"
    assert msg.get("subject") == "a folded line"
    resp = parse(response(msg, 200, "OK", to_tag="xyz").encode(), 8192)
    assert resp.status == 200 and resp.to_tag() == "xyz" and resp.call_id == "call-1"


@pytest.mark.parametrize(
    ("data", "answerable"),
    [
        (INVITE.replace(b"l: 4", b"l: 40"), True),  # truncated
        (INVITE.replace(b"CSeq: 1 INVITE", b"CSeq: 1 BYE"), True),
        (INVITE.replace(b"i: call-1\r\n", b""), False),  # no Call-ID: nothing to answer with
        (INVITE.replace(b"\r\n\r\n", b"\r\n"), False),
        (b"\xff\xfe" + INVITE, False),
        (INVITE.replace(b"Subject: a", b"Subject: " + b"a" * 3000), False),
        (INVITE.replace(b"CSeq", b"X: y\r\n" * MAX_HEADERS + b"CSeq"), False),
    ],
)
def test_unreadable_requests_are_refused_and_answerable_only_when_their_dialog_headers_are_there(
    data: bytes, answerable: bool
) -> None:
    with pytest.raises(SipParseError) as caught:
        parse(data, 8192)
    assert caught.value.answerable is answerable


def test_an_oversized_request_is_513_when_its_head_can_be_read() -> None:
    big = INVITE.replace(b"l: 4", b"l: 9000") + b"x" * 8996
    with pytest.raises(SipParseError) as caught:
        parse(big, 8192)
    assert caught.value.status == 513 and caught.value.answerable


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_any_bytes_parse_or_raise_sip_parse_error(data: bytes) -> None:
    for candidate in (data, INVITE[:40] + data, INVITE.replace(b"body", data[:4].ljust(4, b"x"))):
        try:
            parse(candidate, 512)
        except SipParseError:
            pass


OFFER = (
    b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
    b"m=video 5004 RTP/AVP 96\r\n"
    b"m=audio 4000 RTP/AVP 18 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendonly\r\n"
)


def test_the_offer_order_picks_the_codec_and_other_media_are_rejected() -> None:
    offer = sdp.parse_offer(OFFER)
    chosen = sdp.choose(offer)
    assert (chosen.index, chosen.codec_name, chosen.payload_type, chosen.event_type) == (1, "PCMA", 8, 101)
    assert (chosen.address, chosen.port, chosen.direction) == ("10.0.0.1", 4000, "recvonly")
    answer = sdp.answer(offer, chosen, "127.0.0.1", 30000).decode()
    assert "m=video 0 RTP/AVP 96" in answer and "m=audio 30000 RTP/AVP 8 101" in answer and "a=recvonly" in answer


def test_g722_is_chosen_whenever_offered_and_a_reinvite_keeps_the_rate() -> None:
    offer = sdp.parse_offer(
        b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
        b"m=audio 4000 RTP/AVP 0 8 9 101\r\na=rtpmap:9 G722/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    )
    chosen = sdp.choose(offer)
    assert (chosen.codec_name, chosen.payload_type, chosen.codec.rate) == ("G722", 9, 16000)
    assert b"a=rtpmap:9 G722/8000" in sdp.answer(offer, chosen, "10.0.0.2", 5000, session_id=1)
    assert sdp.choose(offer, rate=8000).codec_name == "PCMU"  # a G.711 call's re-INVITE stays G.711
    with pytest.raises(sdp.NoCodec):
        sdp.choose(sdp.parse_offer(OFFER), rate=16000)  # G.711 only


def test_opus_is_chosen_ahead_of_g722_and_answered_with_its_rtpmap() -> None:
    offer = sdp.parse_offer(
        b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
        b"m=audio 4000 RTP/AVP 0 9 111\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 useinbandfec=1\r\n"
    )
    chosen = sdp.choose(offer)
    assert (chosen.codec_name, chosen.payload_type, chosen.codec.rate) == (sdp.OPUS, 111, 16000)
    assert (
        "m=audio 5000 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n"
        in sdp.answer(offer, chosen, "10.0.0.2", 5000).decode()
    )
    assert sdp.choose(offer, rate=16000).codec_name == sdp.OPUS  # a re-INVITE of a wideband call


def test_an_offer_without_g711_is_no_codec() -> None:
    with pytest.raises(sdp.NoCodec):
        sdp.choose(sdp.parse_offer(OFFER.replace(b"18 8 0 101", b"18 101")))
    with pytest.raises(sdp.SdpError):
        sdp.parse_offer(b"hello")


def test_rtp_packets_with_csrcs_extension_and_padding_are_read() -> None:
    packet = bytes([0xB1, 0x00, 0, 1, 0, 0, 0, 160, 0, 0, 0, 7]) + b"CSRC" + b"\xbe\xde\x00\x01" + b"EXT!"
    packet += b"\xff" * 160 + b"\x00\x00\x03"
    read = parse_packet(packet)
    assert read is not None and read.payload == b"\xff" * 160 and read.ssrc == 7
    assert parse_packet(b"\x00" * 20) is None and parse_packet(b"\x80") is None


def test_an_rfc4733_event_counts_once_and_the_other_law_is_converted() -> None:
    from translate_svc.transport.sip.sdp import CODECS

    framing = RtpFraming("c", CODECS["PCMU"], {0: CODECS["PCMU"], 8: CODECS["PCMA"]}, 101)
    framing.receive("start")
    events = [build_packet(101, n, 800, 1, bytes([5, 0x80 if n >= 2 else 0, 0, 160]), False) for n in range(5)]
    out = [item for e in events for item in framing.receive(e)]
    assert out == [Dtmf("5")]
    [audio] = framing.receive(build_packet(8, 9, 960, 1, b"\xd5" * 160, False))  # A-law silence
    assert isinstance(audio, AudioIn) and len(audio.data) == 160  # as µ-law, still (near) silence
    assert abs(CODECS["PCMU"].decode(audio.data)).max() < 0.001
    assert framing.receive(build_packet(13, 10, 1120, 1, b"\x40", False)) == []  # comfort noise: dropped
    assert framing.dropped == 1


def test_a_dtmf_digit_of_sip_dtmf_targets_is_also_an_update_of_the_target() -> None:
    from translate_svc.session.events import Update
    from translate_svc.transport.sip.sdp import CODECS

    framing = RtpFraming("c", CODECS["PCMU"], {0: CODECS["PCMU"]}, 101, {"2": "fra"})
    framing.receive("start")
    end = [
        build_packet(101, n, 800 * t, 1, bytes([d, 0x80, 0, 160]), False) for t, d in ((1, 1), (2, 2)) for n in (0, 1)
    ]
    assert [item for e in end for item in framing.receive(e)] == [
        Dtmf("1"),
        Dtmf("2"),
        Update(target_languages=("fra",)),
    ]


def test_retargets_are_coalesced_and_digits_counted() -> None:
    """Issue 68, H16: a digit naming the language already asked for is no new update, and at most
    one retarget per ``RETARGET_EVERY_S`` goes out, the last one asked for meanwhile, with the
    first packet after the interval."""
    from translate_svc.session.events import Update
    from translate_svc.transport.sip.rtp import RETARGET_EVERY_S
    from translate_svc.transport.sip.sdp import CODECS

    now = [0.0]
    framing = RtpFraming("c", CODECS["PCMU"], {0: CODECS["PCMU"]}, 101, {"1": "fra", "2": "deu"}, clock=lambda: now[0])
    framing.receive("start")

    def digit(d: int, t: int) -> list[object]:
        return list(framing.receive(build_packet(101, t, 800 * t, 1, bytes([d, 0x80, 0, 160]), False)))

    updates = [i for t, d in enumerate([1, 1, 2, 1, 2, 1, 2], 1) for i in digit(d, t) if isinstance(i, Update)]
    assert updates == [Update(target_languages=("fra",))]  # the first at once; the rest within the interval
    now[0] = RETARGET_EVERY_S + 0.01
    [_, update] = framing.receive(build_packet(0, 99, 160 * 99, 1, b"\xff" * 160, False))
    assert update == Update(target_languages=("deu",))  # the last asked for: 2
    now[0] = 2 * RETARGET_EVERY_S + 0.02
    assert [i for i in digit(1, 50) if isinstance(i, Update)] == [Update(target_languages=("fra",))]
    assert [i for i in digit(1, 51) if isinstance(i, Update)] == []  # the same again: nothing
    assert framing.digits == 9


def test_sdp_bounds_are_400_and_the_media_address_is_an_ip_literal() -> None:
    """Issue 68, H12 and H1/H3: ports, formats and a c= address of the wrong type are unreadable
    (400); a name, multicast, broadcast, unspecified, reserved and (from elsewhere) loopback are
    not taken (488); nothing of a name is echoed."""
    from translate_svc.transport.sip.addresses import rtp_address

    for bad in (
        b"m=audio 99999 RTP/AVP 0",
        b"m=audio " + b"9" * 5000 + b" RTP/AVP 0",
        b"m=audio 1 RTP/AVP " + b"0 " * 40,
    ):
        with pytest.raises(sdp.SdpError):
            sdp.parse_offer(b"v=0\r\nc=IN IP4 10.0.0.1\r\n" + bad + b"\r\n")
    with pytest.raises(sdp.SdpError):
        sdp.parse_offer(b"v=0\r\nc=IN IP4 ::1\r\nm=audio 4000 RTP/AVP 0\r\n")

    def address(text: str, peer: str = "192.0.2.7", host: str = "0.0.0.0") -> str:
        return rtp_address(text, server_host=host, peer=peer)

    assert address("192.0.2.8") == "192.0.2.8" and address("127.0.0.1", peer="127.0.0.1") == "127.0.0.1"
    assert address("192.0.2.8", host="::") == "::ffff:192.0.2.8" and address("2001:db8::1", host="::") == "2001:db8::1"
    for refused in ("media.example.com", "224.0.0.1", "255.255.255.255", "0.0.0.0", "0.1.2.3", "240.0.0.1"):
        with pytest.raises(sdp.NotAcceptable):
            address(refused)
    assert "example" not in _why(lambda: address("media.example.com"))  # nothing of a name is echoed
    for refused, kw in (
        ("127.0.0.1", {}),
        ("2001:db8::1", {}),
        ("fe80::1", {"host": "::"}),
        ("10.0.0.1", {"host": "::1"}),
    ):
        with pytest.raises(sdp.NotAcceptable):
            address(refused, **kw)
    with pytest.raises(sdp.SdpError):
        address("not an address!")


def _why(call: object) -> str:
    try:
        call()  # type: ignore[operator]
    except sdp.NotAcceptable as e:
        return str(e)
    raise AssertionError("not refused")


@pytest.mark.parametrize(
    ("call_id", "answerable"),
    [
        (b"abc\ncode=OK tenant=forged", False),  # a bare LF: no answer could copy it back
        (b"two words", True),
        (b"x" * 300, True),
    ],
)
def test_a_control_character_or_a_call_id_outside_the_grammar_is_refused(call_id: bytes, answerable: bool) -> None:
    """Issue 68, H9: RFC 3261 §25.1's Call-ID is word[@word]; no header holds a control character."""
    with pytest.raises(SipParseError) as caught:
        parse(INVITE.replace(b"i: call-1", b"i: " + call_id), 8192)
    assert caught.value.answerable is answerable
    with pytest.raises(SipParseError) as caught:
        parse(INVITE.replace(b"Subject: a", b"Subject: a\x1bb"), 8192)
    assert caught.value.answerable  # a control elsewhere: 400 (the copied headers are clean)
    assert parse(INVITE.replace(b"i: call-1", b"i: a1.b-c_d!%*+`'~()<>:\\\"/[]?{}@host"), 8192).call_id


def test_sources_are_checked_against_the_networks_and_rated_per_source() -> None:
    allow = AllowList(["10.0.0.0/8", "::1/128"])
    assert allow.allows("10.1.2.3") and allow.allows("::ffff:10.0.0.1") and allow.allows("::1")
    assert not allow.allows("127.0.0.1") and not allow.allows("not an address")
    rate = InviteRate(rate=1.0, burst=2, max_sources=2)
    assert [rate.take("a", 0.0) for _ in range(3)] == [True, True, False]
    assert rate.take("a", 1.0) and rate.take("b", 1.0) and rate.take("c", 1.0)  # "a" forgotten: a new bucket


def test_a_digest_answer_checks_against_the_tokens_files_ha1_and_a_live_nonce() -> None:
    from translate_svc.transport.sip.digest import DigestChallenger, Verdict, expected_response, parse_authorization
    from translate_svc.transport.tokens.file import TokenFileError, parse_tokens
    from translate_svc.transport.tokens.sip import sip_ha1, sip_password

    [(_, grant)] = parse_tokens("s3cret stream tenant=pbx sip_user=pbx1\n", "test")
    password = sip_password("s3cret", "pbx1")  # an HMAC of the user under the token, not the token
    assert len(password) == 32 and "s3cret" not in password and password != sip_password("s3cret", "pbx2")
    assert grant.sip_user == "pbx1" and grant.sip_ha1 == sip_ha1("pbx1", password) != sip_ha1("pbx1", "s3cret")
    assert grant.sip_ha1 is not None
    with pytest.raises(TokenFileError):
        parse_tokens("a stream sip_user=u\nb stream sip_user=u\n", "test")
    digest = DigestChallenger(b"k" * 32)
    assert digest.challenge("10.0.0.1", now=1000.0) != digest.challenge("10.0.0.1", now=1000.0)  # salted
    nonce = parse_authorization(digest.challenge("10.0.0.1", now=1000.0))
    assert nonce is not None
    uri = "sip:x@h"
    params = {"username": "pbx1", "realm": "translate-svc", "nonce": nonce["nonce"], "uri": uri}
    params |= {"qop": "auth", "nc": "00000001", "cnonce": "c1"}
    params["response"] = expected_response(params, grant.sip_ha1, "INVITE")

    def check(p: dict[str, str], *, at: float = 1010.0, source: str = "10.0.0.1", to: str = uri) -> Verdict:
        assert grant.sip_ha1 is not None
        return digest.check(p, grant.sip_ha1, "INVITE", to, source, now=at)

    assert check(params, at=1000.0 + 301) is Verdict.STALE  # too old
    assert check(params, source="10.0.0.2") is Verdict.STALE  # a nonce sent to another address
    assert check(params, to="sip:y@h") is Verdict.WRONG  # an answer for another Request-URI
    assert check({**params, "response": "0" * 32}) is Verdict.WRONG
    assert check({**params, "nonce": "3e8.forged"}) is Verdict.STALE
    assert check(params) is Verdict.OK
    assert check(params) is Verdict.STALE  # the same count again: a replay
    second = {**params, "nc": "00000002"}
    second["response"] = expected_response(second, grant.sip_ha1, "INVITE")
    assert check(second) is Verdict.OK and check(second) is Verdict.STALE
    no_qop = {k: v for k, v in params.items() if k not in ("qop", "nc", "cnonce")}
    no_qop["nonce"] = parse_authorization(digest.challenge("10.0.0.1", now=1001.0))["nonce"]  # type: ignore[index]
    no_qop["response"] = expected_response(no_qop, grant.sip_ha1, "INVITE")
    assert check(no_qop) is Verdict.OK and check(no_qop) is Verdict.STALE  # without a count: once


def test_the_digest_nonce_table_is_bounded_and_a_forgotten_nonce_is_stale() -> None:
    from translate_svc.transport.sip.digest import DigestChallenger, Verdict, expected_response, parse_authorization

    digest = DigestChallenger(b"k" * 32, max_nonces=2)
    answers = []
    for at in (1000.0, 1001.0, 1002.0):
        nonce = parse_authorization(digest.challenge("h", now=at))
        assert nonce is not None
        p = {"realm": "translate-svc", "nonce": nonce["nonce"], "uri": "u", "qop": "auth", "nc": "00000001"}
        p |= {"cnonce": "c"}
        p["response"] = expected_response(p, "a" * 32, "INVITE")
        assert digest.check(p, "a" * 32, "INVITE", "u", "h", now=1003.0) is Verdict.OK
        answers.append(p)
    later = {**answers[0], "nc": "00000002"}
    later["response"] = expected_response(later, "a" * 32, "INVITE")
    assert digest.check(later, "a" * 32, "INVITE", "u", "h", now=1004.0) is Verdict.STALE  # its count forgotten


async def _framed(chunks: list[bytes], limit: int = 8192) -> tuple[list[bytes], str | None]:
    reader = asyncio.StreamReader()
    for chunk in chunks:
        reader.feed_data(chunk)
    reader.feed_eof()
    got: list[bytes] = []
    why = await read_messages(reader, limit, got.append)
    return got, why


async def test_a_byte_stream_is_framed_by_content_length_with_keepalives_between() -> None:
    options = b"OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\n\r\n"
    invite = b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 4\r\n\r\nbody"
    both = b"\r\n\r\n" + options + invite + b"\r\n"
    got, why = await _framed([both[:30], both[30:61], both[61:]])  # split anywhere: heads, bodies
    assert (got, why) == ([options, invite], None)
    got, why = await _framed([b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 9000\r\n\r\n"])
    assert got == [] and why is not None and "Content-Length" in why
    got, why = await _framed([b"INVITE sip:a@b SIP/2.0\r\nContent-Length: x\r\n\r\n" + options])
    assert got == [] and why is not None  # the stream cannot be framed after it
