"""The listen page's QR codes (``GET /listen/<room>/qr.svg``): drawn at a bounded rate, and kept.

The route needs no token (a speaker's screen shows the code to a hall), and drawing one with
``segno`` costs 2-20 ms of CPU on the event loop, more for a longer address (the ``Host`` header is
the client's). Drawn for every request, strangers asking for distinct room names or hosts spent
the loop that every other call shares (issue 57: 32 of them made another tenant's results 13 s
late). So:

- **kept**: the last ``entries`` SVGs, least recently used first out, keyed by the exact address
  drawn (scheme, host, room and ``#demo``): a second request for an address is served from here,
  costing what any small answer costs;
- **bounded**: fresh draws, per process, by a token bucket of ``draws_per_s`` a second, holding at
  most ``BURST_S`` seconds' worth. A request beyond it gets ``QrBusy`` with the time until the next
  draw (the door answers 503 with ``Retry-After``); nothing waits in a queue.

At the defaults (4 draws a second of at most ~20 ms each, a 300-character address being the
longest drawn) drawing takes at most about 8 % of the event loop, whatever anyone sends; the
cache holds at most ``entries`` SVGs of at most ~10 KB each.

Pure: the drawing function and the clock are passed in. Event loop only (no locks).
"""

from __future__ import annotations

import io
import math
import time
from collections import OrderedDict
from collections.abc import Callable

import segno

#: the bucket holds this many seconds' worth of draws (a speaker's page and a few at once)
BURST_S = 2.0


class QrBusy(Exception):
    """No draw is left in this second's budget: retry after ``retry_after_s``."""

    def __init__(self, draws_per_s: float, retry_after_s: float) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(
            f"this server draws at most {draws_per_s:g} new QR codes a second (rooms.qr_draws_per_s) and has "
            f"drawn them: retry in {retry_after_s:.1f} s (a code drawn before is served at once)"
        )


def draw_svg(url: str) -> bytes:
    """The QR code of ``url`` as an SVG (segno; error correction M, 6 px modules, a 2-module border)."""
    out = io.BytesIO()
    segno.make(url, error="m").save(out, kind="svg", scale=6, border=2, title=url)
    return out.getvalue()


class QrCodes:
    """QR codes by address: ``get(url)`` gives the cached SVG, or draws it if the bucket allows
    (``QrBusy`` otherwise). ``draws`` counts the draws made (tests, metrics)."""

    def __init__(
        self,
        draws_per_s: float,
        entries: int,
        *,
        draw: Callable[[str], bytes] = draw_svg,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if draws_per_s <= 0:
            raise ValueError("draws_per_s must be positive")
        self.draws_per_s = draws_per_s
        self.entries = entries
        self._draw = draw
        self._clock = clock
        self._most = max(1.0, draws_per_s * BURST_S)
        self._level = self._most
        self._when = clock()
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self.draws = 0

    def __len__(self) -> int:
        return len(self._cache)

    def get(self, url: str) -> bytes:
        svg = self._cache.get(url)
        if svg is not None:
            self._cache.move_to_end(url)
            return svg
        self._take()
        svg = self._draw(url)
        self.draws += 1
        if self.entries > 0:
            self._cache[url] = svg
            while len(self._cache) > self.entries:
                self._cache.popitem(last=False)
        return svg

    def _take(self) -> None:
        """One draw from the bucket, or ``QrBusy``."""
        now = self._clock()
        self._level = min(self._most, self._level + max(0.0, now - self._when) * self.draws_per_s)
        self._when = now
        if self._level < 1.0:
            wait = (1.0 - self._level) / self.draws_per_s
            raise QrBusy(self.draws_per_s, math.ceil(wait * 10) / 10)
        self._level -= 1.0
