"""What this process reads of a room from the other processes: for each (room, language)
with a listener here, the stream of final results ``room/<tenant>/<name>/out/<language>`` (its
backlog first, then blocking reads from the last id read: nothing missed, nothing twice) and the
live captions' channel ``room/<tenant>/<name>/captions/<language>``, handed to the room as a local
speaker's output (``Room.deliver``). A speaker's refusal carried on the stream ends the listeners
it names; the store lost under a reader ends the listeners who hear another process's speaker
(docs/rooms.md, "When the cluster store is lost").

A room of its own because it is the link's other direction: ``link.py`` puts this process's
parties on the store (speakers' output, presence, the languages listened in) and owns the store
lost and back; this module only reads, and its state (the readers, a start shared by joiners at
the same time, the refusals its start read) is its own. Nothing here writes to the store.

Event loop only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Protocol

from translate_svc.cluster.store import FIRST, ClusterStore, Inbox, StoreUnavailable, entry_ms, id_key
from translate_svc.errors import ErrorCode, InvalidInput, Overloaded, ServiceError
from translate_svc.session.rooms import wire as room_wire
from translate_svc.session.rooms.listener import RoomOutput

if TYPE_CHECKING:
    from translate_svc.session.rooms.backlog import RoomBacklog

#: a blocking read waits this long, then reads again (so a stopped reader is noticed)
READ_BLOCK_S = 1.0
#: after the store failed under a reader (or the link's watcher, or its rejoin), it tries again
#: after this long
RETRY_S = 1.0


class ReadRoom(Protocol):
    """What a reader reads and sets of a room (``room.Room``; the link's ``Room`` is this and more)."""

    backlog: RoomBacklog
    #: speakers on other processes (id, participant, from which segment each language is on), as
    #: the cluster store last said
    remote_speakers: list[tuple[str, str, dict[str, int]]]

    @property
    def speakers(self) -> Mapping[str, object]: ...

    @property
    def listeners(self) -> Mapping[str, Collection[object]]: ...

    def deliver(
        self, language: str, out: RoomOutput, participant: str, *, final: bool, now: float, remote: bool = False
    ) -> None: ...

    def store_lost(self, language: str, error: ServiceError) -> None: ...

    def refused(self, language: str, members: Collection[str], error: ServiceError) -> None: ...


class RoomReaders:
    """This process's readers of rooms on the store (see the module), keyed by (room key, language).
    ``origin``: this process among those sharing the store (what it appended itself it delivered
    already); ``clock``: the registry's (monotonic)."""

    def __init__(
        self,
        store: ClusterStore,
        origin: str,
        *,
        backlog_s: float,
        max_entries: int,
        inbox: int,
        clock: Callable[[], float],
    ) -> None:
        self.store = store
        self.origin = origin
        self._backlog_s = backlog_s
        self._max_entries = max_entries
        self._inbox = inbox
        self._clock = clock
        #: per (room key, language): the tasks reading its output while it has a local listener
        self._readers: dict[tuple[str, str], list[asyncio.Task[None]]] = {}
        self._starting: dict[tuple[str, str], asyncio.Future[None]] = {}
        #: per (room key, language) read here: listeners a speaker refused in what the reader's start
        #: read (member id -> the error), for a joiner that started it
        self._refusals: dict[tuple[str, str], dict[str, ServiceError]] = {}

    async def start(self, room: ReadRoom, key: str, language: str, since: str | None = None) -> None:
        """This process reads the room's output in ``language`` (started once: joiners at the same
        time wait for the one start); ``since``: an entry id, what came after it is delivered live."""
        at = (key, language)
        if at in self._readers:
            return
        starting = self._starting.get(at)
        if starting is None:
            starting = self._starting[at] = asyncio.ensure_future(self._start(room, key, language, since))
            starting.add_done_callback(lambda _: self._starting.pop(at, None))
        await asyncio.shield(starting)

    def refusal_of(self, key: str, language: str, member: str) -> ServiceError | None:
        """The error a speaker refused listener ``member`` with, in what the reader's start read."""
        return self._refusals.get((key, language), {}).get(member)

    def stop(self, room: ReadRoom, key: str, language: str) -> None:
        """No listener of ``language`` left here (one has left, or a joiner was refused after its
        join started the reading): this process stops reading the room's output in it. A reader
        must not outlive its listeners: keyed by the room's name, it would go on feeding this Room
        object after the room is gone here, and a later listener of a new Room of that name would
        find it running and never be fed."""
        if not room.listeners.get(language):
            for task in self._readers.pop((key, language), []):
                task.cancel()
            self._refusals.pop((key, language), None)
            room.backlog.forget_remote(language)

    def tasks(self) -> list[asyncio.Task[None]]:
        """Every reader's tasks (the link cancels them when the server stops)."""
        return [t for group in self._readers.values() for t in group]

    def clear(self) -> None:
        self._readers.clear()

    async def _start(self, room: ReadRoom, key: str, language: str, since: str | None = None) -> None:
        """Seed the room's backlog in ``language`` with what other processes appended, then read on
        (``since``: from that id on, what is there is delivered live, not seeded)."""
        stream = f"{key}/out/{language}"
        inbox = await self.store.subscribe(f"{key}/captions/{language}", limit=self._inbox)
        try:
            entries = await self.store.read(stream, FIRST, count=self._max_entries)
        except BaseException:
            inbox.close()
            raise
        after = entries[-1].id if entries else FIRST
        if since is not None:
            entries = [e for e in entries if id_key(e.id) <= id_key(since)]
            after = since
        now, wall_ms = self._clock(), time.time() * 1000
        refusals = self._refusals[(key, language)] = {}
        for entry in entries:
            wire, out = room_wire.decode(entry.data)
            age_s = max(0.0, (wall_ms - entry_ms(entry.id)) / 1000)
            if wire.origin == self.origin:
                continue
            if wire.refused is not None:  # perhaps of a joiner whose presence made a speaker try
                code, message, members = wire.refused
                refusals.update(dict.fromkeys(members, refusal(code, message)))
            elif age_s <= self._backlog_s:
                room.backlog.keep(language, now - age_s, out, remote=True)
        loop = asyncio.get_running_loop()
        self._readers[(key, language)] = [
            loop.create_task(self._read(room, language, stream, after), name=f"room reader {stream}"),
            loop.create_task(self._captions(room, language, inbox), name=f"room captions {key}/{language}"),
        ]

    async def _read(self, room: ReadRoom, language: str, stream: str, after: str) -> None:
        """Deliver what other processes append. The store lost under it: the listeners here are
        ended, saying why, unless every speaker of the room is here and none elsewhere was ever
        heard or known (their feed did not break); the reading goes on, for those who come next."""
        lost = False
        heard_remote = False
        while True:
            try:
                entries = await self.store.read(stream, after, block_s=READ_BLOCK_S, count=self._max_entries)
            except StoreUnavailable as e:
                if not lost:
                    lost = True
                    if heard_remote or room.remote_speakers or not room.speakers:
                        room.store_lost(language, e)
                await asyncio.sleep(RETRY_S)
                continue
            lost = False
            for entry in entries:
                after = entry.id
                wire, out = room_wire.decode(entry.data)
                if wire.origin == self.origin:
                    continue
                heard_remote = True
                if wire.refused is not None:
                    code, message, members = wire.refused
                    room.refused(language, members, refusal(code, message))
                else:
                    room.deliver(language, out, wire.participant, final=True, now=self._clock(), remote=True)

    async def _captions(self, room: ReadRoom, language: str, inbox: Inbox) -> None:
        try:
            async for data in inbox:
                wire, out = room_wire.decode(data)
                if wire.origin != self.origin:
                    room.deliver(language, out, wire.participant, final=False, now=self._clock(), remote=True)
        except StoreUnavailable:
            return  # captions are droppable; the final results' reader tells the listeners
        finally:
            inbox.close()


#: a speaker's refusal of a language, as the store carries it (its ``ErrorCode``) -> its error
_REFUSALS: dict[str, type[ServiceError]] = {
    ErrorCode.INVALID_ARGUMENT.value: InvalidInput,
    ErrorCode.RESOURCE_EXHAUSTED.value: Overloaded,
}


def refusal(code: str, message: str) -> ServiceError:
    """The error a listener is refused with when a speaker of another process refused (the link's
    ``refuse``)."""
    return _REFUSALS.get(code, InvalidInput)(message)
