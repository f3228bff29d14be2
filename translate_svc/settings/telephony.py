"""The telephony doors' settings: the phone door (``Settings.phone``: the carriers' WebSockets and
AudioSocket, and what every call does) and the SIP door (``Settings.sip``), whose calls run as
the phone door's.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import BaseModel, Field, model_validator


class PhoneSettings(BaseModel):
    """The phone door (docs/telephony.md): carriers' call audio in, translated speech
    played back into the call."""

    #: the carriers' WebSocket framings (Twilio Media Streams and its cousins, Asterisk
    #: chan_websocket) at /v1/phone/... on ``server.http_port``; off by default
    websocket: bool = False
    #: Asterisk AudioSocket (TCP) on this port; None: off. 0 picks a free one
    audiosocket_port: int | None = Field(None, ge=0, le=65535)
    #: the address AudioSocket listens on: loopback unless set, since AudioSocket carries no
    #: credentials (start-up warns when it listens beyond loopback: firewall the port)
    audiosocket_host: str = Field("127.0.0.1", min_length=1)
    #: the tenant every AudioSocket call belongs to: its caps and audio seconds per minute from the
    #: tokens file apply (a tenant no line names has none of its own; the limits below still hold)
    audiosocket_tenant: str = Field("default", pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]{0,39}$")
    #: AudioSocket calls at once on the node, whoever connects: well below ``limits.max_streams``,
    #: so connections to this credential-less port cannot take every other tenant's streams
    audiosocket_max_calls: int = Field(32, ge=1, le=1_000_000)
    #: an AudioSocket call whose peer sends no audio frame for this long is ended (``input_timeout``;
    #: Asterisk sends one every 20 ms, silence included)
    audiosocket_input_timeout_s: float = Field(5.0, gt=0, le=600)
    #: the languages of a call that names none (an AudioSocket call always: it has no URL)
    source_language: str = "eng"
    target_language: str = "spa"
    #: simultaneous mode (the caller hears words while the speaker still talks); off: segment mode
    simultaneous: bool = True
    #: the speaking rate of a call that names none (its ``speed`` parameter; an AudioSocket call
    #: always): 1 is the model's own, 1.25 speaks in 1/1.25 of the time (types.check_speed)
    speed: float = Field(1.0, ge=0.5, le=2.0)
    #: the Twilio account's auth token: every Twilio connection must then carry a valid
    #: ``X-Twilio-Signature`` (HMAC-SHA1 of the URL it was given); None: not checked
    twilio_auth_token: str | None = Field(None, min_length=1)
    #: the rooms a call Twilio signed may speak into (``room`` in its TwiML's ``<Parameter>``s):
    #: shell-style patterns, as a token's ``publish=`` (docs/rooms.md); empty: none
    twilio_rooms: list[str] = ["*"]
    #: the public base URL the carrier dials (``wss://phone.example.com``), as Twilio signs it
    #: behind a proxy; None: the URL as the request came
    public_url: str | None = None
    #: accept the token as ``?token=`` in the URL, for carriers that cannot set headers (the
    #: token then sits in the carrier's configuration and in proxies' logs: docs/telephony.md)
    query_tokens: bool = True
    #: unplayed translated speech a carrier may hold before it is cleared (Twilio ``clear``,
    #: Asterisk ``FLUSH_MEDIA``), counted; None: kept, however long
    max_backlog_s: float | None = Field(None, gt=0, le=600)
    #: how long a call's end (a drain, a limit) waits for its translated tail to be played
    tail_s: float = Field(10.0, ge=0, le=120)
    #: speech the door holds for a carrier that stopped taking it (Asterisk's XOFF, a full
    #: socket) before the call ends
    max_held_s: float = Field(30.0, gt=0, le=600)
    #: the largest message (WebSocket) or frame (AudioSocket: 65,535 by its 16-bit length) read
    max_message_bytes: int = Field(65_536, ge=1024, le=1024 * 1024)
    #: two-party calls: what a leg hears of the other leg's own voice: kept "under" its
    #: translation at ``original_gain`` (the default: a three-way call with an interpreter
    #: sounds so, and the listener hears when the other side speaks), or "removed" (the
    #: translation alone)
    original_voice: Literal["removed", "under"] = "under"
    #: the original's gain under the translation (0.25: -12 dB)
    original_gain: float = Field(0.25, gt=0, le=1)
    #: two-party calls: a leg whose other leg has not joined within this is ended, saying so
    #: (``partner_timeout``), rather than left open hearing nothing
    partner_timeout_s: float = Field(60.0, gt=0, le=3600)


class SipSettings(BaseModel):
    """The SIP door (docs/telephony.md): SIP trunks, PBXs and phones call in over UDP and
    TCP on ``port`` of ``server.host``, G.711 RTP on ``rtp_ports``; calls run as the phone door's
    (``phone.*``: languages, simultaneous, tail, held speech)."""

    #: SIP over UDP and TCP on this port; None: off. 0 picks a free one (the same for both)
    port: int | None = Field(None, ge=0, le=65535)
    #: SIP over TLS (RFC 3261 §26.2, ``sips:``/``transport=tls``) on this port of its own, with the
    #: server's certificate (``server.tls_cert_file``/``tls_key_file``, and its mTLS when
    #: ``server.tls_client_ca_file`` is set); None: off. 0 picks a free one
    tls_port: int | None = Field(None, ge=0, le=65535)
    #: the calls' RTP ports, an inclusive range [low, high] (an even port per call); None: any free port
    rtp_ports: tuple[int, int] | None = None
    #: the address put in our SDP and Contact (what the caller sends media and requests to); None:
    #: ``server.host`` (set it when that is 0.0.0.0 or behind NAT)
    public_address: str | None = None
    #: who may call: source addresses in these networks (JSON list in the environment); their calls
    #: are tenant ``tenant``'s, whose caps and audio quota in the tokens file apply
    allowed_cidrs: list[str] = ["127.0.0.0/8", "::1/128"]
    tenant: str = Field("default", pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]{0,39}$")
    #: a request from elsewhere gets no answer at all (scanners learn nothing); off: 403
    drop_refused: bool = False
    #: INVITEs a source address may send, per second and in a burst, before any dialog state is
    #: kept; beyond, dropped (a flood gets nothing)
    invites_per_s: float = Field(5.0, gt=0, le=10_000)
    invite_burst: int = Field(20, ge=1, le=100_000)
    #: SIP calls at once on the node, whoever calls (beyond: 486 Busy Here with Retry-After)
    max_calls: int = Field(64, ge=1, le=1_000_000)
    #: a call whose RTP stopped (or never came) for this long is ended with a BYE
    media_timeout_s: float = Field(30.0, gt=0, le=3600)
    #: a 200 OK never ACKed is retransmitted this long (RFC 3261 Timer H, 64*T1), then the call ends
    ack_timeout_s: float = Field(32.0, gt=0, le=300)
    #: how long a call rings (180) before it is answered (a PBX's caller may CANCEL meanwhile)
    ring_s: float = Field(0.0, ge=0, le=60)
    #: the largest SIP message read (a UDP datagram; a TCP message's head and body)
    max_message_bytes: int = Field(8192, ge=1024, le=65_535)
    #: SIP over TCP and TLS: connections open at once, both ports together (beyond, the newcomer is
    #: closed at accept); never more than its share, with the HTTP port's, of half this process's
    #: file descriptors (``ulimit -n``: ``transport/descriptors.py``)
    max_tcp_connections: int = Field(1024, ge=1, le=1_000_000)
    #: TCP and TLS connections open at once from one source address (IPv6: one /64); beyond, the
    #: newcomer is closed at accept
    tcp_connections_per_source: int = Field(16, ge=1, le=100_000)
    #: a TCP or TLS connection that carries no call is closed when no whole message has come on it
    #: for this long (a keep-alive CRLF does not count); one that carries a call, when the call ends
    #: and then this long passes
    tcp_idle_s: float = Field(30.0, gt=0, le=3600)
    #: the share of the TCP and TLS connection cap that sources outside ``allowed_cidrs`` (digest
    #: callers, when the tokens file names SIP users) may hold together, rounded down: the rest
    #: stays for the allowed networks' trunks (security finding J6)
    tcp_strangers_share: float = Field(0.5, ge=0, le=1)
    #: a TCP or TLS connection from outside ``allowed_cidrs`` on which no INVITE's digest answer
    #: was right within this long of its accept is closed (a refused request never moves it)
    tcp_unauthenticated_s: float = Field(10.0, gt=0, le=300)
    #: DTMF digits (RFC 4733) that switch a call's target language, digit -> language code (JSON
    #: object in the environment: ``{"1": "spa", "2": "fra"}``); segments after the digit use it
    dtmf_targets: dict[str, str] = {}

    @model_validator(mode="after")
    def _check(self) -> SipSettings:
        if self.rtp_ports is not None and not 1024 <= self.rtp_ports[0] < self.rtp_ports[1] <= 65535:
            raise ValueError("sip.rtp_ports is [low, high] with 1024 <= low < high <= 65535")
        for digit, language in self.dtmf_targets.items():
            if len(digit) != 1 or digit not in "0123456789*#ABCD" or not language.isalpha() or len(language) > 16:
                raise ValueError(
                    f"sip.dtmf_targets: {digit[:4]!r}: {language[:20]!r} is not a DTMF digit (0-9, *, #, A-D) "
                    "and a language code"
                )
        for cidr in self.allowed_cidrs:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"sip.allowed_cidrs: {cidr[:64]!r} is not a network (10.0.0.0/8, ::1/128)") from None
        return self
