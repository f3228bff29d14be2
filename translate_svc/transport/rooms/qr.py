"""The listen page's QR codes (``GET /listen/<room>/qr.svg``): drawn at a bounded rate, and kept.

The route needs no token (a speaker's screen shows the code to a hall), and drawing one with
``segno`` costs 2-20 ms of CPU on the event loop, more for a longer address (the ``Host`` header is
the client's). Drawn for every request, strangers asking for distinct room names or hosts spent
the loop that every other call shares (32 of them made another tenant's results 13 s
late). So:

- **kept**: the last ``entries`` SVGs, least recently used first out, keyed by the exact address
  drawn (scheme, host, room and ``#demo``): a second request for an address is served from here,
  costing what any small answer costs;
- **bounded**: fresh draws, per process, by a token bucket of ``draws_per_s`` a second, holding at
  most ``BURST_S`` seconds' worth. A request beyond it gets ``QrBusy`` with the time until the next
  draw (the door answers 503 with ``Retry-After``); nothing waits in a queue.
- **shared**: in front of the process's bucket, each source (an IPv4 address, an IPv6 /64: what
  one machine can easily hold) has a bucket of its own, ``source_draws_per_s`` a second (a
  quarter of the process's by default), so that one stranger asking for new codes without end
  spends at most its share and a speaker's page still gets its code at once (security finding H15: one
  source spent the whole budget). Sources are kept in an LRU of ``MAX_SOURCES``; one pushed out
  comes back with a full bucket, which the process's bucket still bounds;
- **kept for open rooms**: a room with a speaker or listener on this process (``open_rooms``, a
  snapshot taken at most every ``OPEN_ROOMS_REFRESH_S``) draws from a share of its own (one
  room's: ``source_draws_per_s``, whoever asks) and may take the process's bucket to empty; any
  other name draws only while the bucket holds more than ``OPEN_ROOM_RESERVE`` of what it can hold
  (of a bucket of two draws or more), so that strangers on many addresses, each within its share,
  cannot spend what an open room's page needs (what security finding H15 left: 32 addresses spent the
  whole budget). Strangers asking for an open room's codes (its name is on the hall's screen)
  under ever new Hosts spend that room's share alone.

At the defaults (4 draws a second of at most ~20 ms each, a 300-character address being the
longest drawn) drawing takes at most about 8 % of the event loop, whatever anyone sends; the
cache holds at most ``entries`` SVGs of at most ~10 KB each.

Pure: the drawing function and the clock are passed in. Event loop only (no locks).
"""

from __future__ import annotations

import io
import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

import segno

#: the bucket holds this many seconds' worth of draws (a speaker's page and a few at once)
BURST_S = 2.0
#: sources (and open rooms) whose share is tracked at most (least recently seen out)
MAX_SOURCES = 4096
#: the part of the process's bucket that only open rooms' draws may take
OPEN_ROOM_RESERVE = 0.5
#: the open rooms are looked at most this often (a look walks every room of the process)
OPEN_ROOMS_REFRESH_S = 0.5


class QrBusy(Exception):
    """No draw is left in this second's budget (the process's, or the source's share of it):
    retry after ``retry_after_s``."""

    def __init__(self, draws_per_s: float, retry_after_s: float, *, source: str = "") -> None:
        self.retry_after_s = retry_after_s
        whose = f"for one {source} (rooms.qr_source_draws_per_s)" if source else "(rooms.qr_draws_per_s)"
        super().__init__(
            f"this server draws at most {draws_per_s:g} new QR codes a second {whose} and has drawn them: "
            f"retry in {retry_after_s:.1f} s (a code drawn before is served at once)"
        )


def source_of(peer: str) -> str:
    """The share a request's peer address draws from: an IPv4 address, an IPv6 address's /64 (one
    machine easily holds a whole /64); anything else (a Unix socket) as it is."""
    try:
        address = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return peer
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class _Bucket:
    """A token bucket of ``rate`` a second, holding ``BURST_S`` seconds' worth (at least one)."""

    __slots__ = ("level", "most", "rate", "when")

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.most = max(1.0, rate * BURST_S)
        self.level = self.most
        self.when = now

    def wait_s(self, now: float, keep: float = 0.0) -> float:
        """Refilled to ``now``: 0 if a draw is left above ``keep``, else the seconds until one is."""
        self.level = min(self.most, self.level + max(0.0, now - self.when) * self.rate)
        self.when = now
        need = 1.0 + keep
        return 0.0 if self.level >= need else (need - self.level) / self.rate


def draw_svg(url: str) -> bytes:
    """The QR code of ``url`` as an SVG (segno; error correction M, 6 px modules, a 2-module border)."""
    out = io.BytesIO()
    segno.make(url, error="m").save(out, kind="svg", scale=6, border=2, title=url)
    return out.getvalue()


class QrCodes:
    """QR codes by address: ``get(url, peer, room)`` gives the cached SVG, or draws it if the
    room's share (an open room) or the peer's (any other), and the process's bucket allow
    (``QrBusy`` otherwise). ``open_rooms``: the names of the rooms open on this process now.
    ``draws`` counts the draws made (tests, metrics)."""

    def __init__(
        self,
        draws_per_s: float,
        entries: int,
        *,
        source_draws_per_s: float | None = None,
        draw: Callable[[str], bytes] = draw_svg,
        clock: Callable[[], float] = time.monotonic,
        open_rooms: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        if draws_per_s <= 0 or (source_draws_per_s is not None and source_draws_per_s <= 0):
            raise ValueError("draws_per_s and source_draws_per_s must be positive")
        self.draws_per_s = draws_per_s
        #: one source's share (None, or as much as the process's: no shares kept)
        self.source_draws_per_s = min(draws_per_s, source_draws_per_s or draws_per_s)
        self.entries = entries
        self._draw = draw
        self._clock = clock
        self._bucket = _Bucket(draws_per_s, clock())
        self._sources: OrderedDict[str, _Bucket] = OrderedDict()
        self._rooms: OrderedDict[str, _Bucket] = OrderedDict()
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._open_rooms = open_rooms
        self._open: frozenset[str] = frozenset()
        self._open_at = -math.inf
        self.draws = 0

    def __len__(self) -> int:
        return len(self._cache)

    def get(self, url: str, peer: str = "", room: str = "") -> bytes:
        svg = self._cache.get(url)
        if svg is not None:
            self._cache.move_to_end(url)
            return svg
        self._take(source_of(peer), room)
        svg = self._draw(url)
        self.draws += 1
        if self.entries > 0:
            self._cache[url] = svg
            while len(self._cache) > self.entries:
                self._cache.popitem(last=False)
        return svg

    def _take(self, source: str, room: str) -> None:
        """One draw from the process's bucket and from the open room's share or else ``source``'s,
        or ``QrBusy`` (none spent: a draw refused by the process keeps its share)."""
        now = self._clock()
        if room and self._is_open(room, now):
            share, whose, keep = self._share(self._rooms, room, now), "open room", 0.0
        else:
            share, whose, keep = self._share(self._sources, source, now), "client address", OPEN_ROOM_RESERVE
        wait = self._bucket.wait_s(now, min(keep * self._bucket.most, self._bucket.most - 1.0))
        if wait > 0:
            raise QrBusy(self.draws_per_s, math.ceil(wait * 10) / 10)
        if share is not None:
            wait = share.wait_s(now)
            if wait > 0:
                raise QrBusy(self.source_draws_per_s, math.ceil(wait * 10) / 10, source=whose)
            share.level -= 1.0
        self._bucket.level -= 1.0

    def _share(self, shares: OrderedDict[str, _Bucket], key: str, now: float) -> _Bucket | None:
        """``key``'s share (None: shares are not kept, the process's bucket alone bounds)."""
        if self.source_draws_per_s >= self.draws_per_s:
            return None
        share = shares.get(key)
        if share is None:
            share = shares[key] = _Bucket(self.source_draws_per_s, now)
            while len(shares) > MAX_SOURCES:
                shares.popitem(last=False)
        shares.move_to_end(key)
        return share

    def _is_open(self, room: str, now: float) -> bool:
        if now - self._open_at >= OPEN_ROOMS_REFRESH_S:
            self._open, self._open_at = frozenset(self._open_rooms()), now
        return room in self._open
