"""The SIP door (``serve --sip-port S``, a ``Door``): SIP over UDP and TCP on port S of
``server.host``, and over TLS on ``sip.tls_port`` with the server's certificate (the same messages
as over TCP); each admitted INVITE is a ``dialog.SipCall``.

What happens to a message, in order, before any state is kept for it (DESIGN pitfall 35): a
source outside ``sip.allowed_cidrs`` gets 403 (or nothing, ``sip.drop_refused``) unless the
tokens file names SIP users (then its INVITE is challenged: ``_authenticated``; a 401 or 403 to
such a source is sent once, never retransmitted: issue 68, H10); a message we cannot read
(``message.parse``: garbage, truncated, oversized, a control character in a header) is logged at a
bounded rate (``RefusalLog``) and answered 400 when it is a request we can answer, else dropped;
an INVITE past its source's rate (``sip.invites_per_s``) is dropped. Then a new INVITE: 503 +
``Retry-After`` while draining; what it asks for (``invite.check_invite``: its offer, where its
media goes, its call parameters and room: 488, 400 or 403); only then 100 Trying, and 486 +
``Retry-After`` over ``sip.max_calls`` or the tenant's or node's stream caps (503 +
``Retry-After`` when the server cannot take streams now); 503 + ``Retry-After`` with no free RTP
port. A retransmitted request gets the answer it got (``transactions.Kept``); ACK, BYE, CANCEL
and re-INVITE go to their dialog, found by its Call-ID and both tags (RFC 3261 §12: another
caller's INVITE that reuses a live Call-ID is a dialog of its own; issue 68, H8), 481 when there
is none; OPTIONS is answered 200; other methods 405. TCP and TLS connections are bounded at
accept (``connections.py``), and a refused request does not keep one open (``received`` says
which messages count). On drain the door refuses new INVITEs, and each live call ends through the
stream core, which sends its BYE. Event loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
from typing import cast

from translate_svc.errors import NotReady, ServiceError
from translate_svc.session.manager import Admission, SessionManager
from translate_svc.session.tenants.tenant import DEFAULT_TENANT, RoomRights, Tenant
from translate_svc.settings import PhoneSettings, SipSettings
from translate_svc.transport.calls import call_info
from translate_svc.transport.descriptors import connection_caps
from translate_svc.transport.door import DoorContext, address
from translate_svc.transport.http.caller import Caller
from translate_svc.transport.http.site import tls_context
from translate_svc.transport.refusal_log import RefusalLog
from translate_svc.transport.sip.addresses import rtp_address
from translate_svc.transport.sip.connections import Connections
from translate_svc.transport.sip.dialog import Answer, Flow, SipCall
from translate_svc.transport.sip.digest import DigestChallenger, Verdict, parse_authorization
from translate_svc.transport.sip.guard import AllowList, InviteRate
from translate_svc.transport.sip.invite import Refusal, Taken, check_invite
from translate_svc.transport.sip.media import PortsExhausted, open_endpoint
from translate_svc.transport.sip.message import (
    AGENT,
    SipMessage,
    SipParseError,
    new_tag,
    parse,
    response,
    uri_host_port,
)
from translate_svc.transport.sip.transactions import KEEP_S, Kept, Retransmit
from translate_svc.transport.telephony.pacing import SlotClock
from translate_svc.transport.telephony.pairs import Pairs
from translate_svc.transport.tokens.file import Permission

logger = logging.getLogger(__name__)

#: the node's counter of SIP calls (``sip.max_calls``)
CALLS_COUNTER = "sip_calls"
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS"
#: the Retry-After (seconds) of a refusal at capacity
RETRY_AFTER_S = 5
#: non-2xx final responses sent again until their ACK, at most (the oldest given up first)
MAX_FINALS = 4096


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
        self.pairs = Pairs(ctx.cluster, self.phone.partner_timeout_s)
        self.clock = SlotClock()
        self._allow = AllowList(self.sip.allowed_cidrs)
        self._rate = InviteRate(self.sip.invites_per_s, self.sip.invite_burst)
        self._refusals = RefusalLog()
        self._digest = DigestChallenger()
        #: INVITE transactions by branch: their last response (sent again for a retransmission)
        self._invites: Kept[SipMessage] = Kept(KEEP_S + self.sip.ack_timeout_s)
        #: a non-2xx final response's retransmission until its ACK, by branch
        self._finals: dict[str, Retransmit] = {}
        #: other requests' responses, by (branch, method)
        self._answered: Kept[SipMessage] = Kept()
        #: the calls by dialog (RFC 3261 §12: Call-ID, our tag, the caller's), and by the INVITE's
        #: branch (for CANCEL)
        self.calls: dict[tuple[str, str, str], SipCall] = {}
        self._by_branch: dict[str, SipCall] = {}
        self._tasks: set[asyncio.Task[None]] = set()
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
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await asyncio.gather(*list(self._tasks), return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for r in self._finals.values():
            r.stop()
        for server in (self._tcp, self._tls):
            if server is not None:
                server.close()
        if self.connections is not None:
            self.connections.close()
        if self._udp is not None:
            self._udp.close()

    async def close(self) -> None:
        """Nothing stays open to the end."""

    def tenant(self) -> Tenant:
        name = self.sip.tenant
        found = self._tokens.tenant(name) if self._tokens is not None else None
        return found or (DEFAULT_TENANT if name == DEFAULT_TENANT.name else Tenant(name))

    # -- messages in -----------------------------------------------------------------------------

    def _count(self, why: str) -> None:
        self.counts[why] = self.counts.get(why, 0) + 1

    def received(self, data: bytes, flow: Flow) -> bool:
        """One message in; whether it counts as the flow's sign of life (a TCP connection's idle
        time starts again): not a keep-alive, nor one refused (unreadable, from a source refused,
        over the INVITE rate, an INVITE whose caller is not known, another request answered 4xx or
        worse; issue 87, J6: refused requests held a connection for good)."""
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
        if msg.method == "ACK" and msg.branch() in self._finals:
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

    def _authenticated(self, invite: SipMessage, flow: Flow, now: float) -> Caller | None:
        """The caller of an INVITE from outside ``sip.allowed_cidrs``: a SIP user of the tokens file
        whose digest answer is right (and who may ``stream``). None: it was sent 401 with a
        challenge (no answer yet, a nonce not good any more or not for this source, an answer used
        before) or 403 (a wrong answer, an unknown user), each once: to a source not yet
        authenticated nothing is retransmitted (issue 68, H10)."""
        header = invite.get("authorization") or invite.get("proxy-authorization")
        params = parse_authorization(header) if header else None
        source = flow.peer[0]
        verdict = Verdict.STALE
        grant = None
        if params is not None and params.get("nonce"):
            grant = self._tokens.sip_user(params.get("username", "")) if self._tokens is not None else None
            ha1 = grant.sip_ha1 if grant is not None else None
            verdict = Verdict.WRONG
            if ha1 is not None:
                verdict = self._digest.check(params, ha1, "INVITE", invite.uri, source)
        if verdict is Verdict.STALE:
            stale = params is not None and bool(params.get("nonce"))
            extra = [("www-authenticate", self._digest.challenge(source, stale=stale))]
            resp = response(invite, 401, "Unauthorized", to_tag=new_tag(), extra=extra)
            self._final(invite, flow, resp, now, once=True)
            return None
        if verdict is Verdict.WRONG or grant is None:
            why = "the digest answer does not match a SIP user of the tokens file and this request"
            self._refuse(invite, flow, 403, "Forbidden", why, now, once=True)
            return None
        if Permission.STREAM not in grant.permissions:
            why = "this SIP user's token has no stream permission"
            self._refuse(invite, flow, 403, "Forbidden", why, now, once=True)
            return None
        return Caller(grant.tenant, grant.rooms)

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
            kept = self._invites.get(msg.branch(), now)
            if kept is not None:  # a retransmission: the answer it got
                flow.send(kept)
                return kept.status not in (401, 403)
            if not self._rate.take(flow.peer[0], now):
                self._count("rate_dropped")
                self._refusals("SIP INVITE", flow.peer[0], "over sip.invites_per_s (dropped)")
                return False
            return self._invite(msg, flow, now, allowed)
        key = (msg.branch(), method)
        kept = self._answered.get(key, now)
        if kept is None:
            kept = self._other(msg)
            self._answered.put(key, kept, now)
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
        final = self._finals.pop(msg.branch(), None)
        if final is not None:  # the ACK of a non-2xx final response (§17.2.1)
            final.stop()
            return
        call = self._dialog(msg)
        if call is not None:
            call.acked(msg)

    def _reinvite(self, msg: SipMessage, flow: Flow, now: float) -> None:
        kept = self._invites.get(msg.branch(), now)
        if kept is not None:
            flow.send(kept)
            return
        call = self._dialog(msg)
        if call is None:
            self._final(msg, flow, response(msg, 481, "Call/Transaction Does Not Exist"), now)
            return
        resp = call.reinvite(msg)
        self._invites.put(msg.branch(), resp, now)
        if resp.status >= 300:
            self._final(msg, flow, resp, now)

    # -- a new INVITE ----------------------------------------------------------------------------

    def _final(self, invite: SipMessage, flow: Flow, resp: SipMessage, now: float, *, once: bool = False) -> None:
        """A final response to an INVITE: kept for its retransmissions, and over UDP a non-2xx one
        sent again until its ACK (Timer G, given up at Timer H); ``once``: never sent again but for
        a retransmitted INVITE (to a source not authenticated: a forged one would make us send a
        stranger many times what it sent, issue 68, H10; its ACK is still taken)."""
        branch = invite.branch()
        self._invites.put(branch, resp, now)
        if resp.status >= 300:
            old = self._finals.pop(branch, None)
            if old is not None:
                old.stop()
            retransmit = Retransmit(
                lambda: flow.send(resp),
                repeat=not flow.reliable and not once,
                timeout_s=self.sip.ack_timeout_s,
                on_timeout=lambda: self._forget_final(branch),
            )
            self._finals[branch] = retransmit
            while len(self._finals) > MAX_FINALS:
                self._finals.pop(next(iter(self._finals))).stop()
            self._count(f"answered_{resp.status}")
        else:
            flow.send(resp)

    def _forget_final(self, branch: str) -> None:
        self._finals.pop(branch, None)

    def _refuse(
        self,
        invite: SipMessage,
        flow: Flow,
        status: int,
        reason: str,
        why: str,
        now: float,
        *,
        retry: bool = False,
        once: bool = False,
    ) -> None:
        extra = [("warning", f'399 {AGENT} "{why[:200].replace(chr(34), chr(39))}"')]
        if retry:
            extra.append(("retry-after", str(RETRY_AFTER_S)))
        self._refusals("SIP INVITE", flow.peer[0], f"{status} {reason}: {why}")  # logged at a bounded rate
        resp = response(invite, status, reason, to_tag=new_tag(), extra=extra)
        self._final(invite, flow, resp, now, once=once)

    def _invite(self, invite: SipMessage, flow: Flow, now: float, allowed: bool) -> bool:
        """A new INVITE; False: its caller is not known (challenged or refused)."""
        if allowed:
            caller: Caller | None = Caller(self.tenant(), RoomRights(publish=("*",)))  # an allowed network's trunk
        else:
            caller = self._authenticated(invite, flow, now)
        if caller is None:
            return False
        flow.authenticated = True
        if self.draining or self._m.draining is not None:
            self._refuse(
                invite, flow, 503, "Service Unavailable", "this server is shutting down: call another", now, retry=True
            )
            return True
        taken = check_invite(
            invite,
            phone=self.phone,
            rights=caller.rooms,
            server_host=self.settings.server.host,
            peer=flow.peer[0],
            vad=self._m.vad_defaults,
        )
        if isinstance(taken, Refusal):
            self._refuse(invite, flow, taken.status, taken.reason, taken.why, now)
            return True
        trying = response(invite, 100, "Trying")
        self._invites.put(invite.branch(), trying, now)
        flow.send(trying)
        task = asyncio.get_running_loop().create_task(self._admit(invite, flow, taken, caller), name="sip-call")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _admit(self, invite: SipMessage, flow: Flow, taken: Taken, caller: Caller) -> None:
        """The call's slots (the door's ``sip.max_calls``, then the stream's: the node's and its
        tenant's, cluster-wide with Redis) before any media, then the call; a refusal is the final
        answer to the INVITE (its retransmissions meanwhile get the 100 Trying again)."""
        counters = self._m.counters
        try:
            held = await counters.acquire([(CALLS_COUNTER, self.sip.max_calls)])
        except ServiceError as e:  # the node's store cannot answer
            self._refuse(invite, flow, 503, "Service Unavailable", str(e), self._now(), retry=True)
            return
        if isinstance(held, str):
            why = f"at sip.max_calls ({self.sip.max_calls})"
            self._refuse(invite, flow, 486, "Busy Here", why, self._now(), retry=True)
            return
        try:
            try:
                admission = await self._m.admit_stream(caller.tenant)
            except ServiceError as e:
                if isinstance(e, NotReady):
                    self._refuse(invite, flow, 503, "Service Unavailable", str(e), self._now(), retry=True)
                else:
                    self._refuse(invite, flow, 486, "Busy Here", str(e), self._now(), retry=True)
                return
            await self._admitted(invite, flow, taken, admission, caller)
        finally:
            counters.release(held)

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    def _our_address(self, invite: SipMessage, flow: Flow) -> str:
        if self.sip.public_address:
            return self.sip.public_address
        for candidate in (self.settings.server.host, flow.local[0], _uri_host(invite.uri)):
            with contextlib.suppress(ValueError):  # the first real address: a TCP socket's, else the dialled one
                if not ipaddress.ip_address(candidate).is_unspecified:
                    return candidate
        logger.warning("SIP: no address of ours to put in the SDP: set sip.public_address")
        return self.settings.server.host

    async def _admitted(
        self, invite: SipMessage, flow: Flow, taken: Taken, admission: Admission, caller: Caller
    ) -> None:
        now = asyncio.get_running_loop().time()
        ours = self._our_address(invite, flow)
        chosen = taken.chosen
        try:
            endpoint, queue = await open_endpoint(
                self.settings.server.host, self.sip.rtp_ports, (chosen.address, chosen.port), flow.peer[0]
            )
        except PortsExhausted as e:
            admission.release()
            self._refuse(invite, flow, 503, "Service Unavailable", str(e), now, retry=True)
            return
        port = self.tls_port if flow.transport == "TLS" else self.port
        answer = Answer(taken.offer, chosen, taken.params, ours, port)
        info = call_info(None, "sip", f"{flow.peer[0]}:{flow.peer[1]}")
        local_tag = new_tag()
        call = SipCall(
            invite,
            flow,
            answer,
            manager=self._m,
            phone=self.phone,
            sip=self.sip,
            caller=caller,
            info=info,
            admission=admission,
            endpoint=endpoint,
            queue=queue,
            clock=self.clock,
            pairs=self.pairs,
            local_tag=local_tag,
            send_final=lambda resp: self._final(invite, flow, resp, asyncio.get_running_loop().time()),
            media_address=functools.partial(rtp_address, server_host=self.settings.server.host, peer=flow.peer[0]),
        )
        key = (invite.call_id, local_tag, call.remote_tag)
        self.calls[key] = call
        self._by_branch[invite.branch()] = call
        try:
            await call.run()
        finally:
            self.calls.pop(key, None)
            self._by_branch.pop(invite.branch(), None)


def _uri_host(uri: str) -> str:
    where = uri_host_port(uri)
    return where[0] if where is not None else ""
