"""A room across processes: what the registry (``registry.py``) puts on the cluster store
so that a speaker on one worker or pod reaches listeners on any other.

A process's own speakers reach its own listeners directly (``room.Room.publish``: synchronous, as with
one process); the store carries a room between processes, for each job one primitive
(``cluster/store.py``):

- **final results**: each speaker's final results, cut to each language, are appended to the
  stream ``room/<tenant>/<name>/out/<language>`` (time-trimmed to ``backlog_s``, at most
  ``backlog_max_entries``): a process with listeners in that language reads it (blocking reads
  from the last id it read: nothing missed, nothing twice) and hands what another process
  appended to its listeners, as a local speaker's (``Room.deliver``); the stream is the backlog a
  process seeds its own from when its first listener of that language joins (the reading is
  ``readers.py``'s). Speech goes as Opus, only while some other process listens in that language
  (``wire.py``);
- **live captions**: published on ``room/<tenant>/<name>/captions/<language>`` (droppable);
- **language demand**: every listener is a member of ``room/<tenant>/<name>/ears`` (its language,
  participant and the speaking rate it chose, if any); a process with a speaker in the room
  watches the group and retargets it (its targets, and the rates its speech is made again at);
- **speakers present**: ``room/<tenant>/<name>/speakers`` (id, participant, and from which
  segment each language is on), for a listener's ``started`` event.

The speaker's output path never awaits the store: each speaker has a bounded ``Outbox``
(``outbox.py``) whose own task does its store calls in order; what it drops is counted and logged.

The store lost (docs/rooms.md, "When the cluster store is lost"). An admitted party is never cut:
its room's output to and from other processes stops while the store is down (this process's own
listeners keep hearing its own speakers, directly), and a listener hearing a speaker of another
process is ended UNAVAILABLE saying why (listen again: the backlog is resent). A new party, by
``cluster.on_redis_loss`` (``on_loss``): ``refuse``: UNAVAILABLE with a retry (nothing held);
``node``: admitted on this process alone (it meets this process's speakers and listeners), and
joined to the other processes by a task of its own once the store answers again (its presence
written, its language's output read from when it was admitted): no restart, nothing to redo. When
the store comes back, the rooms with a speaker here read their listeners' languages again and
announce their speakers again (what a restarted Redis forgot).

Event loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import logging
import os
import secrets
import time
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Protocol

from translate_svc.cluster.store import ClusterStore, Inbox, StoreState, StoreUnavailable
from translate_svc.cluster.watch import Quiet
from translate_svc.errors import ServiceError
from translate_svc.session.rooms import wire as room_wire
from translate_svc.session.rooms.listener import Rendering, RoomOutput, snap_rate
from translate_svc.session.rooms.outbox import Op, Outbox
from translate_svc.session.rooms.readers import RETRY_S, ReadRoom, RoomReaders
from translate_svc.types import SPEED_MAX, SPEED_MIN, SegmentResult, Translation

if TYPE_CHECKING:
    from translate_svc.session.tenants.tenant import Tenant


class Room(ReadRoom, Protocol):
    """What the link reads and sets of a room (``room.Room``): a Protocol, so that ``room.py``
    and ``registry.py`` import this module and not the other way round. What its readers read and
    set of it is ``readers.ReadRoom``'s."""

    tenant: Tenant
    name: str
    #: listeners on other processes (language, participant, speaking rate or None), as the
    #: cluster store last said
    remote_ears: list[tuple[str, str, float | None]]

    @property
    def speakers(self) -> Mapping[str, Speaker]: ...

    def remote_languages(self) -> set[str]: ...

    def resync_speakers(self) -> None: ...


class Speaker(Protocol):
    """What the link reads and sets of a room's speaker (``room.Speaker``)."""

    participant: str
    session_id: str
    speaker_id: str
    since: dict[str, int]
    #: its store calls: None while not linked to other processes
    relay: Outbox | None

    @property
    def room(self) -> Room: ...

    def resync(self) -> None: ...


logger = logging.getLogger(__name__)

#: a stream of final results keeps at least this long (``backlog_s`` 0: no backlog, but a reader
#: of another process still needs the entry to be there when it reads)
LIVE_KEEP_S = 10.0


def _key(room: Room) -> str:
    return f"room/{room.tenant.name}/{room.name}"


class RoomLink:
    """The registry's side of the store (see the module). ``clock``: the registry's (monotonic)."""

    def __init__(
        self,
        store: ClusterStore,
        *,
        backlog_s: float,
        max_entries: int,
        inbox: int,
        clock: Callable[[], float],
        on_loss: str = "node",
    ) -> None:
        self.store = store
        #: what a new party gets while the store is lost: "node" (admitted here alone) or "refuse"
        self.on_loss = on_loss
        #: this process among those sharing the store (its own entries it already delivered)
        self.origin = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._keep_s = max(backlog_s, LIVE_KEEP_S)
        self._max_entries = max_entries
        self._ids = itertools.count()
        #: store calls of leaving parties (made in order, never awaited by the leaving)
        self._chores = Outbox("leaves")
        #: the outboxes of speakers that left, while they still make their last calls
        self._leaving: set[Outbox] = set()
        #: per room (its key): the task watching its listeners' languages while it has a local speaker
        self._watchers: dict[str, asyncio.Task[None]] = {}
        #: what this process reads of its rooms from the others (``readers.py``)
        self._readers = RoomReaders(
            store, self.origin, backlog_s=backlog_s, max_entries=max_entries, inbox=inbox, clock=clock
        )
        #: the rooms with a speaker here (their listeners' languages are read again when the store is back)
        self._spoken: dict[str, Room] = {}
        #: parties admitted here alone while the store was lost ("node"), joined once it answers:
        #: listeners by member id (room, language, participant, speaking rate, when admitted: wall
        #: ms), and speakers
        self._alone_listeners: dict[str, tuple[Room, str, str, float | None, int]] = {}
        self._alone_speakers: dict[int, Speaker] = {}
        self._rejoining: asyncio.Task[None] | None = None
        self._back = asyncio.Event()
        self._logged_alone = Quiet(60.0)
        store.on_state(self._state_changed)
        #: per room (its key): the listeners of other processes (member id -> language,
        #: participant, speaking rate)
        self._ears: dict[str, dict[str, tuple[str, str, float | None]]] = {}

    # -- speakers

    async def speaker_joined(self, speaker: Speaker) -> None:
        """Announce ``speaker`` and watch its room's listeners. The store lost: refused
        (``StoreUnavailable``) or, ``on_loss`` "node", speaking on this process alone until it is back."""
        try:
            await self._link_speaker(speaker)
        except StoreUnavailable as e:
            if self.on_loss != "node":
                raise refused(e, "speak into") from None
            self._alone(e, "a speaker")
            self._alone_speakers[id(speaker)] = speaker
            self._rejoin_soon()

    async def _link_speaker(self, speaker: Speaker) -> None:
        room = speaker.room
        key = _key(room)
        await self.store.join(f"{key}/speakers", self._member(speaker), _announce(speaker))
        if speaker.relay is None:
            speaker.relay = Outbox(f"speaker {speaker.speaker_id} of {key}")
        if key not in self._watchers:
            inbox = await self.store.watch(f"{key}/ears")
            try:
                await self._ears_known(room)
                # refused (its error) when it cannot carry what is listened in elsewhere, as a
                # speaker is on the listeners' own process: those listeners go on
                speaker.resync()
            except BaseException:
                inbox.close()
                raise
            room.resync_speakers()
            self._spoken[key] = room
            self._watchers[key] = asyncio.get_running_loop().create_task(
                self._watch(room, inbox), name=f"room ears {key}"
            )

    def _member(self, speaker: Speaker) -> str:
        return f"{self.origin}/{speaker.session_id}"

    def announce(self, speaker: Speaker) -> None:
        """The speaker's languages changed: tell the other processes (in line with its output)."""
        if speaker.relay is not None:
            group, member, value = f"{_key(speaker.room)}/speakers", self._member(speaker), _announce(speaker)
            speaker.relay.put(lambda: self.store.join(group, member, value))

    def sent(
        self, speaker: Speaker, language: str, out: RoomOutput, final: bool, rendering: Rendering | None = None
    ) -> None:
        """One language's cut of the speaker's output, to the other processes (never awaits).
        ``rendering``: its speech being made again at rates; where a listener elsewhere chose one of
        them, the entry waits for it in the speaker's outbox (bounded: ``Rendering``) and carries
        what was made, so those listeners hear their rate."""
        relay = speaker.relay
        if relay is None:
            return
        room = speaker.room
        key = _key(room)
        speech = language in room.remote_languages()
        if not final and not speech and language not in {lang for lang, _, _ in room.remote_ears}:
            return  # a caption nobody elsewhere reads
        wanted = {(lang, rate) for lang, _, rate in room.remote_ears if lang == language and rate is not None}
        later = rendering if rendering is not None and speech and wanted & rendering.asked else None

        def data(made: tuple[Translation, ...] = ()) -> bytes:
            full = out
            again = tuple(t for t in made if t.target_language == language)
            if again and isinstance(out.event, SegmentResult):
                full = RoomOutput(out.speaker, dataclasses.replace(out.event, renditions=again), out.backlog)
            return room_wire.encode(self.origin, full, speaker.participant, speech=speech)

        if final:
            stream, keep_s, max_len = f"{key}/out/{language}", self._keep_s, self._max_entries
            if later is not None:

                async def append_made() -> object:
                    assert later is not None
                    made = await asyncio.shield(later.made)
                    return await self.store.append(stream, data(made), keep_s=keep_s, max_len=max_len)

                relay.put(append_made)
                return
            relay.put(lambda: self.store.append(stream, data(), keep_s=keep_s, max_len=max_len))
        else:
            channel = f"{key}/captions/{language}"
            relay.put(lambda: self.store.publish(channel, data()))

    def refuse(self, speaker: Speaker, languages: Collection[str], error: ServiceError) -> None:
        """``speaker`` cannot carry ``languages`` (listened in on other processes): the listeners
        there that want them now are refused with its error, as on this process (in line with its
        output; named by member id, so that a later listener is not refused for an old refusal)."""
        relay = speaker.relay
        if relay is None:
            return
        key = _key(speaker.room)
        ears = self._ears.get(key, {})
        for language in languages:
            members = sorted(
                m
                for m, (lang, p, _) in ears.items()
                if lang == language and not (speaker.participant and p == speaker.participant)
            )
            if members:
                data = room_wire.encode_refusal(
                    self.origin, speaker.speaker_id, speaker.participant, error.code.value, error.message, members
                )
                relay.put(self._appending(f"{key}/out/{language}", data))

    def _appending(self, stream: str, data: bytes) -> Op:
        return lambda: self.store.append(stream, data, keep_s=self._keep_s, max_len=self._max_entries)

    def speaker_left(self, speaker: Speaker) -> None:
        relay = speaker.relay
        room = speaker.room
        key = _key(room)
        alone = self._alone_speakers.pop(id(speaker), None) is not None
        group, member = f"{key}/speakers", self._member(speaker)
        if relay is not None:
            relay.put(lambda: self.store.leave(group, member))
            relay.close()
            self._leaving = {o for o in self._leaving if not o.done}
            self._leaving.add(relay)
        elif not alone:  # (perhaps announced before the store failed under the rest of its joining)
            self._chores.put(lambda: self.store.leave(group, member))
        if not room.speakers:
            self._spoken.pop(key, None)
            if (task := self._watchers.pop(key, None)) is not None:
                task.cancel()

    async def close(self, timeout_s: float) -> None:
        """The server stops: the store calls already put (leaving parties', speakers' last output)
        are made, within ``timeout_s`` (those left are dropped, counted); then the readers, watchers
        and the rejoin stop."""
        relays = [s.relay for room in self._spoken.values() for s in room.speakers.values() if s.relay is not None]
        await asyncio.gather(*(o.drain(timeout_s) for o in (self._chores, *self._leaving, *relays)))
        self._leaving.clear()
        tasks = [*self._watchers.values(), *self._readers.tasks()]
        if self._rejoining is not None:
            tasks.append(self._rejoining)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._watchers.clear()
        self._readers.clear()

    async def _watch(self, room: Room, inbox: Inbox) -> None:
        try:
            while True:
                try:
                    await inbox.get()
                    await self._ears_changed(room)
                except StoreUnavailable:
                    await asyncio.sleep(RETRY_S)
                    inbox.close()
                    with contextlib.suppress(StoreUnavailable):
                        inbox = await self.store.watch(f"{_key(room)}/ears")
                        await self._ears_changed(room)
                except StopAsyncIteration:
                    return
        finally:
            inbox.close()

    async def _ears_changed(self, room: Room) -> None:
        await self._ears_known(room)
        room.resync_speakers()

    async def others(self, tenant: str, name: str) -> tuple[list[tuple[str, str]], list[str]]:
        """Room ``name`` of ``tenant`` on the other processes, read from the store (the MCP door's
        ``room_status``; ``StoreUnavailable`` when it cannot be read): its listeners' (language,
        participant) and its speakers' ids."""
        key = f"room/{tenant}/{name}"
        mine = self.origin + "/"
        ears = [_ear(v)[:2] for m, v in (await self.store.members(f"{key}/ears")).items() if not m.startswith(mine)]
        speakers = [
            s[0]
            for m, v in (await self.store.members(f"{key}/speakers")).items()
            if not m.startswith(mine) and (s := _speaker(v)) is not None
        ]
        return ears, speakers

    async def _ears_known(self, room: Room) -> None:
        self._remote_ears(room, await self.store.members(f"{_key(room)}/ears"))

    def _remote_ears(self, room: Room, members: Mapping[str, bytes]) -> None:
        ears = self._ears[_key(room)] = {m: _ear(v) for m, v in members.items() if not m.startswith(self.origin + "/")}
        room.remote_ears = list(ears.values())

    # -- listeners

    async def listener_joined(self, room: Room, language: str, participant: str, speed: float | None = None) -> str:
        """Join the room's listeners (the languages and rates wanted anywhere) and read its output in
        ``language`` from the other processes, its backlog first. The store lost: refused
        (``StoreUnavailable``, nothing held) or, ``on_loss`` "node", listening on this process
        alone until it is back. Returns the listener's member id (``listener_left``)."""
        member = f"{self.origin}/{next(self._ids)}"
        admitted_ms = time.time_ns() // 1_000_000
        try:
            await self._link_listener(room, language, participant, speed, member)
        except StoreUnavailable as e:
            if self.on_loss != "node":
                raise refused(e, "listen to") from None
            self._alone(e, "a listener")
            self._alone_listeners[member] = (room, language, participant, speed, admitted_ms)
            self._rejoin_soon()
        return member

    async def _link_listener(
        self, room: Room, language: str, participant: str, speed: float | None, member: str, since: str | None = None
    ) -> None:
        key = _key(room)
        ear = {"l": language, "p": participant} | ({} if speed is None else {"s": speed})
        await self.store.join(f"{key}/ears", member, json.dumps(ear).encode())
        try:
            self._remote_ears(room, await self.store.members(f"{key}/ears"))
            room.remote_speakers = [
                s
                for m, v in (await self.store.members(f"{key}/speakers")).items()
                if not m.startswith(self.origin + "/") and (s := _speaker(v)) is not None
            ]
            await self._readers.start(room, key, language, since)
            refused = self._readers.refusal_of(key, language, member)
            if refused is not None:  # a speaker said so before this process read on
                raise refused
        except BaseException:
            await self._leave_now(f"{key}/ears", member)
            raise

    async def _leave_now(self, group: str, member: str) -> None:
        with contextlib.suppress(StoreUnavailable):
            await self.store.leave(group, member)

    def listener_left(self, room: Room, language: str, member: str) -> None:
        group = f"{_key(room)}/ears"
        if self._alone_listeners.pop(member, None) is None:  # (one admitted alone never joined)
            self._chores.put(lambda: self.store.leave(group, member))
        self.stop_reading(room, language)

    def stop_reading(self, room: Room, language: str) -> None:
        """No listener of ``language`` left here: this process stops reading the room's output in
        it (``RoomReaders.stop`` says why a reader must not outlive its listeners)."""
        self._readers.stop(room, _key(room), language)

    # -- the store lost, and back

    def _alone(self, error: StoreUnavailable, who: str) -> None:
        """A party admitted on this process alone: logged at most once a minute."""
        if self._logged_alone.due():
            logger.warning(
                "%s of a room was admitted on this server alone (cluster.on_redis_loss=node: %s); it joins the other "
                "servers when the store is back",
                who,
                error.message,
            )

    def _state_changed(self, state: StoreState) -> None:
        if state is StoreState.UP:
            self._back.set()
            if self._spoken:
                self._rejoin_soon()

    def _rejoin_soon(self) -> None:
        if self._rejoining is None or self._rejoining.done():
            self._rejoining = asyncio.get_running_loop().create_task(self._rejoin(), name="rooms rejoin")

    async def _rejoin(self) -> None:
        """Until every party admitted alone is joined (tried every ``RETRY_S``, and at once when the
        store says it is back); then the rooms spoken in here refreshed."""
        while True:
            try:
                await self._rejoin_once()
            except StoreUnavailable:
                self._back.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(RETRY_S):
                        await self._back.wait()
                continue
            except Exception:
                logger.exception("rooms could not rejoin the cluster store")
                return
            if not self._alone_listeners and not self._alone_speakers:
                return

    async def _rejoin_once(self) -> None:
        joined = 0
        for key, speaker in list(self._alone_speakers.items()):
            if key in self._alone_speakers:
                await self._link_speaker(speaker)
                if self._alone_speakers.pop(key, None) is None:  # it left meanwhile: leave again
                    self.speaker_left(speaker)
                joined += 1
        for member, (room, language, participant, speed, admitted_ms) in list(self._alone_listeners.items()):
            if member in self._alone_listeners:
                await self._link_listener(room, language, participant, speed, member, since=f"{admitted_ms}-0")
                if self._alone_listeners.pop(member, None) is None:  # it left meanwhile
                    await self._leave_now(f"{_key(room)}/ears", member)
                joined += 1
                room.resync_speakers()
        for room in list(self._spoken.values()):  # what a restarted store forgot, and what changed meanwhile
            for speaker in list(room.speakers.values()):
                group, member = f"{_key(room)}/speakers", self._member(speaker)
                await self.store.join(group, member, _announce(speaker))
                if room.speakers.get(speaker.session_id) is not speaker:  # it left meanwhile
                    await self._leave_now(group, member)
            await self._ears_changed(room)
        if joined:
            logger.info("%d room parties admitted while the cluster store was lost joined the other servers", joined)


def refused(error: StoreUnavailable, what: str) -> StoreUnavailable:
    """A new party refused while the store is lost (``on_loss`` "refuse"): the store's own words,
    its retry kept."""
    return StoreUnavailable(
        f"rooms reach the other servers through the cluster store, which cannot answer now ({error.message}): "
        f"{what} the room again shortly (cluster.on_redis_loss=refuse)",
        retry_after_ms=error.retry_after_ms,
    )


def _announce(speaker: Speaker) -> bytes:
    return json.dumps({"id": speaker.speaker_id, "p": speaker.participant, "since": speaker.since}).encode()


def _ear(value: bytes) -> tuple[str, str, float | None]:
    """A listener's member value: its language, participant and speaking rate ("s"; absent: none
    chosen, as a process from before rates wrote it), on the rate grid (a process from before the
    grid wrote any rate in range: its listener is counted, and served, at the nearest step)."""
    d = json.loads(value)
    speed = d.get("s")
    if not isinstance(speed, int | float):
        return str(d["l"]), str(d["p"]), None
    return str(d["l"]), str(d["p"]), snap_rate(min(max(float(speed), SPEED_MIN), SPEED_MAX))


def _speaker(value: bytes) -> tuple[str, str, dict[str, int]] | None:
    try:
        d = json.loads(value)
        return str(d["id"]), str(d["p"]), {str(k): int(v) for k, v in d["since"].items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
