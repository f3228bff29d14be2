"""One listen to a room (``Listen``), for every door: the listen counterpart of ``StreamDriver``
(streams) and ``ClipDriver`` (clips).

A door hands ``ListenDriver.run`` a ``read`` that receives and parses its request (the gRPC door:
its one ``ListenRequest`` message; the rooms' WebSocket: its handshake's path and query) and a
``send`` for each event it renders; the driver owns the rest, once for every door:

- admission: the request is read under the unary caps of its tenant and token
  (``SessionManager.admit_unary``), within ``limits.request_read_timeout_s`` of the call's start
  (then DEADLINE_EXCEEDED), so a call that never sends its request holds nothing for long;
- the listener (``RoomRegistry.join``: the caller's room rights, the room's and tenant's caps),
  handed to the door (``opened``) before its first event: a door that answers refusals before
  its upgrade (the WebSocket) upgrades there;
- the listen, until it ends: the client leaves (the door closes the listener), the server drains,
  its longest listen (``rooms.max_listen_s``), its token revoked (the door's ``watch``); a listen
  ended from outside whose door is stuck sending to a client that does not read is cut after
  ``grace_s`` (``ListenCut``);
- the accounting, however it ends: the tenant's call metric (method ``listen``) and the call's
  access line (its room, language, events sent and dropped, the final results sent by status
  and the speech they cover as ``audio_s``, and its code).

Event loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from translate_svc.errors import TooSlow
from translate_svc.observability.access import CallInfo
from translate_svc.session.calls.accounting import CallOutcome, accounted
from translate_svc.session.manager import SessionManager
from translate_svc.session.rooms.listener import Listener, ListenEvent, RoomOutput, until_ended
from translate_svc.session.tenants.tenant import RoomRights, Tenant
from translate_svc.types import SegmentResult

#: the tenant call metric's method of a listen
METHOD = "listen"


@dataclass(frozen=True)
class ListenRequest:
    """What a listener asks for, as its door parsed it (the registry checks it)."""

    room: str
    language: str
    participant: str = ""
    #: the speaking rate of the room's speech (None: as each speaker speaks)
    speed: float | None = None
    #: a conversation's turns heard in its language with their own audio (else as text)
    original: bool = False


class ListenDriver:
    """Drives one listen; create one per call, when the call opens (its read deadline runs from
    then), and ``run`` it once."""

    def __init__(
        self,
        manager: SessionManager,
        *,
        tenant: Tenant,
        rights: RoomRights,
        call: CallInfo | None = None,
        token: bytes | None = None,
        started: float | None = None,
    ) -> None:
        """``started``: when the call opened, on the event loop's clock (None: now)."""
        self._m = manager
        self.tenant = tenant
        self.rights = rights
        self.call = call
        #: the digest of the caller's token (its unary calls are bounded); None: no tokens
        self.token = token
        self._started = asyncio.get_running_loop().time() if started is None else started
        #: the listener, once the registry let it in
        self.listener: Listener | None = None

    async def run(
        self,
        read: Callable[[], Awaitable[ListenRequest]],
        send: Callable[[ListenEvent], Awaitable[None]],
        *,
        grace_s: float,
        opened: Callable[[Listener], Awaitable[None]] | None = None,
        watch: Callable[[Listener, str], contextlib.AbstractContextManager[None]] | None = None,
    ) -> None:
        """Admit the call, ``read`` its request, open its listener (``opened``), and ``send`` its
        events until the listen ends. Raises the ServiceError that ended it (a refusal, the read
        deadline, a drain, its longest listen, a revocation), ``ListenCut`` when its door was stuck
        sending as it ended; returns when the client left."""
        with accounted(self.tenant, self.call, METHOD) as outcome:
            async with self._m.admit_unary(self.tenant, self.token):
                request = await self._within_deadline(read)
            listener = await self._m.rooms.join(
                request.room,
                request.language,
                participant=request.participant,
                tenant=self.tenant,
                rights=self.rights,
                speed=request.speed,
                original=request.original,
            )
            self.listener = listener
            outcome.config.update({"room": request.room, "targets": listener.language})
            try:
                if opened is not None:
                    await opened(listener)
                watching = watch(listener, request.room) if watch is not None else contextlib.nullcontext()
                with watching:
                    await until_ended(_sent(listener, send, outcome), listener, grace_s)
            finally:
                listener.close()
                if self.call is not None:
                    self.call.extra.update({"events": listener.delivered, "dropped": listener.dropped})

    async def _within_deadline(self, read: Callable[[], Awaitable[ListenRequest]]) -> ListenRequest:
        limit_s = self._m.limits.request_read_timeout_s
        left = self._started + limit_s - asyncio.get_running_loop().time()
        try:
            return await asyncio.wait_for(read(), max(0.0, left))
        except TimeoutError:
            raise TooSlow(
                f"the listen request did not arrive within {limit_s:g} s of the call's start "
                "(ServerLimits.request_read_timeout_ms): send the request at once"
            ) from None


async def _sent(listener: Listener, send: Callable[[ListenEvent], Awaitable[None]], outcome: CallOutcome) -> None:
    """The listener's events, each sent by the door, until the listen ends (its error raised).
    Each final result sent counts on the access line: ``segments`` by status, and ``audio_s`` the
    speech they cover."""
    async for ev in listener.events():
        await send(ev)
        if isinstance(ev, RoomOutput) and isinstance(ev.event, SegmentResult):
            outcome.results.append(ev.event)
            outcome.audio_s += max(0, ev.event.end_ms - ev.event.start_ms) / 1000
