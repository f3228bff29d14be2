"""Rooms: one or more speakers, many listeners, each listener in its own language (issue 47).

A **speaker** is an ordinary stream (any door) whose config names a room (``StreamConfig.room``);
its driver registers it here (``RoomRegistry.publish``). A **listener** subscribes to a room in a
language (``RoomRegistry.listen``; the gRPC door's ``Listen``, the web door's socket). Work is paid
per language, not per listener: each speaker's targets are its own config's targets plus every
language someone else in the room listens in, changed (the stream's ``retarget``) as listeners come
and go, so a hundred listeners in four languages cost four decoder rows per segment. A participant
who speaks and listens is not sent its own speech, nor does its own listening add a target to its
own stream.

Every final result and caption a speaker's stream makes is published (``Speaker.output``, called by
its ``JobTracker`` as the result goes out in order) to the listeners of each language it carries,
cut down to that language: the same segment ids and spans as the speaker's own stream. Final
results of the last ``backlog_s`` seconds are kept per language, as text, bounded per room and per
tenant (``room_backlog.py``); a listener who joins gets them at once (``RoomOutput.backlog``), then
live output. Each listener has a bounded queue: one that falls behind loses its oldest events and
is told how many (``OutputDropped``) before its next one; it never slows the speaker or other
listeners. A listen lasts at most ``max_listen_s``.

Rooms are keyed by (tenant, name): tenants never share one. A room holds a slot of the node's
``max_rooms`` and of its tenant's (``rooms=`` in the tokens file, else ``max_rooms_per_tenant``)
while it has a party (a speaker or a listener); when the last one leaves its slots are released at
once, and its backlog is kept ``idle_s`` longer (a party who comes back within it, or a late
listener, gets it) unless the room is refilled or that many rooms of the tenant (or the node) wait
after it: the oldest waiting go first. Listeners are capped per tenant as rooms are
(``listeners=``, else ``max_listeners_per_tenant``). Rooms reach other workers and pods through
the cluster store (``room_link.py``, which also says what a lost store costs).

Event loop only (no locks): publishing is synchronous and never awaits.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Collection, Iterable
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
from translate_svc.session.events import Draining, StreamConfig

__all__ = ["ListenEvent", "ListenStarted", "Listener", "OutputDropped", "RoomOutput", "RoomRegistry", "Speaker"]
from translate_svc.session.quota import UNCAPPED, Counters, Held, RoomRights, Tenant
from translate_svc.session.room_backlog import BacklogConfig, Backlogs, RoomBacklog
from translate_svc.session.room_link import Outbox, RoomLink
from translate_svc.session.room_listener import Listener, ListenEvent, ListenStarted, OutputDropped, RoomOutput
from translate_svc.settings import RoomSettings
from translate_svc.types import InterimResult, ModelCard, SegmentResult
from translate_svc.webhooks.events import NO_EVENTS, ROOM_ENDED, ROOM_STARTED, Event, EventSink

logger = logging.getLogger(__name__)

#: a room's name: part of a URL (``/listen/<room>``) and of a metrics-free log line
ROOM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: a participant's id: a short plain word
PARTICIPANT = re.compile(r"[A-Za-z0-9._:@-]{0,64}")


@dataclass(frozen=True)
class RoomConfig:
    backlog_s: float = 30.0
    listener_queue: int = 64
    idle_s: float = 60.0
    max_rooms: int = 256
    max_listeners: int = 4096
    #: languages a room may be listened in at once (a speaker's targets: ``limits.max_target_languages``)
    max_languages: int = 4
    #: a tenant's rooms and listeners when its line in the tokens file states no ``rooms=``/``listeners=``
    max_rooms_per_tenant: int = 16
    max_listeners_per_tenant: int = 256
    #: a listen ends (``ListenTooLong``) this long after it began
    max_listen_s: float = 4 * 3600.0
    #: the backlog's bounds: entries and bytes per room, and per tenant (this process)
    backlog_room_entries: int = 256
    backlog_room_bytes: int = 512 * 1024
    backlog_tenant_entries: int = 2048
    backlog_tenant_bytes: int = 4 * 1024 * 1024
    #: a new party while the cluster store is lost: "node" (this process alone) or "refuse" (``room_link.py``)
    on_store_loss: str = "node"

    def backlog(self) -> BacklogConfig:
        return BacklogConfig(
            self.backlog_s,
            self.backlog_room_entries,
            self.backlog_room_bytes,
            self.backlog_tenant_entries,
            self.backlog_tenant_bytes,
        )


class ListenTooLong(LimitReached):
    """A listen reached ``rooms.max_listen_s``: it ended; listening again goes on (OUT_OF_RANGE)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"this listen reached its longest, {seconds:g} s (rooms.max_listen_s): listen again to go on "
            "(the room's backlog is sent first)",
            reason="max_listen_duration",
        )


# -- speakers -------------------------------------------------------------------------------------


class Speaker:
    """A stream speaking into a room (made by ``RoomRegistry.publish``). ``retarget(targets)``
    applies the stream's new targets (raises ``InvalidInput`` if it cannot) and returns the first
    segment id that uses them. Call ``leave`` when the stream ends."""

    def __init__(
        self,
        registry: RoomRegistry,
        room: Room,
        session_id: str,
        participant: str,
        own: tuple[str, ...],
        retarget: Callable[[tuple[str, ...]], int],
        held: Held,
        stream_id: str = "",
    ) -> None:
        self._registry = registry
        self.room = room
        self.session_id = session_id
        #: how listeners see it: its participant id, else its stream's id across calls (its resume
        #: token: a stream resumed on another server stays the same speaker), else its session id
        self.speaker_id = participant or stream_id or session_id
        self.participant = participant
        self.own = own
        self._retarget = retarget
        self._held = held
        #: the targets the stream runs with now, and from which segment id each language is on
        self.targets: tuple[str, ...] = own
        self.since: dict[str, int] = dict.fromkeys(own, 0)
        self._left = False
        #: the id after the last final result published (older captions are stale)
        self.finals = 0
        #: its store calls (``room_link.py``): None while not linked to other processes
        self.relay: Outbox | None = None

    def wanted(self, own: tuple[str, ...] | None = None) -> tuple[str, ...]:
        """Its own targets, then every language listened in by someone else, in a stable order."""
        own = self.own if own is None else own
        others = sorted(lang for lang in self.room.languages_for(self.participant) if lang not in own)
        return (*own, *others)

    def apply(self, targets: tuple[str, ...], first_id: int) -> None:
        """The stream now runs with ``targets`` from segment ``first_id`` on."""
        for lang in targets:
            if lang not in self.targets or lang not in self.since:
                self.since[lang] = first_id
        for lang in list(self.since):
            if lang not in targets:
                del self.since[lang]
        self.targets = targets
        if self._registry.link is not None:
            self._registry.link.announce(self)

    def resync(self) -> None:
        """Retarget the stream to what the room wants now (``InvalidInput`` if it cannot)."""
        wanted = self.wanted()
        if set(wanted) != set(self.targets):
            self.apply(wanted, self._retarget(wanted))

    def own_view(self, ev: object) -> object:
        """The speaker's own stream sees only its own targets (nobody is sent its own speech
        translated into languages it did not ask for)."""
        if isinstance(ev, SegmentResult | InterimResult) and any(
            t.target_language not in self.own for t in ev.translations
        ):
            return dataclasses.replace(
                ev, translations=tuple(t for t in ev.translations if t.target_language in self.own)
            )
        return ev

    def output(self, ev: object) -> None:
        """A final result or a caption of the stream, as it goes out in order: to the listeners."""
        if self._left or not isinstance(ev, SegmentResult | InterimResult):
            return
        if isinstance(ev, SegmentResult):
            self.finals = ev.segment_id + 1
        elif ev.segment_id < self.finals:
            return  # a caption its segment's final result already superseded
        self.room.publish(self, ev, self._registry.clock())

    def leave(self) -> None:
        if self._left:
            return
        self._left = True
        self._registry._unpublish(self)


# -- rooms ----------------------------------------------------------------------------------------


class Room:
    def __init__(self, tenant: Tenant, name: str, config: RoomConfig, held: Held | None, backlog: RoomBacklog) -> None:
        self.tenant = tenant
        self.name = name
        self._config = config
        #: the room counters it holds while it has a party (none: empty, waiting with its backlog)
        self.held = held
        self.speakers: dict[str, Speaker] = {}
        self.listeners: dict[str, set[Listener]] = {}  # by language
        #: final results of the last ``backlog_s`` seconds, per language, text only, bounded
        self.backlog = backlog
        self.idle: asyncio.TimerHandle | None = None
        #: listeners on other processes (language, participant), and speakers there (id,
        #: participant, from which segment each language is on), as the cluster store last said
        self.remote_ears: list[tuple[str, str]] = []
        self.remote_speakers: list[tuple[str, str, dict[str, int]]] = []
        #: the registry's link to other processes (None: this process only)
        self.link: RoomLink | None = None

    @property
    def empty(self) -> bool:
        return not self.speakers and not any(self.listeners.values())

    def languages_for(self, participant: str) -> set[str]:
        """Languages listened in by listeners other than ``participant`` (empty: nobody in
        particular), on this process and on the others."""
        here = {
            lang
            for lang, group in self.listeners.items()
            if any(not participant or listener.participant != participant for listener in group)
        }
        return here | {lang for lang, p in self.remote_ears if not participant or p != participant}

    def languages(self) -> set[str]:
        return {lang for lang, group in self.listeners.items() if group} | self.remote_languages()

    def remote_languages(self) -> set[str]:
        return {lang for lang, _ in self.remote_ears}

    def resync_speakers(self) -> None:
        """The languages listened in on other processes changed: every speaker here follows. One
        that cannot carry a language wanted there (too many targets, a language its model lacks)
        has that language's listeners refused with its error, as its own process refuses a listener
        (``room_link.py``): never an OK that delivers nothing."""
        for speaker in list(self.speakers.values()):
            try:
                speaker.resync()
            except ServiceError as e:
                missing = [lang for lang in speaker.wanted() if lang not in speaker.targets]
                logger.info(
                    "a room speaker cannot add %s for listeners on other servers: %s",
                    ", ".join(missing),
                    e.message,
                    extra={"session_id": speaker.session_id},
                )
                if self.link is not None:
                    self.link.refuse(speaker, missing, e)

    def deliver(
        self, language: str, out: RoomOutput, participant: str, *, final: bool, now: float, remote: bool = False
    ) -> None:
        """One language's cut of a speaker's output (``participant``: the speaker's; ``remote``: a
        speaker of another process) to this process's listeners of it, and (a final result) into
        the backlog."""
        if final:
            self.backlog.keep(language, now, out, remote=remote)
        for listener in self.listeners.get(language) or ():
            if not (participant and listener.participant == participant):
                listener.push(out)

    def store_lost(self, language: str, error: ServiceError) -> None:
        """The store failed under this process's reading of ``language``, whose output may come from
        another process (``room_link.py`` decides): its listeners here are told (ended UNAVAILABLE,
        saying why)."""
        lost = NotReady(
            "this room's speakers on other servers can no longer reach this listen (the cluster store is "
            "unreachable): listen again shortly",
            retry_after_ms=1000,
        )
        logger.warning("a room's listeners lost the cluster store: %s", error.message)
        for listener in list(self.listeners.get(language) or ()):
            listener.end(lost, at_once=False)

    def refused(self, language: str, members: Collection[str], error: ServiceError) -> None:
        """A speaker of another process cannot carry ``language`` for the listeners ``members``
        (their member ids): those of this process end at once with its error."""
        for listener in list(self.listeners.get(language) or ()):
            if listener.member in members:
                listener.end(error)

    def publish(self, speaker: Speaker, ev: SegmentResult | InterimResult, now: float) -> None:
        final = isinstance(ev, SegmentResult)
        by_lang = {t.target_language: t for t in ev.translations}
        if (
            isinstance(ev, SegmentResult) and ev.error is not None
        ):  # a failed segment: every language that waited for it
            langs = [lang for lang, first in speaker.since.items() if first <= ev.segment_id]
        else:
            langs = list(by_lang)
        remote = self.remote_languages() if self.link is not None else set()
        for lang in langs:
            if not final and not self.listeners.get(lang) and lang not in remote:
                continue
            t = by_lang.get(lang)
            cut = dataclasses.replace(ev, translations=(t,) if t is not None else ())
            out = RoomOutput(speaker.speaker_id, cut)
            self.deliver(lang, out, speaker.participant, final=final, now=now)
            if self.link is not None:
                self.link.sent(speaker, lang, out, final)


# -- the registry ---------------------------------------------------------------------------------


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
        (``room_link.py``; None: this process's rooms only)."""
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
        #: where room.started and room.ended go (``SessionManager.events``'s sink: ``frontend.py``)
        self.events: EventSink = NO_EVENTS
        self._draining: Draining | None = None

    # -- listeners

    async def listen(
        self, name: str, language: str, *, participant: str = "", tenant: Tenant, rights: RoomRights
    ) -> Listener:
        """A new listener of room ``name`` in ``language``; ``Listener.close`` when its call ends.
        Refused (nothing held) with PERMISSION_DENIED, INVALID_ARGUMENT, RESOURCE_EXHAUSTED or
        UNAVAILABLE (draining), each saying what to do."""
        check_room_name(name)
        check_participant(participant)
        if not rights.may_listen(name):
            raise PermissionDenied(
                f"this token may not listen to room {shown(name)}: use a token whose listen= (or room=) pattern "
                "covers the room"
            )
        if self._draining is not None:
            raise NotReady("this server is shutting down and takes no new listeners: connect to another server")
        card = self._card()
        if language not in card.text_codes:
            raise InvalidInput(
                f"unknown language {shown(language)}: listen in a code from ListLanguages with text output"
            )
        room_held, held = await self._take(tenant, name, [("room_listeners", self.config.max_listeners)], "listeners")
        room, made = self._room(tenant, name, room_held)  # from here on nothing waits: no other call interleaves
        try:
            if language not in room.languages() and len(room.languages()) >= self.config.max_languages:
                raise Overloaded(
                    f"room {shown(name)} is listened in {self.config.max_languages} languages already "
                    "(limits.max_target_languages): listen in one of them "
                    f"({', '.join(sorted(room.languages()))})",
                )
        except BaseException:
            self._counters.release(held)
            if made:
                self._maybe_remove(room)
            raise
        longest = (self.config.max_listen_s, ListenTooLong(self.config.max_listen_s))
        listener = Listener(self._leave, self.config.listener_queue, room, language, participant, held, longest)
        room.listeners.setdefault(language, set()).add(listener)
        self._cancel_idle(room)
        try:
            for speaker in room.speakers.values():
                speaker.resync()
        except ServiceError:
            room.listeners[language].discard(listener)
            self._counters.release(held)
            for speaker in room.speakers.values():
                _resync_quietly(speaker)
            self._maybe_remove(room)
            raise
        metrics.room_listener(language, 1)
        self._greet(listener)
        return listener

    async def join(
        self, name: str, language: str, *, participant: str = "", tenant: Tenant, rights: RoomRights
    ) -> Listener:
        """``listen``, and (linked to other processes) the room's listeners everywhere joined
        and its output from there read, its backlog first: UNAVAILABLE if the cluster store
        cannot be reached (nothing held)."""
        listener = await self.listen(name, language, participant=participant, tenant=tenant, rights=rights)
        if self.link is None:
            return listener
        room = listener.room
        assert isinstance(room, Room)
        try:
            listener.member = await self.link.listener_joined(room, language, participant)
            others = room.remote_languages() | {lang for lang, group in room.listeners.items() if group - {listener}}
            if language not in others and len(others) >= self.config.max_languages:
                raise Overloaded(
                    f"room {shown(name)} is listened in {self.config.max_languages} languages already "
                    "(limits.max_target_languages): listen in one of them "
                    f"({', '.join(sorted(others))})",
                )
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
        retarget: Callable[[tuple[str, ...]], int],
        stream_id: str = "",
    ) -> Speaker:
        """A stream speaking into room ``name`` (its targets are set at once to what the room
        listens in); ``Speaker.leave`` when it ends."""
        check_room_name(name)
        check_participant(participant)
        if not rights.may_publish(name):
            raise PermissionDenied(
                f"this token may not publish into room {shown(name)}: use a token whose publish= (or room=) "
                "pattern covers the room"
            )
        room_held, held = await self._take(tenant, name, [], "room_speakers")
        room, _ = self._room(tenant, name, room_held)  # from here on nothing waits: no other call interleaves
        speaker = Speaker(self, room, session_id, participant, own, retarget, held, stream_id)
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
        retarget: Callable[[tuple[str, ...]], int],
        stream_id: str = "",
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
        self.events.emit(Event(ROOM_STARTED, tenant.name, {"tenant": tenant.name, "room": name}))
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
        self.events.emit(Event(ROOM_ENDED, room.tenant.name, {"tenant": room.tenant.name, "room": room.name}))
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


def check_speaker(config: StreamConfig) -> None:
    """What a room speaker's config needs: a source language (or detection), so that it runs as
    ASR only while nobody listens; segment mode (simultaneous commits are not carried into rooms)."""
    if not config.source_language and config.detect is None:
        raise InvalidInput(
            "a stream that speaks into a room needs source_language (or language_detection): it runs with no "
            "target while nobody listens"
        )
    if config.simultaneous is not None:
        raise InvalidInput(
            "simultaneous mode is not available in a room yet: leave `simultaneous` unset for a stream with `room`"
        )


def check_room_name(name: str) -> None:
    if not ROOM_NAME.fullmatch(name):
        raise InvalidInput(
            f"room name {shown(name)} is not valid: use 1-64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit"
        )


def check_participant(participant: str) -> None:
    if not PARTICIPANT.fullmatch(participant):
        raise InvalidInput(
            "participant is not valid: use at most 64 letters, digits, '.', '_', ':', '@' or '-' (or none)"
        )


def room_config(rooms: RoomSettings, max_languages: int, on_store_loss: str = "node") -> RoomConfig:
    """``RoomSettings`` -> the registry's config (the one mapping of these settings);
    ``on_store_loss``: ``cluster.on_redis_loss``."""
    return RoomConfig(
        backlog_s=rooms.backlog_s,
        listener_queue=rooms.listener_queue,
        idle_s=rooms.idle_room_s,
        max_rooms=rooms.max_rooms,
        max_listeners=rooms.max_listeners,
        max_languages=max_languages,
        max_rooms_per_tenant=rooms.max_rooms_per_tenant,
        max_listeners_per_tenant=rooms.max_listeners_per_tenant,
        max_listen_s=rooms.max_listen_s,
        backlog_room_entries=rooms.backlog_max_entries,
        backlog_room_bytes=rooms.backlog_max_bytes,
        backlog_tenant_entries=rooms.backlog_max_entries_per_tenant,
        backlog_tenant_bytes=rooms.backlog_max_bytes_per_tenant,
        on_store_loss=on_store_loss,
    )
