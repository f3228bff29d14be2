"""The SIP door (``serve --sip-port S``, a ``Door``): SIP over UDP and TCP on port S of
``server.host``, and over TLS on ``sip.tls_port`` with the server's certificate (the same messages
as over TCP); each admitted INVITE is a ``dialog.SipCall``.

What happens to a message, in order, before any state is kept for it (DESIGN pitfall 35): a
source outside ``sip.allowed_cidrs`` gets 403 (or nothing, ``sip.drop_refused``) unless the
tokens file names SIP users (then its INVITE is challenged: ``admission.py``; a 401 or 403 to
such a source is sent once, never retransmitted: security finding H10); a message we cannot read
(``message.parse``: garbage, truncated, oversized, a control character in a header) is logged at a
bounded rate (``RefusalLog``) and answered 400 when it is a request we can answer, else dropped;
an INVITE past its source's rate (``sip.invites_per_s``) is dropped. Then a new INVITE goes to
its admission (``admission.py``: its caller, 503 while draining, what it asks for, 100 Trying, its
slots, its RTP port, the call). A retransmitted request gets the answer it got (``answers.py``,
the door's server transactions); ACK, BYE, CANCEL and re-INVITE go to their dialog, found by its
Call-ID and both tags (RFC 3261 §12: another caller's INVITE that reuses a live Call-ID is a
dialog of its own; security finding H8), 481 when there is none; OPTIONS is answered 200; other methods
405. TCP and TLS connections are bounded at accept (``connections.py``), and a refused request
does not keep one open (``received`` says which messages count). On drain the door refuses new
INVITEs, and each live call ends through the stream core, which sends its BYE. Event loop only.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import cast

from translate_svc.session.manager import SessionManager
from translate_svc.settings import PhoneSettings, SipSettings
from translate_svc.transport.descriptors import connection_caps
from translate_svc.transport.door import DoorContext, address
from translate_svc.transport.http.site import tls_context
from translate_svc.transport.refusal_log import RefusalLog
from translate_svc.transport.sip.admission import CallAdmission
from translate_svc.transport.sip.answers import Answers
from translate_svc.transport.sip.connections import Connections
from translate_svc.transport.sip.dialog import Flow, SipCall
from translate_svc.transport.sip.guard import AllowList, InviteRate
from translate_svc.transport.sip.message import AGENT, SipMessage, SipParseError, new_tag, parse, response

logger = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS"


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, door: SipDoor) -> None:
        self._door = door
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # (the loop's own class: no isinstance)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        transport = self.transport
        assert transport is not None
        peer = (addr[0], addr[1])
        local = transport.get_extra_info("sockname")
        flow = Flow(lambda b: transport.sendto(b, peer), peer, "UDP", (local[0], local[1]))
        self._door.received(data, flow)

    def error_received(self, exc: Exception) -> None:
        """(ICMP errors for what we sent: the timers end what no longer answers.)"""


class SipDoor:
    """The SIP port (UDP and TCP). Event loop only."""

    def __init__(self, ctx: DoorContext) -> None:
        self.settings = ctx.settings
        self.sip: SipSettings = ctx.settings.sip
        self.phone: PhoneSettings = ctx.settings.phone
        self._m: SessionManager = ctx.sessions
        self._tokens = ctx.tokens
        self._reuse_port = ctx.reuse_port
        self._allow = AllowList(self.sip.allowed_cidrs)
        self._rate = InviteRate(self.sip.invites_per_s, self.sip.invite_burst)
        self._refusals = RefusalLog()
        #: what each request was answered, and the non-2xx finals sent again until their ACK
        self._answers = Answers(self.sip, self._refusals, self._count)
        #: the calls by dialog (RFC 3261 §12: Call-ID, our tag, the caller's), and by the INVITE's
        #: branch (for CANCEL); a new INVITE's admission puts each in while it lives
        self.calls: dict[tuple[str, str, str], SipCall] = {}
        self._by_branch: dict[str, SipCall] = {}
        self._admission = CallAdmission(
            ctx, self._answers, calls=self.calls, by_branch=self._by_branch, port=self._port_of
        )
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tls: asyncio.Server | None = None
        #: the TCP and TLS connections (``start``)
        self.connections: Connections | None = None
        self.draining = False
        self.port = 0
        self.tls_port = 0
        #: what was refused or dropped, by why (for tests and the access log's neighbours)
        self.counts: dict[str, int] = {}

    # -- the Door --------------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        host = self.settings.server.host
        s = self.settings.server
        tls = None
        if self.sip.tls_port is not None:
            if s.tls_cert_file is None or s.tls_key_file is None:
                raise ValueError(
                    "sip.tls_port needs the server's certificate: set server.tls_cert_file and tls_key_file"
                )
            tls = tls_context(s.tls_cert_file, s.tls_key_file, s.tls_client_ca_file)
        cap = connection_caps(self.settings)["sip"]  # its share of the file descriptors, with the HTTP port's
        self.connections = Connections(
            self.sip, cap, self._allow, self._digest_on, self.received, self._refusals, self._count, tls
        )
        want = self.sip.port or 0
        for _ in range(20):  # port 0: UDP picks one, TCP must get the same
            udp, _proto = await loop.create_datagram_endpoint(
                lambda: _Udp(self), local_addr=(host, want), reuse_port=self._reuse_port or None
            )
            port = udp.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(
                    functools.partial(self.connections.serve, transport="TCP"),
                    host,
                    port,
                    reuse_port=self._reuse_port or None,
                    limit=self.sip.max_message_bytes,
                )
            except OSError:
                udp.close()
                if want:
                    raise
                continue
            self._udp, self.port = udp, port
            break
        else:
            raise OSError("no port free for SIP over both UDP and TCP")
        if self.sip.tls_port is not None:  # SIP over TLS (RFC 3261 §26.2): accepted plain, upgraded when let in
            self._tls = await asyncio.start_server(
                functools.partial(self.connections.serve, transport="TLS"),
                host,
                self.sip.tls_port,
                reuse_port=self._reuse_port or None,
                limit=self.sip.max_message_bytes,
            )
            self.tls_port = int(self._tls.sockets[0].getsockname()[1])

    def describe(self) -> list[str]:
        where = address(self.settings.server.host, self.port)
        tls = f" and tls://{address(self.settings.server.host, self.tls_port)}" if self._tls is not None else ""
        return [
            f"SIP on udp+tcp://{where}{tls} (callers from {', '.join(self.sip.allowed_cidrs)} as tenant "
            f"{self.sip.tenant!r}, at most {self.sip.max_calls} calls)"
        ]

    def ports(self) -> dict[str, int]:
        ports = {"sip_port": self.port}
        if self._tls is not None:
            ports["sip_tls_port"] = self.tls_port
        return ports

    async def set_serving(self, serving: bool) -> None:
        """No health of its own."""

    async def drain(self) -> None:
        """New INVITEs get 503 + Retry-After; live calls drain through the stream core (each sends
        its BYE once its tail is played)."""
        self.draining = True

    async def stop(self, grace: float) -> None:
        await self._admission.stop(grace)
        self._answers.stop()
        for server in (self._tcp, self._tls):
            if server is not None:
                server.close()
        if self.connections is not None:
            self.connections.close()
        if self._udp is not None:
            self._udp.close()

    async def close(self) -> None:
        """Nothing stays open to the end."""

    def _port_of(self, transport: str) -> int:
        """The port a call's SDP names for its transport (TLS: ``sip.tls_port``'s)."""
        return self.tls_port if transport == "TLS" else self.port

    # -- messages in -----------------------------------------------------------------------------

    def _count(self, why: str) -> None:
        self.counts[why] = self.counts.get(why, 0) + 1

    def received(self, data: bytes, flow: Flow) -> bool:
        """One message in; whether it counts as the flow's sign of life (a TCP connection's idle
        time starts again): not a keep-alive, nor one refused (unreadable, from a source refused,
        over the INVITE rate, an INVITE whose caller is not known, another request answered 4xx or
        worse; security finding J6: refused requests held a connection for good)."""
        if not data.strip(b"\r\n"):
            return False  # a keep-alive (RFC 5626 §3.5.1)
        allowed = self._allow.allows(flow.peer[0])
        digest = self._digest_on()
        if not allowed and self.sip.drop_refused and not digest:
            self._count("dropped_source")
            self._refusals("SIP message", flow.peer[0], "not in sip.allowed_cidrs (dropped)")
            return False
        try:
            msg = parse(data, self.sip.max_message_bytes, stream=flow.reliable)
        except SipParseError as e:
            self._count("unreadable")
            self._refusals("SIP message", flow.peer[0], e.reason)
            if e.request is not None and allowed:
                reason = "Message Too Large" if e.status == 513 else "Bad Request"
                flow.send(response(e.request, e.status, reason, extra=[("warning", f'399 {AGENT} "{e.reason}"')]))
            return False
        if not msg.is_request:
            return self._response(msg)
        if not allowed and not self._may_try(msg, digest):
            self._count("refused_source")
            self._refusals("SIP request", flow.peer[0], "not in sip.allowed_cidrs")
            if msg.method != "ACK" and not self.sip.drop_refused:
                flow.send(response(msg, 403, "Forbidden", extra=[("warning", f'399 {AGENT} "not an allowed address"')]))
            return False
        try:
            return self._request(msg, flow, allowed)
        except Exception:  # one message's failure must not stop the port
            logger.exception("a SIP request failed")
            if msg.method != "ACK":
                flow.send(response(msg, 500, "Server Internal Error"))
            return False

    def _digest_on(self) -> bool:
        """Callers outside ``sip.allowed_cidrs`` are challenged: the tokens file names SIP users."""
        return self._tokens is not None and self._tokens.has_sip_users

    def _may_try(self, msg: SipMessage, digest: bool) -> bool:
        """Whether a request from outside ``sip.allowed_cidrs`` goes on: a new INVITE when callers
        may answer a digest challenge, and what belongs to a dialog or transaction it opened."""
        if msg.method == "INVITE" and not msg.to_tag():
            return digest
        if msg.method == "ACK" and self._answers.awaits_ack(msg.branch()):
            return True
        if msg.method == "CANCEL":
            return msg.branch() in self._by_branch
        return self._dialog(msg) is not None

    def _dialog(self, msg: SipMessage) -> SipCall | None:
        """The call a request within a dialog belongs to (its Call-ID, To tag and From tag; for a
        response to our own request, the other way round)."""
        if msg.is_request:
            return self.calls.get((msg.call_id, msg.to_tag(), msg.from_tag()))
        return self.calls.get((msg.call_id, msg.from_tag(), msg.to_tag()))

    def _response(self, msg: SipMessage) -> bool:
        call = self._dialog(msg)
        if call is not None:
            call.bye_answered(msg)
        return call is not None

    def _request(self, msg: SipMessage, flow: Flow, allowed: bool) -> bool:
        """A request let past the source check; whether it was taken (not refused)."""
        method = msg.method
        now = asyncio.get_running_loop().time()
        if method == "ACK":
            self._ack(msg)
            return True
        if method == "INVITE":
            if msg.to_tag():
                self._reinvite(msg, flow, now)
                return True
            kept = self._answers.of_invite(msg.branch(), now)
            if kept is not None:  # a retransmission: the answer it got
                flow.send(kept)
                return kept.status not in (401, 403)
            if not self._rate.take(flow.peer[0], now):
                self._count("rate_dropped")
                self._refusals("SIP INVITE", flow.peer[0], "over sip.invites_per_s (dropped)")
                return False
            return self._admission.take(msg, flow, now, allowed, draining=self.draining)
        kept = self._answers.of_request((msg.branch(), method), now, lambda: self._other(msg))
        flow.send(kept)
        return kept.status < 400

    def _other(self, msg: SipMessage) -> SipMessage:
        if msg.method == "OPTIONS":
            extra = [("allow", ALLOW), ("accept", "application/sdp"), ("supported", "")]
            return response(msg, 200, "OK", to_tag=new_tag(), extra=extra[:2])
        if msg.method == "BYE":
            call = self._dialog(msg)
            if call is None:
                return response(msg, 481, "Call/Transaction Does Not Exist")
            call.bye()
            return response(msg, 200, "OK")
        if msg.method == "CANCEL":
            call = self._by_branch.get(msg.branch())
            if call is None or call.call_id != msg.call_id:
                return response(msg, 481, "Call/Transaction Does Not Exist")
            call.cancel()
            return response(msg, 200, "OK", to_tag=call.local_tag)
        return response(msg, 405, "Method Not Allowed", extra=[("allow", ALLOW)])

    def _ack(self, msg: SipMessage) -> None:
        if self._answers.acked(msg.branch()):  # the ACK of a non-2xx final response (§17.2.1)
            return
        call = self._dialog(msg)
        if call is not None:
            call.acked(msg)

    def _reinvite(self, msg: SipMessage, flow: Flow, now: float) -> None:
        kept = self._answers.of_invite(msg.branch(), now)
        if kept is not None:
            flow.send(kept)
            return
        call = self._dialog(msg)
        if call is None:
            self._answers.final(msg, flow, response(msg, 481, "Call/Transaction Does Not Exist"), now)
            return
        resp = call.reinvite(msg)
        self._answers.keep(msg.branch(), resp, now)
        if resp.status >= 300:
            self._answers.final(msg, flow, resp, now)
