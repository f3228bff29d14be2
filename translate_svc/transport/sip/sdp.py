"""SDP offer/answer for one audio stream (RFC 4566, RFC 3264), sans I/O.

We take the first audio stream of an offer over RTP/AVP whose payload types include Opus
(``opus/48000/2``, RFC 7587), G.722 (9), PCMU (0) or PCMA (8) and answer with one codec and, when
offered, RFC 4733 ``telephone-event`` at 8 kHz: Opus whenever it is offered, else G.722 (both run
the call at 16 kHz: the model hears twice G.711's band, and the caller hears the translation in
it; docs/decisions.md), else the first of PCMU and PCMA in the offer's order (the caller's
preference, §6.1). A re-INVITE keeps the call's rate (``choose``'s
``rate``): its stream cannot change rate, so it may move between PCMU and PCMA only. Every other
media line is answered with port 0 (rejected, §6). An offer with no codec we take is ``NoCodec``
(the door answers 488). Bounds before anything is kept: ``MAX_LINES`` lines, ``MAX_FORMATS``
formats a media line, a port of at most five digits and 65535 (a port of 5,000 digits
raised a traceback, 99999 was answered 200). Where the media goes (the ``c=`` address: an IP
literal, never a name) is checked by ``addresses.py``. The direction answers the offer's
(``sendonly`` -> ``recvonly``, §6.1): a hold. Pure and thread-safe.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass

from translate_svc.transport.telephony.call import CallCodec
from translate_svc.types import AudioEncoding

#: the static payload types we take (RFC 3551 table 4)
STATIC = {0: "PCMU", 8: "PCMA", 9: "G722"}
#: Opus's name here (its rtpmap's encoding, rate and channels, RFC 7587 §7)
OPUS = "OPUS/48000/2"
#: a G.722 or Opus call's stream: 16 kHz PCM (the RTP carries it coded: ``rtp.TRANSCODED``)
WIDEBAND = CallCodec(AudioEncoding.LINEAR16, 16000)
CODECS = {
    "PCMU": CallCodec(AudioEncoding.MULAW, 8000),
    "PCMA": CallCodec(AudioEncoding.ALAW, 8000),
    "G722": WIDEBAND,
    OPUS: WIDEBAND,
}
#: each codec's rtpmap in our answer
RTPMAP = {"PCMU": "PCMU/8000", "PCMA": "PCMA/8000", "G722": "G722/8000", OPUS: "opus/48000/2"}
#: taken first whenever offered, in this order, whatever the offer's order
PREFERRED = (OPUS, "G722")
#: the directions an answer gives to each offered one
ANSWER_DIRECTION = {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}
#: lines of an SDP body, at most
MAX_LINES = 128
#: formats (payload types) of one media line, at most
MAX_FORMATS = 32


class SdpError(Exception):
    """An offer we cannot read (the door answers 400)."""


class NotAcceptable(Exception):
    """An offer we can read and do not take (the door answers 488 Not Acceptable Here: RFC 3261
    §21.4.26, "some aspects of the session description ... not acceptable")."""


class NoCodec(NotAcceptable):
    """An offer with no audio codec we take (the door answers 488)."""


@dataclass(frozen=True)
class MediaLine:
    media: str
    port: int
    proto: str
    formats: tuple[str, ...]
    rtpmap: dict[int, str]
    fmtp: dict[int, str]
    direction: str
    #: the stream's own c= address, else the session's
    address: str


@dataclass(frozen=True)
class Offer:
    media: tuple[MediaLine, ...]


@dataclass(frozen=True)
class Chosen:
    """The audio stream of an offer we take: its index among the media lines, where to send RTP,
    the codec and its payload type, telephone-event's payload type (None: not offered), and the
    direction we answer."""

    index: int
    address: str
    port: int
    codec_name: str
    payload_type: int
    event_type: int | None
    direction: str

    @property
    def codec(self) -> CallCodec:
        return CODECS[self.codec_name]


def parse_offer(body: bytes) -> Offer:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise SdpError("the SDP body is not UTF-8") from None
    lines = [ln.strip() for ln in text.replace("\r\n", "\n").split("\n") if ln.strip()]
    if len(lines) > MAX_LINES:
        raise SdpError(f"an SDP body over {MAX_LINES} lines")
    if not lines or not lines[0].startswith("v=0"):
        raise SdpError("the body is not SDP (no v=0 first)")
    session_addr, session_dir = "", "sendrecv"
    media: list[dict[str, object]] = []
    for line in lines:
        kind, eq, value = line.partition("=")
        if not eq or len(kind) != 1:
            raise SdpError("an SDP line is not <type>=<value>")
        cur = media[-1] if media else None
        if kind == "m":
            parts = value.split()
            if len(parts) < 4:
                raise SdpError("an m= line is not <media> <port> <proto> <formats>")
            port_text = parts[1].split("/")[0]
            if not (port_text.isascii() and port_text.isdigit() and len(port_text) <= 5 and int(port_text) <= 65535):
                raise SdpError("an m= line's port is not a port (0 to 65535)")
            if len(parts) - 3 > MAX_FORMATS:
                raise SdpError(f"an m= line with over {MAX_FORMATS} formats")
            media.append({"media": parts[0], "port": int(port_text), "proto": parts[2], "formats": tuple(parts[3:])})
            media[-1].update(rtpmap={}, fmtp={}, direction=None, address=None)
        elif kind == "c":
            parts = value.split()
            if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
                raise SdpError("a c= line is not IN IP4|IP6 <address>")
            given = parts[2].split("/")[0]  # (a multicast address's /ttl: refused by addresses.py)
            if _version(given) not in (None, int(parts[1][2])):
                raise SdpError(f"a c= line's address is not of its type {parts[1]}")
            if cur is None:
                session_addr = given
            else:
                cur["address"] = given
        elif kind == "a":
            name, _, arg = value.partition(":")
            if name in ANSWER_DIRECTION:
                if cur is None:
                    session_dir = name
                else:
                    cur["direction"] = name
            elif name in ("rtpmap", "fmtp") and cur is not None:
                pt, _, rest = arg.partition(" ")
                if pt.isdigit() and len(pt) <= 3:
                    table = cur[name]
                    assert isinstance(table, dict)
                    table[int(pt)] = rest.strip()
    lines_out = []
    for m in media:
        address = m["address"] or session_addr
        lines_out.append(
            MediaLine(
                media=str(m["media"]),
                port=int(m["port"]),  # type: ignore[call-overload]
                proto=str(m["proto"]),
                formats=m["formats"],  # type: ignore[arg-type]
                rtpmap=m["rtpmap"],  # type: ignore[arg-type]
                fmtp=m["fmtp"],  # type: ignore[arg-type]
                direction=str(m["direction"] or session_dir),
                address=str(address),
            )
        )
    return Offer(tuple(lines_out))


def _version(address: str) -> int | None:
    """4 or 6 for an IP literal; None for anything else (a name: ``addresses.py`` refuses it)."""
    try:
        return ipaddress.ip_address(address).version
    except ValueError:
        return None


def _name(line: MediaLine, pt: int) -> str:
    """A payload type's encoding name (its rtpmap, else the static table)."""
    mapped = line.rtpmap.get(pt)
    if mapped is not None:
        name, _, rate = mapped.partition("/")
        return name.upper() + ("" if rate.split("/")[0] in ("8000", "") else "/" + rate)
    return STATIC.get(pt, "")


def choose(offer: Offer, rate: int | None = None) -> Chosen:
    """The audio stream and codec we take, of ``rate`` only when given (a re-INVITE: the call's);
    NoCodec: none; SdpError: the stream has no address."""
    for i, line in enumerate(offer.media):
        if line.media != "audio" or line.port == 0 or line.proto != "RTP/AVP":
            continue
        pts = [int(f) for f in line.formats if f.isdigit() and len(f) <= 3]
        ours = [
            (pt, _name(line, pt))
            for pt in pts
            if _name(line, pt) in CODECS and (rate is None or CODECS[_name(line, pt)].rate == rate)
        ]
        preferred = sorted((c for c in ours if c[1] in PREFERRED), key=lambda c: PREFERRED.index(c[1]))
        codec = (preferred or ours)[0] if ours else None
        if codec is None:
            continue
        if not line.address:
            raise SdpError("the offer's audio has no c= address")
        event = next((pt for pt in pts if _name(line, pt) == "TELEPHONE-EVENT"), None)
        return Chosen(i, line.address, line.port, codec[1], codec[0], event, ANSWER_DIRECTION[line.direction])
    if rate is not None:
        raise NoCodec(f"no audio stream over RTP/AVP offers a codec at the call's {rate} Hz (a call keeps its rate)")
    raise NoCodec("no audio stream over RTP/AVP offers opus/48000/2, G722, PCMU or PCMA")


def answer(offer: Offer, chosen: Chosen, address: str, port: int, session_id: int | None = None) -> bytes:
    """Our answer: the chosen stream at ``address``:``port``, every other media line rejected."""
    sid = session_id if session_id is not None else int(time.time())
    family = "IP6" if ":" in address else "IP4"
    out = [
        "v=0",
        f"o=translate-svc {sid} {sid} IN {family} {address}",
        "s=translate-svc",
        f"c=IN {family} {address}",
        "t=0 0",
    ]
    for i, line in enumerate(offer.media):
        if i != chosen.index:
            out.append(f"m={line.media} 0 {line.proto} {line.formats[0] if line.formats else '0'}")
            continue
        pts = [str(chosen.payload_type)] + ([str(chosen.event_type)] if chosen.event_type is not None else [])
        out.append(f"m=audio {port} RTP/AVP {' '.join(pts)}")
        out.append(f"a=rtpmap:{chosen.payload_type} {RTPMAP[chosen.codec_name]}")
        if chosen.event_type is not None:
            out += [f"a=rtpmap:{chosen.event_type} telephone-event/8000", f"a=fmtp:{chosen.event_type} 0-16"]
        out += ["a=ptime:20", f"a={chosen.direction}"]
    return ("\r\n".join(out) + "\r\n").encode()
