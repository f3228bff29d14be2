"""``room.started`` and ``room.ended`` once per room, over every process that holds a party of it:
a room spread over the workers of a node or over pods opens when its first party joins
anywhere and ends when its last one leaves everywhere.

Each process with a party of a room is a member (its ``origin``) of the store's group
``room/<tenant>/<name>/open``. ``join`` returns the group's other members as they were just before,
and ``leave`` how many are left, each atomically: the process whose join found nobody tells
``room.started``; the one whose leave left nobody tells ``room.ended``.

A room's *life* (from its start to its end) has an id, ``room_id`` in both events' data, chosen by
the process that started it and copied by every process that joins while it lasts (a member's
value: ``?`` and its own proposal until it knows the life, then ``=`` and the life). Both events'
webhook-ids are made from it (``room_event_id``), so the same event told twice has the same id: a
receiver de-duplicates by ``webhook-id`` as for every event. When is it told twice: only while the
store is lost, when a process cannot know whether it is first or last and tells what it sees
(at least once, never lost: each process then tells its own opening and its own end), and when a
party joins just as the room's starter leaves (then its ``room_id`` may be its own).

The store calls are made in order by an ``Outbox`` of their own, never awaited by the registry
(which opens and closes rooms synchronously). Event loop only.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable

from translate_svc.cluster.store import ClusterStore, StoreUnavailable
from translate_svc.session.rooms.outbox import Outbox
from translate_svc.webhooks.events import ROOM_ENDED, ROOM_STARTED, Event, EventSink

logger = logging.getLogger(__name__)

KNOWN = b"="
PROPOSED = b"?"


def room_event_id(kind: str, tenant: str, room: str, life: str) -> str:
    """The webhook-id of a room event: the same for the same event of the same life, wherever told."""
    digest = hashlib.sha256(f"{kind}\0{tenant}\0{room}\0{life}".encode()).hexdigest()[:32]
    return f"msg_{digest}"


def _life(others: dict[str, bytes]) -> str | None:
    """The life the other members know (``=``); else, with one other still proposing, its proposal
    (it was the first or took the first's); else None (choose one's own)."""
    for _, value in sorted(others.items()):
        if value.startswith(KNOWN):
            return value[1:].decode()
    proposing = [v for v in others.values() if v.startswith(PROPOSED)]
    if len(proposing) == 1:
        return proposing[0][1:].decode()
    return None


class RoomHerald:
    """Tells each room's start and end once over the processes sharing ``store`` (None: this
    process alone). ``events`` gives where they go (read at each event: the sink is set late)."""

    def __init__(self, store: ClusterStore | None, origin: str, events: Callable[[], EventSink]) -> None:
        self._store = store
        self._origin = origin
        self._events = events
        #: per room (tenant, name): the life this process is part of
        self._lives: dict[tuple[str, str], str] = {}
        self._calls = Outbox("room events")

    def opened(self, tenant: str, name: str) -> None:
        """This process's first party of the room joined (its slots were taken)."""
        if self._store is None:
            self._start(tenant, name, uuid.uuid4().hex)
            return
        self._calls.put(lambda: self._join(tenant, name))

    def closed(self, tenant: str, name: str) -> None:
        """This process's last party of the room left (its slots were given back)."""
        if self._store is None:
            self._end(tenant, name)
            return
        self._calls.put(lambda: self._leave(tenant, name))

    async def close(self, timeout_s: float) -> None:
        """The server stops: the room events due are told (the store's joins and leaves made),
        within ``timeout_s``."""
        await self._calls.drain(timeout_s)

    async def _join(self, tenant: str, name: str) -> None:
        assert self._store is not None
        group = _group(tenant, name)
        mine = uuid.uuid4().hex
        try:
            others = await self._store.join(group, self._origin, PROPOSED + mine.encode())
        except StoreUnavailable:
            logger.warning(
                "room %r of tenant %r: the cluster store is lost, room.started told by this process", name, tenant
            )
            self._start(tenant, name, mine)
            return
        known = _life(others) if others else mine
        life = known or mine
        self._lives[(tenant, name)] = life
        try:
            await self._store.join(group, self._origin, KNOWN + life.encode())
        except StoreUnavailable:
            pass  # its proposal stays: a joiner meanwhile takes it when it is the only one
        if not others:
            self._emit(ROOM_STARTED, tenant, name, life)

    async def _leave(self, tenant: str, name: str) -> None:
        assert self._store is not None
        left = await self._store.leave(_group(tenant, name), self._origin)
        if left is None:
            logger.warning(
                "room %r of tenant %r: the cluster store is lost, room.ended told by this process", name, tenant
            )
        if not left:
            self._end(tenant, name)
        else:
            self._lives.pop((tenant, name), None)

    def _start(self, tenant: str, name: str, life: str) -> None:
        self._lives[(tenant, name)] = life
        self._emit(ROOM_STARTED, tenant, name, life)

    def _end(self, tenant: str, name: str) -> None:
        life = self._lives.pop((tenant, name), None) or uuid.uuid4().hex
        self._emit(ROOM_ENDED, tenant, name, life)

    def _emit(self, kind: str, tenant: str, name: str, life: str) -> None:
        data = {"tenant": tenant, "room": name, "room_id": life}
        self._events().emit(Event(kind, tenant, data, id=room_event_id(kind, tenant, name, life)))


def _group(tenant: str, name: str) -> str:
    return f"room/{tenant}/{name}/open"
