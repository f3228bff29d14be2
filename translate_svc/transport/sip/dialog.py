"""One SIP call: its dialog (RFC 3261 §12) and the call through the telephony floor's call loop.

The door hands it an INVITE it admitted (its tenant's slots taken, its RTP port open). It rings
(180, for ``sip.ring_s``: a CANCEL meanwhile ends it with 487), answers 200 with the SDP answer,
sent again until the ACK comes (over UDP) or ``sip.ack_timeout_s`` passes (the call then ends:
``no_ack``), and runs the call (``telephony.loop.PhoneCall``: the stream core's admission, drain,
access line and metrics, the ear-voice lag from our RTP send times). The caller's BYE ends it;
any other end (a drain, a limit, the media timeout, bad input) is our BYE, with a ``Reason``
header saying why. A re-INVITE changes where media goes, the codec on the wire (the call's stream
keeps its codec and rate: G.711's two laws convert) or holds the call (a ``sendonly`` offer: we send
nothing). Event loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from translate_svc.errors import LimitReached
from translate_svc.observability.access import CallInfo
from translate_svc.session.admission import Admission
from translate_svc.session.manager import SessionManager
from translate_svc.settings import PhoneSettings, SipSettings
from translate_svc.transport.http.caller import Caller
from translate_svc.transport.sip import sdp
from translate_svc.transport.sip.media import MediaDeadline, RtpEndpoint, RtpOutlet
from translate_svc.transport.sip.message import AGENT, SipMessage, new_branch, param, response, uri_of
from translate_svc.transport.sip.rtp import BYE, START, RtpFraming, RtpSender
from translate_svc.transport.sip.transactions import KEEP_S, Retransmit
from translate_svc.transport.telephony.loop import PhoneCall, close_reason
from translate_svc.transport.telephony.pacing import SlotClock
from translate_svc.transport.telephony.pairs import Pairs

logger = logging.getLogger(__name__)

#: the longest reason text in our BYE's Reason header
MAX_REASON_CHARS = 120


class Flow:
    """Where a call's signalling goes back: the UDP socket and the caller's address, or its TCP
    connection. Event loop only."""

    def __init__(self, send: Callable[[bytes], None], peer: tuple[str, int], transport: str, local: tuple[str, int]):
        self._send = send
        self.peer = peer
        self.transport = transport  # "UDP", "TCP" or "TLS" (as in a Via)
        self.local = local
        self.closed = False
        #: calls whose INVITE came on this flow and that are not over (a TCP or TLS connection
        #: that carries one is not closed for being idle), and when the flow last carried a whole
        #: message or a call of it ended (loop time: where its idle time counts from)
        self.dialogs = 0
        self.active_at = 0.0
        #: an INVITE's digest answer on this flow was right (a connection from outside
        #: ``sip.allowed_cidrs`` is closed ``sip.tcp_unauthenticated_s`` after its accept otherwise)
        self.authenticated = False

    @property
    def reliable(self) -> bool:
        return self.transport != "UDP"

    def send(self, message: SipMessage) -> None:
        if not self.closed:
            self._send(message.encode())


@dataclass(frozen=True)
class Answer:
    """What the door decided for an INVITE it admitted."""

    offer: sdp.Offer
    chosen: sdp.Chosen
    params: dict[str, str]
    address: str  # ours, in the SDP and Contact
    sip_port: int


class SipCall:
    """One admitted INVITE, until its dialog ends. Event loop only."""

    def __init__(
        self,
        invite: SipMessage,
        flow: Flow,
        answer: Answer,
        *,
        manager: SessionManager,
        phone: PhoneSettings,
        sip: SipSettings,
        caller: Caller,
        info: CallInfo,
        admission: Admission,
        endpoint: RtpEndpoint,
        queue: asyncio.Queue[str | bytes],
        clock: SlotClock,
        pairs: Pairs,
        local_tag: str,
        send_final: Callable[[SipMessage], None],
        media_address: Callable[[str], str],
    ) -> None:
        self.invite = invite
        self.flow = flow
        self.answer = answer
        self._m = manager
        self._phone = phone
        self._sip = sip
        self.caller = caller
        self.info = info
        self.admission = admission
        self.endpoint = endpoint
        self.queue = queue
        self._clock = clock
        self._pairs = pairs
        self.local_tag = local_tag
        self._send_final = send_final  # the INVITE transaction's final response (kept for retransmissions)
        self._media_address = media_address  # a re-INVITE's c= address, checked (``addresses.rtp_address``)
        self.call_id = invite.call_id
        self.remote_tag = invite.from_tag()
        self.remote_target = uri_of(invite.get("contact") or invite.get("from") or "")
        self.route = invite.all("record-route")
        self._cseq = 0
        self._sdp_version = 0
        self._ringing = asyncio.Event()
        self.cancelled = False
        self.confirmed = False
        self.ack_timed_out = False
        self.bye_received = False
        self._ok: Retransmit | None = None
        self._ok_cseq = 0
        self._bye: Retransmit | None = None
        self._bye_branch = ""
        self._bye_answered = asyncio.Event()
        self.phone_call: PhoneCall | None = None
        self.framing = RtpFraming(
            self.call_id[:64],
            answer.chosen.codec,
            {answer.chosen.payload_type: answer.chosen.codec},
            answer.chosen.event_type,
            sip.dtmf_targets,
        )
        self.framing.names[answer.chosen.payload_type] = answer.chosen.codec_name

    # -- the dialog's requests and responses from the door ---------------------------------------

    def cancel(self) -> bool:
        """The caller's CANCEL: True when it came in time (still ringing)."""
        if self._ringing.is_set() or self.cancelled:
            return False
        self.cancelled = True
        self._ringing.set()
        return True

    def acked(self, ack: SipMessage) -> None:
        with contextlib.suppress(ValueError):
            if ack.cseq()[0] != self._ok_cseq:
                return
        self.confirmed = True
        self.endpoint.acked = True
        if self._ok is not None:
            self._ok.stop()

    def bye(self) -> None:
        """The caller hung up: no more media comes."""
        self.bye_received = True
        if self._ok is not None:
            self._ok.stop()
        if self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(BYE)

    def bye_answered(self, resp: SipMessage) -> None:
        if resp.branch() == self._bye_branch and resp.status >= 200 and self._bye is not None:
            self._bye.stop()
            self._bye_answered.set()

    def reinvite(self, request: SipMessage) -> SipMessage:
        """A re-INVITE's response: 200 with our new answer, 488 for an offer without our codecs or
        with an address we do not send to (the call goes on as it was), 400 for one we cannot read."""
        try:
            offer = sdp.parse_offer(request.body) if request.body else self.answer.offer
            chosen = sdp.choose(offer, rate=self.answer.chosen.codec.rate)
            chosen = dataclasses.replace(chosen, address=self._media_address(chosen.address))
        except sdp.NotAcceptable as e:
            return response(request, 488, "Not Acceptable Here", extra=[("warning", f'305 {AGENT} "{e}"')])
        except sdp.SdpError as e:
            return response(request, 400, "Bad SDP", extra=[("warning", f'399 {AGENT} "{e}"')])
        self.framing.payload_types[chosen.payload_type] = chosen.codec
        self.framing.names[chosen.payload_type] = chosen.codec_name
        self.framing.event_type = chosen.event_type
        self.endpoint.expect((chosen.address, chosen.port), self.flow.peer[0])  # elsewhere: latches again
        outlet = self.phone_call.outlet if self.phone_call is not None else None
        if isinstance(outlet, RtpOutlet):
            outlet.wire_codec = chosen.codec
            outlet.wire_name = chosen.codec_name
            outlet.sender.payload_type = chosen.payload_type
            outlet.held = chosen.direction in ("recvonly", "inactive")
        self.answer = Answer(offer, chosen, self.answer.params, self.answer.address, self.answer.sip_port)
        with contextlib.suppress(ValueError):
            self._ok_cseq = request.cseq()[0]
        ok = self._ok_response(request)
        self._send_ok(ok)
        logger.info(
            "SIP re-INVITE: %s, %s", chosen.codec_name, chosen.direction, extra={"request_id": self.info.request_id}
        )
        return ok

    # -- the call --------------------------------------------------------------------------------

    def _contact(self) -> str:
        """Where the caller's in-dialog requests come (§8.1.1.8): over TLS a ``sips:`` URI when
        the INVITE's was one, else ``transport=tls`` (RFC 5630 §3.1.3)."""
        scheme, transport = "sip", {"UDP": "", "TCP": ";transport=tcp", "TLS": ";transport=tls"}[self.flow.transport]
        if self.flow.transport == "TLS" and self.invite.uri.lower().startswith("sips:"):
            scheme, transport = "sips", ""
        host = f"[{self.answer.address}]" if ":" in self.answer.address else self.answer.address
        return f"<{scheme}:translate@{host}:{self.answer.sip_port}{transport}>"

    def _ok_response(self, request: SipMessage) -> SipMessage:
        self._sdp_version += 1
        body = sdp.answer(
            self.answer.offer, self.answer.chosen, self.answer.address, self.endpoint_port, session_id=None
        )
        extra = [("contact", self._contact()), ("content-type", "application/sdp")]
        extra += [("record-route", r) for r in request.all("record-route")]
        return response(request, 200, "OK", to_tag=self.local_tag, extra=extra, body=body)

    @property
    def endpoint_port(self) -> int:
        return self.endpoint.port

    def _send_ok(self, ok: SipMessage) -> None:
        if self._ok is not None:
            self._ok.stop()
        self._ok = Retransmit(
            lambda: self.flow.send(ok),
            repeat=not self.flow.reliable,
            timeout_s=self._sip.ack_timeout_s,
            on_timeout=self._no_ack,
        )

    def _no_ack(self) -> None:
        if self.confirmed or self.bye_received:
            return
        self.ack_timed_out = True
        why = f"no ACK came for our 200 OK within {self._sip.ack_timeout_s:g} s (sip.ack_timeout_s, RFC 3261 Timer H)"
        logger.info("SIP call ended: %s", why, extra={"request_id": self.info.request_id})
        if self.phone_call is not None:
            self.phone_call.driver.end(LimitReached(f"the call was ended: {why}", reason="no_ack"))

    async def run(self) -> None:
        self.flow.dialogs += 1
        try:
            await self._run()
        finally:
            self.flow.dialogs -= 1
            self.flow.active_at = asyncio.get_running_loop().time()
            self.admission.release()
            self.endpoint.close()
            if self._ok is not None:
                self._ok.stop()

    async def _run(self) -> None:
        ringing = response(self.invite, 180, "Ringing", to_tag=self.local_tag, extra=[("contact", self._contact())])
        self.flow.send(ringing)
        if self._sip.ring_s > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._sip.ring_s):
                    await self._ringing.wait()
        if self.cancelled:
            self._send_final(response(self.invite, 487, "Request Terminated", to_tag=self.local_tag))
            logger.info("SIP call cancelled by the caller", extra={"request_id": self.info.request_id})
            return
        self._ringing.set()
        with contextlib.suppress(ValueError):
            self._ok_cseq = self.invite.cseq()[0]
        ok = self._ok_response(self.invite)
        self._send_final(ok)  # the transaction keeps it for a retransmitted INVITE
        self._send_ok(ok)
        await self._call()

    async def _call(self) -> None:
        phone_call = PhoneCall(
            self._m,
            self._phone,
            self.framing,
            self.answer.params,
            self.caller,
            self.info,
            self.admission,
            pairs=self._pairs,
        )
        self.phone_call = phone_call
        outlet = RtpOutlet(
            self.endpoint,
            self._clock,
            RtpSender(
                self.answer.chosen.payload_type, int.from_bytes(self.local_tag.encode()[:4].ljust(4, b"0"), "big")
            ),
            max_held_s=self._phone.max_held_s,
            on_played=phone_call.played,
            on_stall=phone_call.end,
        )
        outlet.wire_codec = self.answer.chosen.codec
        outlet.wire_name = self.answer.chosen.codec_name
        outlet.framing = self.framing
        outlet.held = self.answer.chosen.direction in ("recvonly", "inactive")
        phone_call.outlet = outlet
        self.info.extra["transport"] = self.flow.transport
        self.info.extra["codec"] = self.answer.chosen.codec_name
        deadline = MediaDeadline(phone_call, self._sip.media_timeout_s)
        try:
            await phone_call.run(self._incoming())
        finally:
            deadline.cancel()
            outlet.leave()
        if not self.bye_received:
            await self._send_bye(close_reason(phone_call) or "the call is over")

    async def _incoming(self) -> AsyncIterator[str | bytes]:
        yield START
        while True:
            item = await self.queue.get()
            yield item
            if item == BYE:
                return

    async def _send_bye(self, why: str) -> None:
        """Our BYE (§15.1.1), within the dialog, sent again over UDP until its answer comes."""
        self._cseq += 1
        self._bye_branch = new_branch()
        host = f"[{self.answer.address}]" if ":" in self.answer.address else self.answer.address
        text = why[:MAX_REASON_CHARS].replace('"', "'")
        headers = [
            ("via", f"SIP/2.0/{self.flow.transport} {host}:{self.answer.sip_port};branch={self._bye_branch};rport"),
            ("max-forwards", "70"),
            *[("route", r) for r in self.route],
            (
                "from",
                (self.invite.get("to") or "")
                + ("" if param(self.invite.get("to") or "", "tag") else f";tag={self.local_tag}"),
            ),
            ("to", self.invite.get("from") or ""),
            ("call-id", self.call_id),
            ("cseq", f"{self._cseq} BYE"),
            ("reason", f'SIP;cause=200;text="{text}"'),
            ("user-agent", AGENT),
        ]
        bye = SipMessage(method="BYE", uri=self.remote_target or f"sip:{self.flow.peer[0]}", headers=headers)
        self._bye = Retransmit(lambda: self.flow.send(bye), repeat=not self.flow.reliable, timeout_s=KEEP_S / 4)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(KEEP_S / 4):
                await self._bye_answered.wait()
        self._bye.stop()
