"""Two-party calls: the two legs of one call, by the tenant that placed them and the call id both
name (``?call=`` or Twilio's ``customParameters``), meeting through the cluster store
(``cluster/store.py``) wherever each leg landed: any worker of the node, any pod. Each leg's
translation is played into the other leg; a leg never hears its own speech translated.

How (docs/decisions.md, "Two-party legs meet through the cluster store"):

- a leg takes one of its call's two places, a lease on the cap ``call/<tenant>/<id>`` at 2 (all or
  none, so two legs racing on two pods cannot both be second; the third is refused as always), then
  joins the call's presence group with its codec and carrier (``pair_wire.LegInfo``) and watches it:
  that is how each finds the other, and sees it go;
- what a leg sends its partner (its translation, its voice under it, the marks between, and back the
  marks played and the speech cleared: ``pair_wire``) goes, in order, into the partner's own store
  stream (``call/<tenant>/<id>/leg/<partner>``), which only the partner reads. A stream, not pub/sub:
  playout needs every byte and mark, in order;
- a leg whose partner has not come within ``phone.partner_timeout_s`` is ended with that reason.

Call ids are namespaced by tenant: a leg only ever meets a leg of its own tenant. Call ids are
constants written into TwiML and dialplans, so another tenant that names the same id is not
refused (that would tell it the id is in use, and let it take the id first and lock the real
call out): it waits alone in its own namespace, hears nothing of the real call and is heard by
nobody, until its partner timeout (docs/decisions.md).

The store lost under an admitted leg never ends it: what cannot be written is counted and dropped
(``translate_svc_phone_pair_lost_total``, the access line's ``pair_lost``), reads retry. Event loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Callable
from typing import Protocol
from urllib.parse import quote

from translate_svc.cluster.store import FIRST, ClusterStore, Full, Inbox, Lease, StoreUnavailable
from translate_svc.errors import InvalidInput
from translate_svc.observability import metrics
from translate_svc.transport.phone import pair_wire as wire

logger = logging.getLogger(__name__)

#: the most legs of two-party calls at once (every tenant together, across the cluster; each leg
#: also holds one of its tenant's streams, so a tenant's own caps bound its share)
MAX_LEGS = 20_000
#: the cluster-wide cap of ``MAX_LEGS``
LEGS_CAP = "phone/pair-legs"
#: an entry not read within this is trimmed (a listener that far behind has lost its call anyway)
KEEP_S = 30.0
#: the most entries a leg's stream holds
MAX_ENTRIES = 4096
#: messages waiting to be written to the store, at most (past it the oldest are dropped, counted)
MAX_QUEUED = 4096
#: the most bytes one entry carries (several messages that waited together)
MAX_ENTRY_BYTES = 32 * 1024
#: a blocking read waits this long, then reads again
READ_BLOCK_S = 1.0
#: after the store failed a read, the next read waits this long
RETRY_S = 0.5
#: how long a leg that ends waits for what it queued to be written
FLUSH_S = 1.0

#: a two-party call's key: (the tenant's name, the call id both legs name)
PairKey = tuple[str, str]

TWO_LEGS = "this call already has two legs: a two-party call has two (name another `call`)"
TOO_MANY = "too many two-party calls are waiting for their other leg: try again later"


def call_name(key: PairKey) -> str:
    """The store's name of a call: its tenant's and its id, each quoted (neither can reach into
    another's names)."""
    tenant, call = key
    return f"call/{quote(tenant, safe='')}/{quote(call, safe='')}"


class Listener(Protocol):
    """The leg's own side (``loop.PhoneCall``): what its partner sent, as it comes."""

    def heard(self, message: wire.Message) -> None: ...

    def alone(self, seconds: float) -> None:
        """No partner came within ``seconds``."""


class Pairs:
    """The door's two-party calls, over ``store``. ``partner_timeout_s``: how long a leg waits for
    its partner. Event loop only."""

    def __init__(self, store: ClusterStore, partner_timeout_s: float) -> None:
        self.store = store
        self.partner_timeout_s = partner_timeout_s

    async def join(self, key: PairKey, info: wire.LegInfo, listener: Listener) -> PairLeg:
        """Take one of the call's two places and join it. InvalidInput: the call has two legs
        already, or the cluster holds ``MAX_LEGS``; StoreUnavailable: the store cannot answer (the
        leg is refused; retry)."""
        name = call_name(key)
        try:
            got = await self.store.acquire([(name, 2), (LEGS_CAP, MAX_LEGS)])
        except StoreUnavailable as e:
            raise unavailable(e) from None
        if isinstance(got, Full):
            raise InvalidInput(TWO_LEGS if got.name == name else TOO_MANY)
        leg = PairLeg(self.store, name, info, listener, got, self.partner_timeout_s)
        try:
            await leg.start()
        except BaseException as e:
            await leg.close()
            if isinstance(e, StoreUnavailable):
                raise unavailable(e) from None
            raise
        return leg


def unavailable(e: StoreUnavailable) -> StoreUnavailable:
    return StoreUnavailable(
        f"two-party calls meet through the cluster store, which cannot answer now ({e}): call again in a moment",
        retry_after_ms=e.retry_after_ms,
    )


class PairLeg:
    """One leg's place in its call: its partner (once it came), what it sends it (``send``, in
    order, through one writer), and what it receives (handed to its ``Listener``). Event loop only."""

    def __init__(
        self,
        store: ClusterStore,
        name: str,
        info: wire.LegInfo,
        listener: Listener,
        lease: Lease,
        partner_timeout_s: float,
    ) -> None:
        self._store = store
        self.name = name
        self.id = uuid.uuid4().hex
        self.info = info
        self._listener = listener
        self._lease: Lease | None = lease
        self._partner_timeout_s = partner_timeout_s
        #: the partner's id and what it said of itself, while it is there
        self.partner: str | None = None
        self.partner_info: wire.LegInfo | None = None
        #: a partner came (at any time)
        self.met = False
        #: messages that could not be written (the store failed), counted for the access line
        self.lost = 0
        self._queue: deque[tuple[str, bytes]] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: list[asyncio.Task[None]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._watching: Callable[[], None] | None = None
        self._joined = False

    def stream(self, leg: str) -> str:
        return f"{self.name}/leg/{leg}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        inbox = await self._store.watch(self.name)
        self._watching = inbox.close
        await self._store.join(self.name, self.id, self.info.to_bytes())
        self._joined = True
        await self._look()
        if not self.met:
            self._timer = loop.call_later(self._partner_timeout_s, self._alone)
        self._tasks = [
            loop.create_task(self._watch(inbox), name="phone-pair-watch"),
            loop.create_task(self._read(), name="phone-pair-read"),
            loop.create_task(self._write(), name="phone-pair-write"),
        ]

    def _alone(self) -> None:
        self._timer = None
        if not self.met:
            self._listener.alone(self._partner_timeout_s)

    # -- to the partner

    def send(self, message: wire.Message) -> bool:
        """Queue ``message`` for the partner; False: no partner now (nobody to hear it)."""
        if self.partner is None:
            return False
        if len(self._queue) >= MAX_QUEUED:
            self._queue.popleft()
            self._count_lost(1)
        self._queue.append((self.partner, wire.encode(message)))
        self._idle.clear()
        self._wake.set()
        return True

    def _count_lost(self, n: int) -> None:
        if self.lost == 0:
            logger.warning("a two-party leg could not reach its partner through the cluster store: its audio is lost")
        self.lost += n
        metrics.phone_pair_lost(n)

    async def _write(self) -> None:
        while True:
            while not self._queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
            to, first = self._queue.popleft()
            batch, size = [first], len(first)
            while self._queue and self._queue[0][0] == to and size + len(self._queue[0][1]) <= MAX_ENTRY_BYTES:
                size += len(self._queue[0][1])
                batch.append(self._queue.popleft()[1])
            try:
                await self._store.append(self.stream(to), wire.pack(batch), keep_s=KEEP_S, max_len=MAX_ENTRIES)
            except StoreUnavailable:
                self._count_lost(len(batch))

    # -- from the partner

    async def _read(self) -> None:
        after = FIRST
        while True:
            try:
                entries = await self._store.read(self.stream(self.id), after, block_s=READ_BLOCK_S)
            except StoreUnavailable:
                await asyncio.sleep(RETRY_S)  # the store is away: the call goes on, reading again later
                continue
            for entry in entries:
                after = entry.id
                try:
                    messages = wire.unpack(entry.data)
                except wire.WireError as e:
                    logger.warning("a two-party entry was dropped: %s", e)
                    continue
                for message in messages:
                    self._listener.heard(message)

    async def _watch(self, inbox: Inbox) -> None:
        with contextlib.suppress(StopAsyncIteration):
            while True:
                try:
                    await inbox.get()
                    await self._look()
                except StoreUnavailable:
                    return  # (the store is gone: the partner as last seen stays)

    async def _look(self) -> None:
        members = await self._store.members(self.name)
        others = sorted(m for m in members if m != self.id)
        if not others:
            self.partner = self.partner_info = None
            return
        partner = others[0]
        if partner == self.partner:
            return
        try:
            info = wire.LegInfo.from_bytes(members[partner])
        except wire.WireError as e:
            logger.warning("a two-party partner was ignored: %s", e)
            return
        self.partner, self.partner_info, self.met = partner, info, True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- the end

    async def close(self) -> None:
        """The leg ended: the partner is told (``Left``), what was queued is written (within
        ``FLUSH_S``), then the leg leaves its call and gives its place back. Never raises."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.send(wire.Left())
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FLUSH_S):
                    await self._idle.wait()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self._watching is not None:
            self._watching()
            self._watching = None
        with contextlib.suppress(StoreUnavailable):
            if self._joined:
                self._joined = False
                await self._store.leave(self.name, self.id)
            if self._lease is not None:
                lease, self._lease = self._lease, None
                await self._store.release(lease)
