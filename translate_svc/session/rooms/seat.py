"""A room speaker's side for its driver (``registry.py``, ``room.py``): what a stream that speaks into a room does
there, behind one object the driver holds.

``StreamDriver`` holds a ``SpeakerSeat`` for every stream; it ``take``-s its place when the
stream's config names a room (``RoomRegistry.speak``: the stream's targets become its own plus
every language listened in, changed as listeners come and go). From then on the seat gives an
update's targets (``targets``, ``retargeted``), sends every final result and caption to the
room's listeners (``output``: the stream's ``StreamHooks.on_output``), keeps the speaker's own
client to its own targets (``own_view``, ``started``), and ``leave``-s when the stream ends. A
stream that names no room keeps an empty seat: every method passes through. Event loop only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TypeVar

from translate_svc.errors import PermissionDenied, shown
from translate_svc.session.events import RoomJoin, StreamStarted
from translate_svc.session.rooms.registry import RoomRegistry
from translate_svc.session.rooms.room import Render, Renditions, Speaker
from translate_svc.session.task.told import as_told
from translate_svc.session.tenants.tenant import RoomRights, Tenant
from translate_svc.types import InterimResult, SegmentResult

_E = TypeVar("_E")


class SpeakerSeat:
    """One stream's place in the room its config names, if any (see the module's docstring)."""

    def __init__(self, registry: RoomRegistry, tenant: Tenant, rights: RoomRights) -> None:
        self._registry = registry
        self._tenant = tenant
        self._rights = rights  # the rooms its caller may publish into
        self._speaker: Speaker | None = None

    def admits(self, room: RoomJoin | None) -> None:
        """Refuses a stream its caller may open only to speak into a room (``RoomRights.speak_only``:
        a room's speaker key) whose config names no room or another room (``PermissionDenied``)."""
        rights = self._rights
        if rights.speak_only and (room is None or not rights.may_publish(room.name)):
            rooms = ", ".join(shown(p, 70) for p in rights.publish)
            raise PermissionDenied(
                f"this key may only open a session that speaks into room {rooms}: name that room in the "
                "session's config (x_room, or StreamingConfig.room), or use a token for anything else"
            )

    async def take(
        self,
        room: RoomJoin,
        *,
        session_id: str,
        stream_id: str,
        own: tuple[str, ...],
        retarget: Callable[[tuple[str, ...], Renditions], int],
        render: Render | None = None,
    ) -> None:
        """Speak into ``room`` (``retarget``: applies the stream's new targets and the (language,
        rate) pairs its listeners chose, and returns the first segment id that uses them;
        ``render``: makes a final result's speech again at those rates after it is out;
        ``stream_id``: the stream's resume token, how listeners know a speaker without a
        participant across its calls). Refused as ``RoomRegistry.speak`` refuses."""
        self._speaker = await self._registry.speak(
            room.name,
            session_id=session_id,
            stream_id=stream_id,
            participant=room.participant,
            tenant=self._tenant,
            rights=self._rights,
            own=own,
            retarget=retarget,
            render=render,
        )

    def targets(self, own: tuple[str, ...] | None) -> tuple[str, ...] | None:
        """The targets an update asking for ``own`` (None: unchanged) runs with: those and the room's."""
        return own if self._speaker is None or own is None else self._speaker.wanted(own)

    def retargeted(self, own: tuple[str, ...] | None, targets: tuple[str, ...], first_id: int) -> None:
        """An update that asked for ``own`` runs with ``targets`` from segment ``first_id`` on."""
        if self._speaker is not None:
            self._speaker.own = own if own is not None else self._speaker.own
            self._speaker.apply(targets, first_id)

    def output(self, ev: SegmentResult | InterimResult) -> None:
        """A final result or caption of the stream, as it goes out in order: to the listeners."""
        if self._speaker is not None:
            self._speaker.output(ev)

    def own_view(self, ev: _E) -> _E:
        """An event as the stream's own client sees it: translated into its own targets only."""
        return ev if self._speaker is None else self._speaker.own_view(ev)  # type: ignore[return-value]

    def started(self, started: StreamStarted) -> StreamStarted:
        """What the stream's client is told of its task: its own targets (the room's are not its)."""
        if self._speaker is None:
            return started
        return dataclasses.replace(started, task=as_told(started.task, self._speaker.own))

    def leave(self) -> None:
        if self._speaker is not None:
            self._speaker.leave()
