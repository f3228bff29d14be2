"""A room registry's config (``RoomConfig``) and its one mapping from the settings
(``room_config``: ``RoomSettings``, the stream's target cap, ``cluster.on_redis_loss``).
"""

from __future__ import annotations

from dataclasses import dataclass

from translate_svc.session.rooms.backlog import BacklogConfig
from translate_svc.settings import RoomSettings


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
    #: (language, rate) pairs a room's listeners may choose at once (``rooms.max_rates``)
    max_rates: int = 4
    #: (room, language, rate) renditions a tenant's listeners keep in use on this node when its
    #: tokens-file lines state no ``renditions=`` (``rooms.max_renditions_per_tenant``)
    max_renditions_per_tenant: int = 8
    #: the longest a listener at a rate waits for a result's speech at it (``rooms.rendition_wait_s``)
    rendition_wait_s: float = 3.0
    #: a listen ends (``ListenTooLong``) this long after it began
    max_listen_s: float = 4 * 3600.0
    #: the backlog's bounds: entries and bytes per room, and per tenant (this process)
    backlog_room_entries: int = 256
    backlog_room_bytes: int = 512 * 1024
    backlog_tenant_entries: int = 2048
    backlog_tenant_bytes: int = 4 * 1024 * 1024
    #: a new party while the cluster store is lost: "node" (this process alone) or "refuse" (``link.py``)
    on_store_loss: str = "node"

    def backlog(self) -> BacklogConfig:
        return BacklogConfig(
            self.backlog_s,
            self.backlog_room_entries,
            self.backlog_room_bytes,
            self.backlog_tenant_entries,
            self.backlog_tenant_bytes,
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
        max_rates=rooms.max_rates,
        max_renditions_per_tenant=rooms.max_renditions_per_tenant,
        rendition_wait_s=rooms.rendition_wait_s,
        backlog_room_entries=rooms.backlog_max_entries,
        backlog_room_bytes=rooms.backlog_max_bytes,
        backlog_tenant_entries=rooms.backlog_max_entries_per_tenant,
        backlog_tenant_bytes=rooms.backlog_max_bytes_per_tenant,
        on_store_loss=on_store_loss,
    )
