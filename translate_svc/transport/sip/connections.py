"""SIP over TCP and TLS (RFC 3261 §18.3, §26.2): the connections of the SIP door's stream ports,
bounded before they hold anything (security finding H2: 1,100 silent connections from a refused source
held every descriptor of a process under ``ulimit -n 1024`` and every door failed).

At accept, before any TLS handshake (a TLS connection is accepted plain and upgraded only when let
in), a connection is closed at once when:

- its source is outside ``sip.allowed_cidrs`` and the tokens file names no SIP user (nobody
  there could be let in; with SIP users it gets ``FIRST_MESSAGE_S`` for its first whole message,
  the INVITE its digest challenge answers);
- its source (IPv6: its /64) already has ``sip.tcp_connections_per_source`` open;
- the door has its cap open (``sip.max_tcp_connections``, both ports together, sized with the HTTP
  port's from RLIMIT_NOFILE: ``descriptors.py``), or, for a source outside ``sip.allowed_cidrs``,
  the strangers' share of it (``sip.tcp_strangers_share``: the rest stays for the trunks; issue
  87, J6: 24 addresses held all 341 slots and a trunk's INVITE was reset at every try).

A connection that carries no call is closed once no whole message that counts has come for
``sip.tcp_idle_s`` (keep-alive CRLFs, a message's first bytes and a refused request do not count:
J6, a refused OPTIONS every 20 s held a slot for good); one that carries a call (its INVITE came
on it) stays while the call lives. One from outside ``sip.allowed_cidrs`` is closed
``sip.tcp_unauthenticated_s`` after its accept unless an INVITE's digest answer on it was right,
whatever it sends. Each refusal is counted and logged at a bounded rate (``RefusalLog``). Event
loop only.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable

from translate_svc.settings import SipSettings
from translate_svc.transport.http.site import peer_of
from translate_svc.transport.refusal_log import RefusalLog
from translate_svc.transport.sip.dialog import Flow
from translate_svc.transport.sip.guard import AllowList
from translate_svc.transport.sip.stream import IDLE, read_messages

#: a connection from outside ``sip.allowed_cidrs`` (let in to answer a digest challenge) must
#: bring its first whole message within this long of its accept (and its TLS handshake)
FIRST_MESSAGE_S = 5.0
#: a TLS connection's handshake must end within this
TLS_HANDSHAKE_S = 10.0


class Connections:
    """The SIP door's TCP and TLS connections. Event loop only."""

    def __init__(
        self,
        sip: SipSettings,
        cap: int,
        allow: AllowList,
        digest_on: Callable[[], bool],
        received: Callable[[bytes, Flow], bool],
        refusals: RefusalLog,
        count: Callable[[str], None],
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.cap = cap
        self._sip = sip
        self._allow = allow
        self._digest_on = digest_on
        self._received = received
        self._refusals = refusals
        self._count = count
        self._tls = tls
        self.writers: set[asyncio.StreamWriter] = set()
        #: open connections by source (IPv6: by /64), and those from outside ``sip.allowed_cidrs``
        self.by_source: dict[str, int] = {}
        self.strangers = 0
        #: what the strangers may hold together (``sip.tcp_strangers_share`` of ``cap``, rounded down)
        self.strangers_cap = int(cap * sip.tcp_strangers_share)

    def refusal(self, host: str, source: str) -> str | None:
        """Why a new connection from ``host`` (counted under ``source``) is closed at accept; None: let in."""
        allowed = self._allow.allows(host)
        if not allowed and not self._digest_on():
            return "tcp_refused_source"
        if len(self.writers) >= self.cap:
            return "tcp_at_cap"
        if not allowed and self.strangers >= self.strangers_cap:
            return "tcp_strangers_share"
        if self.by_source.get(source, 0) >= self._sip.tcp_connections_per_source:
            return "tcp_per_source"
        return None

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, transport: str) -> None:
        """One connection, from its accept: the checks, the TLS handshake, then its messages."""
        peer = writer.get_extra_info("peername")
        if not peer:  # (reset before we saw it)
            writer.close()
            return
        source = peer_of(writer.transport)
        why = self.refusal(peer[0], source)
        if why is not None:
            self._count(why)
            self._refusals(f"SIP {transport} connection", peer[0], _WHY[why])
            writer.close()
            return
        allowed = self._allow.allows(peer[0])
        self.writers.add(writer)
        self.by_source[source] = self.by_source.get(source, 0) + 1
        self.strangers += not allowed
        loop = asyncio.get_running_loop()
        accepted = loop.time()
        flow: Flow | None = None
        try:
            if transport == "TLS":
                assert self._tls is not None
                try:
                    await writer.start_tls(self._tls, ssl_handshake_timeout=TLS_HANDSHAKE_S)
                except (OSError, TimeoutError, ssl.SSLError):
                    self._count("tls_handshake_failed")
                    return
            local = writer.get_extra_info("sockname")
            flow = Flow(writer.write, (peer[0], peer[1]), transport, (local[0], local[1]))
            flow.active_at = loop.time()
            first = self._sip.tcp_idle_s if allowed else FIRST_MESSAGE_S
            vetted = accepted + self._sip.tcp_unauthenticated_s  # a stranger's, to authenticate by
            seen = False

            def deadline() -> float | None:
                assert flow is not None
                if flow.dialogs:
                    return None  # a call lives on it
                idle = flow.active_at + (self._sip.tcp_idle_s if seen else min(first, self._sip.tcp_idle_s))
                return idle if allowed or flow.authenticated else min(idle, vetted)

            def message(data: bytes) -> None:
                nonlocal seen
                assert flow is not None
                if self._received(data, flow):  # (a refused request is no sign of life)
                    seen = True
                    flow.active_at = loop.time()

            why = await read_messages(reader, self._sip.max_message_bytes, message, deadline)
            if why == IDLE:
                unvetted = not allowed and not flow.authenticated and loop.time() >= vetted
                self._count("tcp_unauthenticated" if unvetted else "tcp_idle" if seen else "tcp_no_first_message")
            elif why is not None:
                self._count("unreadable")
                self._refusals("SIP message", peer[0], why)
        finally:
            if flow is not None:
                flow.closed = True
            self.writers.discard(writer)
            self.strangers -= not allowed
            left = self.by_source.get(source, 1) - 1
            if left > 0:
                self.by_source[source] = left
            else:
                self.by_source.pop(source, None)
            writer.close()

    def close(self) -> None:
        for w in list(self.writers):
            w.close()


_WHY = {
    "tcp_refused_source": "not in sip.allowed_cidrs (closed at accept)",
    "tcp_at_cap": "at sip.max_tcp_connections (closed at accept)",
    "tcp_strangers_share": "outside sip.allowed_cidrs, at sip.tcp_strangers_share (closed at accept)",
    "tcp_per_source": "at sip.tcp_connections_per_source (closed at accept)",
}
