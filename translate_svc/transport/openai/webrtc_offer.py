"""A WebRTC call's SDP offer screened as text before aiortc parses it (security findings N9, N10;
docs/security.md): what the offer may cost is decided here, before a peer connection, a decoder
thread or a STUN check exists. Its sections: at most one audio section per target named, exactly
one of them sending (the microphone), at most one data channel, nothing else (else
``InvalidInput``, 400 at the door). Its remote ICE candidates: only those at the request's own
address or in ``limits.webrtc_candidate_networks``, ``limits.webrtc_max_candidates`` at most; the
rest are dropped, and so is ``a=end-of-candidates`` then.

A room of its own because it is a different job from answering the offer (``webrtc.py``): pure
text in, text out (no peer connection, no event loop, no web framework; aioice only parses a
candidate line as aiortc will), so its rules can be read and tested without a call.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from aioice import Candidate

from translate_svc.errors import InvalidInput

#: an offer's sending directions (RFC 8866 6.7; none named: sendrecv)
_DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class ScreenedOffer:
    """An offer that may be answered: its SDP with only the remote candidates the server may check."""

    sdp: str
    audio_sections: int
    #: remote ICE candidates kept and dropped
    candidates: int
    dropped: int


def screen_offer(
    sdp: str,
    *,
    max_audio_sections: int,
    peer: str | None,
    networks: Sequence[Network] = (),
    max_candidates: int = 8,
) -> ScreenedOffer:
    """Check an offer's sections and keep only the ICE candidates the server may send checks to,
    before aiortc parses it (each receiving audio section is a decoder thread, each candidate a
    run of STUN checks). Pure; ``InvalidInput`` says what to fix.

    Sections: at most ``max_audio_sections`` audio ones, exactly one of which sends (the
    microphone; the others are ``recvonly`` or ``inactive``), at most one ``application`` (the
    ``oai-events`` channel), nothing else. Candidates: those whose address is ``peer`` (the HTTP
    request's) or in ``networks``, the first ``max_candidates`` of them; the rest are dropped, and
    then so is ``a=end-of-candidates``, so that the client's own checks (a peer-reflexive
    candidate, RFC 8445 7.3.1.3) still connect a client whose listed addresses were dropped
    (mDNS names, private addresses behind a NAT). Lines are split as aiortc splits them."""
    lines = sdp.splitlines()
    peer_ip = _ip(peer) if peer else None
    session_direction = "sendrecv"
    kinds: list[str] = []
    sending = 0
    direction: str | None = None  # of the section being read (None: the session part)
    kept: list[str] = []
    candidates = dropped = 0

    def close_section() -> None:
        nonlocal sending
        if kinds and kinds[-1] == "audio" and (direction or session_direction) in ("sendrecv", "sendonly"):
            sending += 1

    for line in lines:
        if line.startswith("m="):
            close_section()
            kinds.append(line[2:].split(" ", 1)[0])
            direction = None
        elif line[2:] in _DIRECTIONS and line.startswith("a="):
            if kinds:
                direction = line[2:]
            else:
                session_direction = line[2:]
        elif line.startswith("a=candidate:"):
            address = _candidate_ip(line[len("a=candidate:") :])
            usable = address is not None and (address == peer_ip or any(address in net for net in networks))
            if kinds and usable and candidates < max_candidates:
                candidates += 1
            else:
                dropped += 1
                continue
        kept.append(line)
    close_section()
    audio = kinds.count("audio")
    if not audio:
        raise InvalidInput("send the browser's SDP offer (application/sdp) with a microphone track")
    if audio > max_audio_sections:
        raise InvalidInput(
            f"the offer has {audio} audio sections; a call takes at most {max_audio_sections}: the "
            "microphone's, and one more (recvonly) for each further target named in ?languages="
        )
    if sending != 1:
        raise InvalidInput(
            f"the offer sends audio in {sending} sections; exactly one must send (the microphone, "
            "sendrecv), the others receive a further target's speech (recvonly)"
        )
    others = sorted({k for k in kinds if k not in ("audio", "application")})
    if others or kinds.count("application") > 1:
        what = f"a {others[0][:16]!r} section" if others else f"{kinds.count('application')} data sections"
        raise InvalidInput(f"the offer has {what}; a call takes audio sections and one data channel (oai-events) only")
    if dropped:
        kept = [line for line in kept if line != "a=end-of-candidates"]
    return ScreenedOffer("\r\n".join(kept) + "\r\n", audio, candidates, dropped)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address (an IPv4-mapped IPv6 one as IPv4), or None for a name (mDNS ``*.local``)."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _candidate_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address of an ``a=candidate:`` value as aioice parses it (None: not usable)."""
    try:
        return _ip(Candidate.from_sdp(value).host)
    except (ValueError, IndexError):
        return None
