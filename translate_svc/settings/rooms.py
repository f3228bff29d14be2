"""The rooms' settings (``Settings.rooms``, docs/rooms.md): the backlog, listeners, idle rooms, the
node's and tenants' room caps, listens and the listen page's QR codes.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class RoomSettings(BaseModel):
    """Rooms (docs/rooms.md): one speaker's stream, many listeners, each in a language."""

    #: a listener who joins gets the room's final results of the last this many seconds first (as text)
    backlog_s: float = Field(30.0, ge=0, le=3600)
    #: what the backlog keeps (text only), per room and per tenant (in each server process): at a
    #: bound the oldest go. Bytes are estimated: the texts in UTF-8, 64 B a transcript word, 256 B
    #: an entry (an entry: one final result in one language)
    backlog_max_entries: int = Field(256, ge=1, le=1_000_000)
    backlog_max_bytes: int = Field(512 * 1024, ge=1024, le=1 << 32)
    backlog_max_entries_per_tenant: int = Field(2048, ge=1, le=10_000_000)
    backlog_max_bytes_per_tenant: int = Field(4 * 1024 * 1024, ge=1024, le=1 << 36)
    #: events queued for one listener; beyond, its oldest are dropped (and it is told how many)
    listener_queue: int = Field(64, ge=1, le=4096)
    #: a room whose last party (speaker or listener) left gives its slot back at once; its backlog
    #: is kept this long for a party who comes back (at most a tenant's room cap of such rooms)
    idle_room_s: float = Field(60.0, ge=0, le=86_400)
    #: rooms with a party on the node (every worker together), and listeners (every room together)
    max_rooms: int = Field(256, ge=1, le=1_000_000)
    max_listeners: int = Field(4096, ge=1, le=1_000_000)
    #: a tenant's rooms and listeners on the node when its line in the tokens file states no
    #: ``rooms=`` / ``listeners=`` (well below the ports' call and connection limits)
    max_rooms_per_tenant: int = Field(16, ge=1, le=1_000_000)
    max_listeners_per_tenant: int = Field(256, ge=1, le=1_000_000)
    #: speaking rates a room's listeners may choose at once, counted as (language, rate)
    #: pairs over the room: each is one more vocoder row in each of its speakers' segments (not a
    #: decoder row); beyond, a listener at a new rate is refused naming those in use. 0: none
    max_rates: int = Field(4, ge=0, le=64)
    #: (room, language, rate) renditions a tenant's listeners may keep in use at once (each a
    #: vocoder row in every segment of the room's speakers) when its tokens-file lines state no
    #: ``renditions=``; counted on the node, a pair in use on two processes counting twice
    max_renditions_per_tenant: int = Field(8, ge=0, le=100_000)
    #: the longest a listener at a rate waits for a final result's speech at that rate (it is made
    #: as optional work, after every final waiting for the model): then the result comes at the
    #: speaker's rate (``speech_rate`` says so)
    rendition_wait_s: float = Field(3.0, gt=0, le=600)
    #: whether the demo page's listeners (tenant ``demo``) may choose a rate (their keys are minted
    #: for anyone who opens the page)
    demo_rates: bool = False
    #: a listen (gRPC Listen, a listener's WebSocket) ends this long after it began: listen again
    max_listen_s: float = Field(4 * 3600.0, gt=0, le=7 * 86_400)
    #: the listen page's QR codes (``/listen/<room>/qr.svg``, no token): new codes drawn a second
    #: per process (a token bucket of 2 s' worth; beyond it 503 + Retry-After), and codes kept (by
    #: address, least recently used out): at the defaults drawing takes at most ~8 % of the event loop
    qr_draws_per_s: float = Field(4.0, gt=0, le=1000)
    qr_cache_entries: int = Field(256, ge=0, le=100_000)
    #: one client address's share of ``qr_draws_per_s`` (an IPv6 /64 counts as one address; behind
    #: a proxy every client is the proxy's address: set it to ``qr_draws_per_s`` there)
    qr_source_draws_per_s: float = Field(1.0, gt=0, le=1000)
