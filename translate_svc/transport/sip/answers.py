"""What the SIP door answered (RFC 3261 §17.2, its server transactions): each INVITE's last
response, kept so that a retransmitted INVITE gets it again and makes no new state; an INVITE's
non-2xx final response, over UDP sent again until its ACK (Timer G, given up at Timer H), at most
``MAX_FINALS`` at once (the oldest given up first); other requests' responses, kept for their
retransmissions (Timer J); and how an INVITE is refused (a Warning that says why, a Retry-After at
capacity; logged at a bounded rate, counted by status).

A room of its own because it is the transaction layer under both of the door's jobs: what a message
meets at the door (``door.py``: a retransmission, an ACK, a re-INVITE, OPTIONS, BYE, CANCEL) and a
new INVITE's admission (``admission.py``: its challenge, its refusals, its 100 Trying, the call's
own final answer). The timers and the bounded tables themselves are ``transactions.py``'s. Event
loop only.
"""

from __future__ import annotations

from collections.abc import Callable

from translate_svc.settings import SipSettings
from translate_svc.transport.refusal_log import RefusalLog
from translate_svc.transport.sip.dialog import Flow
from translate_svc.transport.sip.message import AGENT, SipMessage, new_tag, response
from translate_svc.transport.sip.transactions import KEEP_S, Kept, Retransmit

#: the Retry-After (seconds) of a refusal at capacity
RETRY_AFTER_S = 5
#: non-2xx final responses sent again until their ACK, at most (the oldest given up first)
MAX_FINALS = 4096


class Answers:
    """The door's server transactions (see the module). ``refusals``: the door's log of what it
    refused (at a bounded rate); ``count``: the door's counts, by why (``answered_<status>``)."""

    def __init__(self, sip: SipSettings, refusals: RefusalLog, count: Callable[[str], None]) -> None:
        self.sip = sip
        self._refusals = refusals
        self._count = count
        #: INVITE transactions by branch: their last response (sent again for a retransmission)
        self._invites: Kept[SipMessage] = Kept(KEEP_S + sip.ack_timeout_s)
        #: a non-2xx final response's retransmission until its ACK, by branch
        self._finals: dict[str, Retransmit] = {}
        #: other requests' responses, by (branch, method)
        self._answered: Kept[SipMessage] = Kept()

    def of_invite(self, branch: str, now: float) -> SipMessage | None:
        """The last response to the INVITE of ``branch`` (None: none is kept)."""
        return self._invites.get(branch, now)

    def keep(self, branch: str, resp: SipMessage, now: float) -> None:
        """``resp`` is now the last response to the INVITE of ``branch`` (a 100 Trying, a
        re-INVITE's answer)."""
        self._invites.put(branch, resp, now)

    def of_request(self, key: tuple[str, str | None], now: float, answer: Callable[[], SipMessage]) -> SipMessage:
        """The response to another request, by (branch, method): the one it got, for a
        retransmission; else ``answer()``'s, kept."""
        kept = self._answered.get(key, now)
        if kept is None:
            kept = answer()
            self._answered.put(key, kept, now)
        return kept

    def awaits_ack(self, branch: str) -> bool:
        """Whether a non-2xx final response to the INVITE of ``branch`` waits for its ACK."""
        return branch in self._finals

    def acked(self, branch: str) -> bool:
        """An ACK of ``branch``: the non-2xx final response it acknowledges is sent no more
        (§17.2.1); False: it acknowledges none (a 2xx's ACK goes to its dialog)."""
        final = self._finals.pop(branch, None)
        if final is None:
            return False
        final.stop()
        return True

    def final(self, invite: SipMessage, flow: Flow, resp: SipMessage, now: float, *, once: bool = False) -> None:
        """A final response to an INVITE: kept for its retransmissions, and over UDP a non-2xx one
        sent again until its ACK (Timer G, given up at Timer H); ``once``: never sent again but for
        a retransmitted INVITE (to a source not authenticated: a forged one would make us send a
        stranger many times what it sent, security finding H10; its ACK is still taken)."""
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

    def refuse(
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
        """An INVITE refused: ``status`` with a Warning saying ``why`` (and ``retry``: a
        Retry-After), its final response."""
        extra = [("warning", f'399 {AGENT} "{why[:200].replace(chr(34), chr(39))}"')]
        if retry:
            extra.append(("retry-after", str(RETRY_AFTER_S)))
        self._refusals("SIP INVITE", flow.peer[0], f"{status} {reason}: {why}")  # logged at a bounded rate
        resp = response(invite, status, reason, to_tag=new_tag(), extra=extra)
        self.final(invite, flow, resp, now, once=once)

    def stop(self) -> None:
        """The door stops: no final response is sent again."""
        for r in self._finals.values():
            r.stop()
