"""A room's captions as an MCP resource, ``translate-svc://rooms/{room}/captions/{language}``:
what was said in the room in one language, for an agent to read and to watch.

- **Read** (``resources/read``): the room's final results in that language of the last
  ``rooms.backlog_s`` seconds (its backlog, text only: each segment's speaker, id, span, text and
  transcript, and their confidence, ``avg_logprob``, where computed), through the listen core
  (``session.ListenDriver``: the caller's ``listen=`` rights, the room's and tenant's listener
  caps, the access line), joined and left at once.
- **Subscribe** (``subscriptions/listen``, MCP 2026-07-28; the ``mcp`` SDK's ``Client.listen``):
  for each captions resource asked for, a room listener of the caller's tenant is held for as long
  as the listen stream is open (at most ``mcp.max_subscriptions`` a stream, each counted in the
  tenant's ``listeners=``); each new final result sends ``notifications/resources/updated`` for
  its resource, on that stream only (its own bus: another tenant's room of the same name never
  wakes it). When a listener ends (a drain, its longest listen, its token revoked) the stream is
  closed, so the client knows to listen again. The endpoint keeps no MCP session
  (stateless): ``resources/subscribe`` of the older protocol is not offered (its notifications
  need one); such a client reads again.

Event loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, unquote

import mcp_types as types
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ResourceUpdated

from translate_svc.errors import InvalidInput, NotReady, PermissionDenied, ServiceError, shown
from translate_svc.session.calls.listen import ListenDriver, ListenRequest
from translate_svc.session.manager import SessionManager
from translate_svc.session.rooms.checks import check_room_name
from translate_svc.session.rooms.listener import Listener, ListenEvent, ListenStarted, RoomOutput
from translate_svc.transport.tokens.revocation import LISTEN_REVOKED, Revocation, may_listen_to, watching
from translate_svc.types import SegmentResult, Transcript

logger = logging.getLogger(__name__)

SCHEME = "translate-svc://rooms/"
TEMPLATE = SCHEME + "{room}/captions/{language}"
#: how long a read waits for the room's backlog (it is queued as the listener joins)
_GRACE_S = 2.0


def captions_uri(room: str, language: str) -> str:
    return f"{SCHEME}{quote(room, safe='')}/captions/{language}"


def parse_uri(uri: str) -> tuple[str, str]:
    """(room, language) of a captions resource's URI, or InvalidInput saying the form."""
    rest = uri[len(SCHEME) :] if uri.startswith(SCHEME) else ""
    room, _, tail = rest.partition("/captions/")
    room = unquote(room)
    if not room or not tail or "/" in tail:
        raise InvalidInput(f"resource {shown(uri, 80)} is not one of this server's: read {TEMPLATE}")
    check_room_name(room)
    return room, tail


def _entry(out: RoomOutput) -> dict[str, Any]:
    r, said = out.event, out.said  # said: a conversation's turn heard in this language, shown as said
    t = r.translations[0] if r.translations else None
    language = t.target_language if t is not None else said.language if said is not None else None
    logprob = t.avg_logprob if t is not None else said.avg_logprob if said is not None else None
    return {
        "speaker": out.speaker,
        "segment_id": r.segment_id,
        "start_ms": r.start_ms,
        "end_ms": r.end_ms,
        "language": language,
        "text": t.text if t is not None else said.text if said is not None else "",
        # confidence: as translate_audio's, present where computed
        **({} if logprob is None else {"avg_logprob": logprob}),
        "transcript": None if r.transcript is None else _transcript(r.transcript),
    }


def _transcript(t: Transcript) -> dict[str, Any]:
    body: dict[str, Any] = {"language": t.language, "text": t.text}
    if t.avg_logprob is not None:
        body["avg_logprob"] = t.avg_logprob
    return body


class Captions:
    """Reads and listens to rooms' captions for MCP callers. ``revocation``: the door's (None: a
    server without tokens)."""

    def __init__(self, manager: SessionManager, revocation: Revocation | None, max_subscriptions: int) -> None:
        self._m = manager
        self._revocation = revocation
        self.max_subscriptions = max_subscriptions

    def _check(self, caller: Any, uri: str) -> tuple[str, str]:
        room, language = parse_uri(uri)
        if not caller.rooms.may_listen(room):
            raise PermissionDenied(
                f"this token may not listen to room {shown(room, 70)}: use a token whose listen= (or room=) pattern "
                "covers the room"
            )
        return room, language

    async def read(self, caller: Any, uri: str) -> str:
        """The room's recent captions in the language, as JSON."""
        room, language = self._check(caller, uri)
        entries: list[dict[str, Any]] = []
        driver = ListenDriver(
            self._m, tenant=caller.tenant, rights=caller.rooms, call=caller.call("mcp.captions"), token=caller.key
        )
        expected: list[int] = []

        async def send(ev: ListenEvent) -> None:
            if isinstance(ev, ListenStarted):
                expected.append(ev.backlog)
            elif isinstance(ev, RoomOutput) and ev.backlog:
                entries.append(_entry(ev))
            if expected and len(entries) >= expected[0] and driver.listener is not None:
                driver.listener.close()

        async def request() -> ListenRequest:
            return ListenRequest(room, language)

        try:
            await asyncio.wait_for(driver.run(request, send, grace_s=_GRACE_S), _GRACE_S)
        except TimeoutError:  # the backlog is queued as the listener joins: only a stalled loop gets here
            raise NotReady(f"the room's captions did not come within {_GRACE_S:g} s: read again") from None
        return json.dumps({"room": room, "language": language, "captions": entries}, ensure_ascii=False)

    async def listen(
        self,
        caller: Any,
        ctx: Any,
        params: types.SubscriptionsListenRequestParams,
        serve: Callable[..., Awaitable[Any]] | None = None,
    ) -> types.SubscriptionsListenResult:
        """One ``subscriptions/listen`` stream: its captions resources watched while it is open."""
        uris = list(params.notifications.resource_subscriptions or ())
        if len(uris) > self.max_subscriptions:
            raise InvalidInput(
                f"a listen may watch at most {self.max_subscriptions} captions resources (mcp.max_subscriptions): "
                "listen to fewer, or open another listen"
            )
        watched = [(uri, *self._check(caller, uri)) for uri in uris]
        bus = InMemorySubscriptionBus()
        handler = ListenHandler(bus, max_subscriptions=1, max_buffered_events=64)
        loop = asyncio.get_running_loop()
        opened = [loop.create_future() for _ in watched]
        feeds = [
            asyncio.ensure_future(self._feed(caller, uri, room, lang, bus, handler, ready))
            for (uri, room, lang), ready in zip(watched, opened, strict=True)
        ]
        try:
            await asyncio.gather(*opened)  # every listener in (or the first refusal), before the ack
            return await (serve or handler)(ctx, params)
        finally:
            for feed in feeds:
                feed.cancel()
            await asyncio.gather(*feeds, return_exceptions=True)

    async def _feed(
        self,
        caller: Any,
        uri: str,
        room: str,
        language: str,
        bus: InMemorySubscriptionBus,
        handler: ListenHandler,
        ready: asyncio.Future[None],
    ) -> None:
        """A room listener for one watched resource (``ready`` once it is in, or its refusal):
        each new final result is an update; its end closes the listen stream."""
        driver = ListenDriver(
            self._m, tenant=caller.tenant, rights=caller.rooms, call=caller.call("mcp.listen"), token=caller.key
        )

        async def send(ev: ListenEvent) -> None:
            if isinstance(ev, RoomOutput) and not ev.backlog and isinstance(ev.event, SegmentResult):
                await bus.publish(ResourceUpdated(uri=uri))

        async def request() -> ListenRequest:
            return ListenRequest(room, language)

        def watch(listener: Listener, name: str) -> contextlib.AbstractContextManager[None]:
            return watching(self._revocation, listener, caller, allowed=may_listen_to(name), message=LISTEN_REVOKED)

        async def opened(_: Listener) -> None:
            ready.set_result(None)

        try:
            await driver.run(request, send, grace_s=_GRACE_S, opened=opened, watch=watch)
        except ServiceError as e:
            if not ready.done():
                ready.set_exception(e)
                return
            logger.info("an MCP captions listen of room %s ended: %s", shown(room, 70), e.message)
        finally:
            if not ready.done():
                ready.cancel()
            handler.close()
