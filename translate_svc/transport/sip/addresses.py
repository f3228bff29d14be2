"""Where a call's RTP may go: the SDP offer's ``c=`` address, checked when the INVITE (or a
re-INVITE) comes, before anything is kept for the call (security findings H1, H3). Pure and thread-safe.

- An IP literal only. RFC 4566 §5.7 lets ``c=`` name a host; a name handed to ``sendto`` is
  resolved by a blocking ``getaddrinfo`` on the event loop at every packet (one INVITE naming a
  host whose DNS never answered froze the whole server for the call's life). A name is answered 488
  and never resolved; nothing of it is echoed.
- Of the family the call's RTP socket has (``server.host``'s: an IPv4 host takes IPv4 only; an
  IPv6 one bound to ``::`` takes both, IPv4 as its mapped form; another IPv6 host IPv6 only).
- Not multicast, broadcast (255.255.255.255), unspecified (0.0.0.0, ``::``: the old RFC 2543 hold
  is answered 488 as well; offer ``a=sendonly``), "this network" (0.0.0.0/8), reserved (240/4) or
  IPv6 link-local (it needs a zone); loopback only when the SIP signalling comes from loopback
  itself (a caller on this host).

What passes is still only where the offer says: no RTP goes there until a packet came from it
(``media.RtpEndpoint``), so a caller cannot point the call's media at a third party.
"""

from __future__ import annotations

import ipaddress
import re

from translate_svc.transport.sip.sdp import NotAcceptable, SdpError

#: what a host name may look like (RFC 1123 §2.1 labels): answered 488, other text 400
_HOST_NAME = re.compile(r"[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})*\.?")
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_RESERVED = ipaddress.ip_network("240.0.0.0/4")


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def same_host(a: str, b: str) -> bool:
    """Whether two addresses as sockets write them are one host (IPv4-mapped IPv6 unwrapped)."""
    x, y = _ip(a), _ip(b)
    return x is not None and x == y


def rtp_address(address: str, *, server_host: str, peer: str) -> str:
    """The offer's ``address`` as the call's RTP socket writes it; NotAcceptable (488) for one we
    do not send to, SdpError (400) for one that is neither an IP literal nor a host name. ``peer``:
    where the INVITE came from."""
    if "%" in address:
        raise NotAcceptable("the offer's c= address has an IPv6 zone: offer a global address")
    ip = _ip(address)
    if ip is None:
        if _HOST_NAME.fullmatch(address) and len(address) <= 253:
            raise NotAcceptable(
                "the offer's c= address is a host name: this server sends RTP to an IP address only and never "
                "resolves a name (offer the address itself)"
            )
        raise SdpError("the offer's c= address is neither an IP address nor a host name")
    why = _refused(ip, peer)
    if why is not None:
        raise NotAcceptable(f"the offer's c= address is {why}: offer the address the caller's RTP comes from")
    v6_socket = ":" in server_host
    if ip.version == 6 and not v6_socket:
        raise NotAcceptable(_FAMILY.format(ip="IPv6", rtp="IPv4"))
    if ip.version == 4 and v6_socket:
        if not ipaddress.ip_address(server_host.split("%", 1)[0]).is_unspecified:
            raise NotAcceptable(_FAMILY.format(ip="IPv4", rtp="IPv6"))
        return f"::ffff:{ip}"  # a socket bound to :: reaches IPv4 at its mapped address
    return str(ip)


_FAMILY = "the offer's c= address is {ip} and this server's RTP is {rtp} (server.host): offer {rtp}"


def _refused(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, peer: str) -> str | None:
    if ip.is_multicast:
        return "multicast"
    if ip.is_unspecified:
        return "unspecified (0.0.0.0 or ::)"
    if isinstance(ip, ipaddress.IPv4Address):
        if ip == ipaddress.IPv4Address("255.255.255.255"):
            return "the broadcast address"
        if ip in _THIS_NETWORK or ip in _RESERVED:
            return "a reserved address"
    elif ip.is_link_local:
        return "IPv6 link-local"
    if ip.is_loopback:
        source = _ip(peer)
        if source is None or not source.is_loopback:
            return "loopback and the call does not come from this host"
    return None
