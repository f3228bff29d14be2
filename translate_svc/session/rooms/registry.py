"""Every room of this process (``RoomRegistry``, one per ``SessionManager``): parties admitted
under the room, tenant and node caps, rooms opened and closed (their slots given back at once,
their backlog kept ``idle_s``), what a listener gets first, the drain, and who is in a room. The
package's docstring (``__init__.py``) says what rooms do; ``room.py`` holds the room and its
speakers, ``link.py`` the rooms' side of the cluster store.

Event loop only (no locks): publishing is synchronous and never awaits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from translate_svc.cluster.store import ClusterStore
from translate_svc.errors import (
    InvalidInput,
    LimitReached,
    NotReady,
    Overloaded,
    PermissionDenied,
    ServiceError,
    ShuttingDown,
    shown,
)
from translate_svc.observability import metrics
from translate_svc.session.events import Draining
from translate_svc.session.rooms.backlog import Backlogs
from translate_svc.session.rooms.checks import check_participant, check_room_name, rate_of
from translate_svc.session.rooms.config import RoomConfig
from translate_svc.session.rooms.herald import RoomHerald
from translate_svc.session.rooms.link import RoomLink
from translate_svc.session.rooms.listener import Listener, ListenStarted
from translate_svc.session.rooms.rates import RoomRates, check_rate_allowed
from translate_svc.session.rooms.room import Render, Renditions, Room, Speaker
from translate_svc.session.tenants.counters import UNCAPPED, Counters, Held
from translate_svc.session.tenants.tenant import RoomRights, Tenant
from translate_svc.types import ModelCard
from translate_svc.webhooks.events import NO_EVENTS, EventSink

logger = logging.getLogger(__name__)

#: how long a stopping server gives its rooms' store calls and room events (``RoomRegistry.close``):
#: a store call that answers at all answers well within it
CLOSE_S = 5.0


class ListenTooLong(LimitReached):
    """A listen reached ``rooms.max_listen_s``: it ended; listening again goes on (OUT_OF_RANGE)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"this listen reached its longest, {seconds:g} s (rooms.max_listen_s): listen again to go on "
            "(the room's backlog is sent first)",
            reason="max_listen_duration",
        )


@dataclass(frozen=True)
class RoomPresence:
    """Who is in a room (``RoomRegistry.presence``): speakers by id, and listeners counted by
    language, on this process and on the others."""

    room: str
    speakers: tuple[str, ...]
    remote_speakers: tuple[str, ...]
    listeners: dict[str, int]
    remote_listeners: dict[str, int]


class RoomRegistry:
    """Every room of this process. One per ``SessionManager``; event loop only. ``card`` gives the
    loaded model's card (a listener's language is checked against it)."""

    def __init__(
        self,
        config: RoomConfig,
        counters: Counters,
        card: Callable[[], ModelCard],
        *,
        clock: Callable[[], float] = time.monotonic,
        store: ClusterStore | None = None,
    ) -> None:
        """``store``: the cluster store that links this process's rooms to other processes'
        (``link.py``; None: this process's rooms only)."""
        self.config = config
        self._counters = counters
        self.link = (
            None
            if store is None
            else RoomLink(
                store,
                backlog_s=config.backlog_s,
                max_entries=config.backlog_room_entries,
                inbox=config.listener_queue,
                clock=clock,
                on_loss=config.on_store_loss,
            )
        )
        self._card = card
        self.clock = clock
        #: every room of this process: those with a party, and empty ones waiting with their backlog
        self.rooms: dict[tuple[str, str], Room] = {}
        #: the empty ones, oldest first
        self._waiting: OrderedDict[tuple[str, str], Room] = OrderedDict()
        self.backlogs = Backlogs(config.backlog())
        #: where room.started and room.ended go (``SessionManager.events``'s sink: ``frontend.py``),
        #: told once per room over every process sharing the store (``herald.py``)
        self.events: EventSink = NO_EVENTS
        self.herald = RoomHerald(store, self.link.origin if self.link is not None else "", lambda: self.events)
        self._draining: Draining | None = None
        #: the speaking rates its listeners chose: the room's and the tenants' caps
        self.rates = RoomRates(config, counters, self.rooms, self._tenant_cap)

    # -- listeners

    async def listen(
        self,
        name: str,
        language: str,
        *,
        participant: str = "",
        tenant: Tenant,
        rights: RoomRights,
        speed: float | None = None,
        original: bool = False,
    ) -> Listener:
        """A new listener of room ``name`` in ``language``, its speech at ``speed``
        (None: as each speaker speaks; snapped to the rate grid, ``checks.rate_of``); ``original``: a
        conversation's turns heard in its language with their own audio (``Listener``); ``Listener.close``
        when its call ends. Refused (nothing held) with PERMISSION_DENIED, INVALID_ARGUMENT,
        RESOURCE_EXHAUSTED or UNAVAILABLE (draining), each saying what to do."""
        check_room_name(name)
        check_participant(participant)
        speed = rate_of(speed)
        if not rights.may_listen(name):
            raise PermissionDenied(
                f"this token may not listen to room {shown(name)}: use a token whose listen= (or room=) pattern "
                "covers the room"
            )
        check_rate_allowed(rights, name, speed)
        if self._draining is not None:
            raise NotReady("this server is shutting down and takes no new listeners: connect to another server")
        card = self._card()
        if language not in card.text_codes:
            raise InvalidInput(
                f"unknown language {shown(language)}: listen in a code from ListLanguages with text output"
            )
        room_held, held = await self._take(tenant, name, [("room_listeners", self.config.max_listeners)], "listeners")
        try:
            rate_held = await self.rates.take(tenant, name, language, speed)
        except BaseException:
            self._counters.release(held)
            if room_held is not None:
                self._counters.release(room_held)
            raise
        room, made = self._room(tenant, name, room_held)  # from here on nothing waits: no other call interleaves
        try:
            if language not in room.languages() and len(room.languages()) >= self.config.max_languages:
                raise Overloaded(
                    f"room {shown(name)} is listened in {self.config.max_languages} languages already "
                    "(limits.max_target_languages): listen in one of them "
                    f"({', '.join(sorted(room.languages()))})",
                )
            self.rates.check(room, language, speed)
        except BaseException:
            self._counters.release(held)
            if rate_held is not None:
                self._counters.release(rate_held)
            if made:
                self._maybe_remove(room)
            raise
        self.rates.keep(room, language, speed, rate_held)
        longest = (self.config.max_listen_s, ListenTooLong(self.config.max_listen_s))
        listener = Listener(
            self._leave,
            self.config.listener_queue,
            room,
            language,
            participant,
            held,
            longest,
            speed=speed,
            original=original,
        )
        room.listeners.setdefault(language, set()).add(listener)
        self._cancel_idle(room)
        try:
            for speaker in room.speakers.values():
                speaker.resync()
        except ServiceError:
            room.listeners[language].discard(listener)
            self._counters.release(held)
            self.rates.left(room, language, speed)
            for speaker in room.speakers.values():
                _resync_quietly(speaker)
            self._maybe_remove(room)
            raise
        metrics.room_listener(language, 1)
        self._greet(listener)
        return listener

    async def join(
        self,
        name: str,
        language: str,
        *,
        participant: str = "",
        tenant: Tenant,
        rights: RoomRights,
        speed: float | None = None,
        original: bool = False,
    ) -> Listener:
        """``listen``, and (linked to other processes) the room's listeners everywhere joined
        and its output from there read, its backlog first: UNAVAILABLE if the cluster store
        cannot be reached (nothing held)."""
        listener = await self.listen(
            name, language, participant=participant, tenant=tenant, rights=rights, speed=speed, original=original
        )
        if self.link is None:
            return listener
        room = listener.room
        assert isinstance(room, Room)
        try:
            listener.member = await self.link.listener_joined(room, language, participant, speed)
            others = room.remote_languages() | {lang for lang, group in room.listeners.items() if group - {listener}}
            if language not in others and len(others) >= self.config.max_languages:
                raise Overloaded(
                    f"room {shown(name)} is listened in {self.config.max_languages} languages already "
                    "(limits.max_target_languages): listen in one of them "
                    f"({', '.join(sorted(others))})",
                )
            self.rates.check(room, language, speed, without=listener)
        except BaseException:
            listener.close()
            self.link.stop_reading(room, language)  # a reading its join started, if no one else needs it
            raise
        self._greet(listener)
        return listener

    def _greet(self, listener: Listener) -> None:
        """What a listener gets first: ``started`` and the backlog (made again once the store
        told of other processes' speakers and backlog: the listener has read nothing yet)."""
        room = listener.room
        assert isinstance(room, Room)
        language, participant = listener.language, listener.participant
        backlog = room.backlog.replay(language, participant, self.clock())
        speakers = tuple(
            (s.speaker_id, s.since.get(language, -1))
            for s in room.speakers.values()
            if not (participant and s.participant == participant)
        ) + tuple(
            (sid, since.get(language, -1))
            for sid, p, since in room.remote_speakers
            if not (participant and p == participant)
        )
        listener._first.clear()
        listener._first.append(ListenStarted(room.name, language, participant, len(backlog), speakers))
        listener._first.extend(backlog)

    def _leave(self, listener: Listener) -> None:
        room = listener.room
        assert isinstance(room, Room)
        group = room.listeners.get(listener.language)
        if group is None or listener not in group:
            return
        group.discard(listener)
        if not group:
            del room.listeners[listener.language]
        self._counters.release(listener._held)
        self.rates.left(room, listener.language, listener.speed)
        metrics.room_listener(listener.language, -1)
        metrics.room_listener_left(listener.dropped)
        if self.link is not None and listener.member:
            self.link.listener_left(room, listener.language, listener.member)
        for speaker in room.speakers.values():
            _resync_quietly(speaker)
        self._maybe_remove(room)

    # -- speakers

    async def publish(
        self,
        name: str,
        *,
        session_id: str,
        participant: str = "",
        tenant: Tenant,
        rights: RoomRights,
        own: tuple[str, ...],
        retarget: Callable[[tuple[str, ...], Renditions], int],
        stream_id: str = "",
        render: Render | None = None,
    ) -> Speaker:
        """A stream speaking into room ``name`` (its targets are set at once to what the room
        listens in; ``render``: its final results' speech made again at its listeners' rates,
        ``room.Speaker``); ``Speaker.leave`` when it ends."""
        check_room_name(name)
        check_participant(participant)
        if not rights.may_publish(name):
            raise PermissionDenied(
                f"this token may not publish into room {shown(name)}: use a token whose publish= (or room=) "
                "pattern covers the room"
            )
        room_held, held = await self._take(tenant, name, [], "room_speakers")
        room, _ = self._room(tenant, name, room_held)  # from here on nothing waits: no other call interleaves
        speaker = Speaker(
            room,
            session_id,
            participant,
            own,
            retarget,
            held,
            stream_id,
            clock=self.clock,
            unpublish=self._unpublish,
            render=render,
        )
        room.speakers[session_id] = speaker
        self._cancel_idle(room)
        try:
            speaker.resync()
        except ServiceError:
            del room.speakers[session_id]
            self._counters.release(held)
            self._maybe_remove(room)
            raise
        return speaker

    async def speak(
        self,
        name: str,
        *,
        session_id: str,
        participant: str = "",
        tenant: Tenant,
        rights: RoomRights,
        own: tuple[str, ...],
        retarget: Callable[[tuple[str, ...], Renditions], int],
        stream_id: str = "",
        render: Render | None = None,
    ) -> Speaker:
        """``publish``, and (linked to other processes) announced there, its targets following
        the languages listened in everywhere: UNAVAILABLE if the cluster store cannot be reached
        (nothing held)."""
        speaker = await self.publish(
            name,
            session_id=session_id,
            participant=participant,
            tenant=tenant,
            rights=rights,
            own=own,
            retarget=retarget,
            stream_id=stream_id,
            render=render,
        )
        if self.link is not None:
            try:
                await self.link.speaker_joined(speaker)
            except BaseException:
                speaker.leave()
                raise
        return speaker

    def _unpublish(self, speaker: Speaker) -> None:
        room = speaker.room
        if room.speakers.pop(speaker.session_id, None) is speaker:
            self._counters.release(speaker._held)
        if self.link is not None:
            self.link.speaker_left(speaker)
        self._maybe_remove(room)

    # -- rooms

    async def _take(
        self, tenant: Tenant, name: str, wants: list[tuple[str, int]], kind: str
    ) -> tuple[Held | None, Held]:
        """A party's counts (``wants`` and the tenant's of ``kind``) and, if room ``name`` holds
        none now (new, or empty and waiting with its backlog), the room's: for ``_room``, which runs
        without waiting. A room that gave its slots back while they were taken: taken again."""
        key = (tenant.name, name)
        while True:
            room = self.rooms.get(key)
            room_held = None
            if room is None or not room.held:
                room_held = await self._acquire([("rooms", self.config.max_rooms)], tenant, "rooms")
            try:
                held = await self._acquire(wants, tenant, kind)
            except BaseException:
                if room_held is not None:
                    self._counters.release(room_held)
                raise
            room = self.rooms.get(key)
            if room_held is not None or (room is not None and room.held):
                return room_held, held
            self._counters.release(held)  # the room gave its slots back meanwhile

    def _room(self, tenant: Tenant, name: str, held: Held | None) -> tuple[Room, bool]:
        """Room ``name`` of ``tenant`` with its slots held (``held``, taken by ``_take``, if it
        holds none; else given back), and whether they were taken now (a new room, or an empty one
        waiting with its backlog): then ``_maybe_remove`` gives them back if the caller fails."""
        key = (tenant.name, name)
        room = self.rooms.get(key)
        if room is not None and room.held:
            if held is not None:
                self._counters.release(held)
            return room, False
        assert held is not None  # ``_take`` took them
        metrics.room_opened(1)
        self.herald.opened(tenant.name, name)
        if room is not None:  # empty, waiting with its backlog: in use again
            del self._waiting[key]
            self._cancel_idle(room)
            room.held = held
            return room, True
        room = self.rooms[key] = Room(tenant, name, self.config, held, self.backlogs.room(tenant.name))
        room.link = self.link
        return room, True

    def _cancel_idle(self, room: Room) -> None:
        if room.idle is not None:
            room.idle.cancel()
            room.idle = None

    def _maybe_remove(self, room: Room) -> None:
        """A room whose last party left gives its slots back at once. Its backlog waits ``idle_s``
        (none: the room goes at once), while at most a tenant's room cap of its empty rooms (and
        the node's ``max_rooms``) wait: the oldest go first."""
        if not room.empty or not room.held:
            return
        self._counters.release(room.held)
        room.held = None
        metrics.room_opened(-1)
        self.herald.closed(room.tenant.name, room.name)
        if self.config.idle_s <= 0 or not room.backlog.entries:
            self._remove(room)
            return
        key = (room.tenant.name, room.name)
        self._waiting[key] = room
        room.idle = asyncio.get_running_loop().call_later(self.config.idle_s, self._remove, room)
        most, _ = self._tenant_cap(room.tenant, "rooms")
        mine = [r for (t, _), r in self._waiting.items() if t == room.tenant.name]
        for old in mine[: max(0, len(mine) - most)]:
            self._remove(old)
        while len(self._waiting) > self.config.max_rooms:
            self._remove(next(iter(self._waiting.values())))

    def _remove(self, room: Room) -> None:
        """An empty room goes, its backlog with it (not one that has a party again)."""
        self._cancel_idle(room)
        key = (room.tenant.name, room.name)
        if room.held or self.rooms.get(key) is not room:
            return
        del self.rooms[key]
        self._waiting.pop(key, None)
        room.backlog.clear()

    def _tenant_cap(self, tenant: Tenant, kind: str) -> tuple[int, str]:
        """A tenant's cap of ``kind`` (rooms, listeners, room_speakers) and where it comes from."""
        stated = getattr(tenant.caps, kind)
        if stated is not None:
            return stated, f"{kind}={stated} in the tokens file"
        if kind == "rooms":
            return self.config.max_rooms_per_tenant, "rooms.max_rooms_per_tenant"
        if kind == "listeners":
            return self.config.max_listeners_per_tenant, "rooms.max_listeners_per_tenant"
        if kind == "renditions":
            return self.config.max_renditions_per_tenant, "rooms.max_renditions_per_tenant"
        return UNCAPPED, ""

    async def _acquire(self, wants: list[tuple[str, int]], tenant: Tenant, kind: str) -> Held:
        """The node's counters ``wants`` and the tenant's of ``kind``, or RESOURCE_EXHAUSTED naming
        the full one and the cap or setting that bounds it."""
        cap, where = self._tenant_cap(tenant, kind)
        wants = [*wants, (f"{tenant.name}/{kind}", cap)]
        full = await self._counters.acquire(wants)
        if not isinstance(full, str):
            return full
        limit = dict(wants)[full]
        if "/" in full:
            raise Overloaded(
                f"tenant {tenant.name!r} is at its cap of {limit} {_WHAT[kind]} ({where}); end one of them or retry "
                "shortly",
                retry_after_ms=1000,
            )
        raise Overloaded(
            f"this server is at its capacity of {limit} {_WHAT[kind]} ({_SETTING[kind]}); retry shortly or on "
            "another server",
            retry_after_ms=1000,
        )

    def drain(self, notice: Draining, seconds: float) -> None:
        """The server is shutting down: no new listener; every listener is told, and its listen ends
        (UNAVAILABLE) after ``seconds``."""
        if self._draining is not None:
            return
        self._draining = notice
        listeners = list(self.all_listeners())
        for listener in listeners:
            listener.push(notice)
        error = ShuttingDown("this server shut down: listen again (on another server); the backlog is resent")

        def end_all() -> None:
            for listener in listeners:
                listener.end(error, at_once=False)

        asyncio.get_running_loop().call_later(seconds, end_all)

    async def close(self, timeout_s: float = CLOSE_S) -> None:
        """The server stops, its sessions ended: what is owed to the cluster store and the room
        events is made within ``timeout_s`` (``link.py``, ``herald.py``), the empty rooms' timers
        stop. A room's last party that left on the drain is then told ended, as it would be had
        the server gone on."""
        for room in self.rooms.values():
            self._cancel_idle(room)
        closing = [self.herald.close(timeout_s)]
        if self.link is not None:
            closing.append(self.link.close(timeout_s))
        await asyncio.gather(*closing)

    def all_listeners(self) -> Iterable[Listener]:
        for room in self.rooms.values():
            for group in room.listeners.values():
                yield from group

    async def presence(self, tenant: Tenant, name: str) -> RoomPresence:
        """Who is in room ``name`` of ``tenant`` (the MCP door's ``room_status``): its speakers and
        listeners (by language) on this process, and on the others as the cluster store says now
        (read from it, so that a process with no party of the room answers as well as one with:
        ``StoreUnavailable`` when it cannot be read)."""
        room = self.rooms.get((tenant.name, name))
        here = {lang: len(group) for lang, group in room.listeners.items() if group} if room is not None else {}
        speakers = tuple(s.speaker_id for s in room.speakers.values()) if room is not None else ()
        ears: list[tuple[str, str]] = []
        remote: list[str] = []
        if self.link is not None:
            ears, remote = await self.link.others(tenant.name, name)
        return RoomPresence(name, speakers, tuple(remote), here, dict(Counter(lang for lang, _ in ears)))

    def listener_counts(self) -> Counter[str]:
        """Listeners now, by language (every room)."""
        return Counter(listener.language for listener in self.all_listeners())


_SETTING = {"rooms": "rooms.max_rooms", "listeners": "rooms.max_listeners"}
_WHAT = {"rooms": "open rooms", "listeners": "room listeners", "room_speakers": "room speakers"}


def _resync_quietly(speaker: Speaker) -> None:
    """A speaker's targets after a listener left (fewer languages: it cannot fail but for a bug)."""
    try:
        speaker.resync()
    except ServiceError:
        logger.exception("a room speaker could not be retargeted", extra={"session_id": speaker.speaker_id})
