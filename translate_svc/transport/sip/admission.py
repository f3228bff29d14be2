"""A new INVITE's way to a call, once the door has let its message in (``door.py``: its source,
its reading, its rate, not a retransmission): its caller (a trunk on an allowed network, else a SIP
user of the tokens file whose digest answer is right: challenged 401 or refused 403, each once,
security finding H10); 503 + ``Retry-After`` while draining; what it asks for (``invite.check_invite``:
its offer, where its media goes, its call parameters and room: 488, 400 or 403); only then 100
Trying; then its slots before any media (``sip.max_calls``, then the node's and its tenant's stream
caps, cluster-wide with Redis: 486 + ``Retry-After``, 503 + ``Retry-After`` when the server cannot
take streams now), an RTP port (503 + ``Retry-After`` when none is free), and the
``dialog.SipCall`` it becomes, in the door's tables of calls while it lives. Every refusal is the
INVITE's final answer (``answers.py``); its retransmissions meanwhile get the 100 Trying again.

A room of its own because it is a job of its own: the door takes messages in and sends each to
its transaction or its dialog; how a call is admitted (its caller, its caps, its media, the
address its SDP names) is read here, apart from the port. Event loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
from collections.abc import Callable

from translate_svc.errors import NotReady, ServiceError
from translate_svc.session.admission import Admission
from translate_svc.session.manager import SessionManager
from translate_svc.session.tenants.tenant import DEFAULT_TENANT, RoomRights, Tenant
from translate_svc.settings import PhoneSettings, SipSettings
from translate_svc.transport.calls import call_info
from translate_svc.transport.door import DoorContext
from translate_svc.transport.http.caller import Caller
from translate_svc.transport.sip.addresses import rtp_address
from translate_svc.transport.sip.answers import Answers
from translate_svc.transport.sip.dialog import Answer, Flow, SipCall
from translate_svc.transport.sip.digest import DigestChallenger, Verdict, parse_authorization
from translate_svc.transport.sip.invite import Refusal, Taken, check_invite
from translate_svc.transport.sip.media import PortsExhausted, open_endpoint
from translate_svc.transport.sip.message import SipMessage, new_tag, response, uri_host_port
from translate_svc.transport.telephony.pacing import SlotClock
from translate_svc.transport.telephony.pairs import Pairs
from translate_svc.transport.tokens.file import Permission

logger = logging.getLogger(__name__)

#: the node's counter of SIP calls (``sip.max_calls``)
CALLS_COUNTER = "sip_calls"


class CallAdmission:
    """New INVITEs into calls (see the module). ``answers``: the door's server transactions;
    ``calls``, ``by_branch``: the door's tables of live calls (by dialog: Call-ID, our tag, the
    caller's; by the INVITE's branch, for CANCEL), which an admitted call is in while it lives;
    ``port``: the door's port for a transport (``UDP``, ``TCP``, ``TLS``: its SDP's Contact)."""

    def __init__(
        self,
        ctx: DoorContext,
        answers: Answers,
        *,
        calls: dict[tuple[str, str, str], SipCall],
        by_branch: dict[str, SipCall],
        port: Callable[[str], int],
    ) -> None:
        self.settings = ctx.settings
        self.sip: SipSettings = ctx.settings.sip
        self.phone: PhoneSettings = ctx.settings.phone
        self._m: SessionManager = ctx.sessions
        self._tokens = ctx.tokens
        self._answers = answers
        self._calls = calls
        self._by_branch = by_branch
        self._port = port
        self.pairs = Pairs(ctx.cluster, self.phone.partner_timeout_s)
        self.clock = SlotClock()
        self._digest = DigestChallenger()
        self._tasks: set[asyncio.Task[None]] = set()

    def tenant(self) -> Tenant:
        """An allowed network's trunk calls as ``sip.tenant`` (the tokens file's, if it names it)."""
        name = self.sip.tenant
        found = self._tokens.tenant(name) if self._tokens is not None else None
        return found or (DEFAULT_TENANT if name == DEFAULT_TENANT.name else Tenant(name))

    def take(self, invite: SipMessage, flow: Flow, now: float, allowed: bool, *, draining: bool) -> bool:
        """A new INVITE (``draining``: the door refuses new calls); False: its caller is not known
        (challenged or refused)."""
        if allowed:
            caller: Caller | None = Caller(self.tenant(), RoomRights(publish=("*",)))  # an allowed network's trunk
        else:
            caller = self._authenticated(invite, flow, now)
        if caller is None:
            return False
        flow.authenticated = True
        if draining or self._m.draining is not None:
            self._answers.refuse(
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
            self._answers.refuse(invite, flow, taken.status, taken.reason, taken.why, now)
            return True
        trying = response(invite, 100, "Trying")
        self._answers.keep(invite.branch(), trying, now)
        flow.send(trying)
        task = asyncio.get_running_loop().create_task(self._admit(invite, flow, taken, caller), name="sip-call")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    def _authenticated(self, invite: SipMessage, flow: Flow, now: float) -> Caller | None:
        """The caller of an INVITE from outside ``sip.allowed_cidrs``: a SIP user of the tokens file
        whose digest answer is right (and who may ``stream``). None: it was sent 401 with a
        challenge (no answer yet, a nonce not good any more or not for this source, an answer used
        before) or 403 (a wrong answer, an unknown user), each once: to a source not yet
        authenticated nothing is retransmitted (security finding H10)."""
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
            self._answers.final(invite, flow, resp, now, once=True)
            return None
        if verdict is Verdict.WRONG or grant is None:
            why = "the digest answer does not match a SIP user of the tokens file and this request"
            self._answers.refuse(invite, flow, 403, "Forbidden", why, now, once=True)
            return None
        if Permission.STREAM not in grant.permissions:
            why = "this SIP user's token has no stream permission"
            self._answers.refuse(invite, flow, 403, "Forbidden", why, now, once=True)
            return None
        return Caller(grant.tenant, grant.rooms)

    async def _admit(self, invite: SipMessage, flow: Flow, taken: Taken, caller: Caller) -> None:
        """The call's slots (the door's ``sip.max_calls``, then the stream's: the node's and its
        tenant's, cluster-wide with Redis) before any media, then the call; a refusal is the final
        answer to the INVITE (its retransmissions meanwhile get the 100 Trying again)."""
        counters = self._m.counters
        try:
            held = await counters.acquire([(CALLS_COUNTER, self.sip.max_calls)])
        except ServiceError as e:  # the node's store cannot answer
            self._answers.refuse(invite, flow, 503, "Service Unavailable", str(e), self._now(), retry=True)
            return
        if isinstance(held, str):
            why = f"at sip.max_calls ({self.sip.max_calls})"
            self._answers.refuse(invite, flow, 486, "Busy Here", why, self._now(), retry=True)
            return
        try:
            try:
                admission = await self._m.admit_stream(caller.tenant)
            except ServiceError as e:
                if isinstance(e, NotReady):
                    self._answers.refuse(invite, flow, 503, "Service Unavailable", str(e), self._now(), retry=True)
                else:
                    self._answers.refuse(invite, flow, 486, "Busy Here", str(e), self._now(), retry=True)
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
            self._answers.refuse(invite, flow, 503, "Service Unavailable", str(e), now, retry=True)
            return
        port = self._port(flow.transport)
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
            send_final=lambda resp: self._answers.final(invite, flow, resp, asyncio.get_running_loop().time()),
            media_address=functools.partial(rtp_address, server_host=self.settings.server.host, peer=flow.peer[0]),
        )
        key = (invite.call_id, local_tag, call.remote_tag)
        self._calls[key] = call
        self._by_branch[invite.branch()] = call
        try:
            await call.run()
        finally:
            self._calls.pop(key, None)
            self._by_branch.pop(invite.branch(), None)

    async def stop(self, grace: float) -> None:
        """The door stops: the calls (each a task from its admission to its end) get ``grace`` to
        end, then are cancelled."""
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await asyncio.gather(*list(self._tasks), return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _uri_host(uri: str) -> str:
    where = uri_host_port(uri)
    return where[0] if where is not None else ""
