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

Two legs on the same process pass what they send each other directly, in order, never through
the store (they met through it, or on this process alone: below), so a store that is lost never
touches their media. The store lost (docs/deploy.md, "Several pods"): an admitted leg is never
ended; what it cannot write to a partner on another process is counted and dropped
(``translate_svc_phone_pair_lost_total``, the access line's ``pair_lost``), its reads retry, and
the partner as last seen stays until the store answers again (then its presence is read again,
so a leg that was waiting meets a partner that came meanwhile). A new leg, by
``cluster.on_redis_loss`` (``on_loss``): ``refuse``: UNAVAILABLE (close 1013, "try again later");
``node``: it meets a leg of the same call on this process (the third refused as ever), and once
the store answers it takes its place there and joins the call's presence, so a partner on
another process finds it. Event loop only.
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

from translate_svc.cluster.store import FIRST, ClusterStore, Full, Inbox, Lease, StoreState, StoreUnavailable
from translate_svc.cluster.watch import Quiet
from translate_svc.errors import InvalidInput
from translate_svc.observability import metrics
from translate_svc.transport.telephony import pair_wire as wire

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
    its partner; ``on_loss``: a new leg while the store is lost, "node" or "refuse" (see the
    module). Event loop only."""

    def __init__(self, store: ClusterStore, partner_timeout_s: float, on_loss: str = "node") -> None:
        self.store = store
        self.partner_timeout_s = partner_timeout_s
        self.on_loss = on_loss
        #: this process's legs, by id (a partner here is sent to directly), and by call
        self.here: dict[str, PairLeg] = {}
        self.calls: dict[str, list[PairLeg]] = {}
        #: legs admitted while the store was lost ("node"), given their place there once it answers
        self._alone: list[PairLeg] = []
        self._rejoining: asyncio.Task[None] | None = None
        self._back = asyncio.Event()
        self._logged_alone = Quiet(60.0)  # one line a minute at most
        store.on_state(self._state_changed)

    async def join(self, key: PairKey, info: wire.LegInfo, listener: Listener) -> PairLeg:
        """Take one of the call's two places and join it. InvalidInput: the call has two legs
        already, or the cluster holds ``MAX_LEGS``; StoreUnavailable: the store cannot answer and
        ``on_loss`` is "refuse" (the leg is refused; retry)."""
        name = call_name(key)
        try:
            got = await self.store.acquire([(name, 2), (LEGS_CAP, MAX_LEGS)])
        except StoreUnavailable as e:
            if self.on_loss != "node":
                raise unavailable(e) from None
            return self._join_alone(name, info, listener, e)
        if isinstance(got, Full):
            raise InvalidInput(TWO_LEGS if got.name == name else TOO_MANY)
        leg = PairLeg(self.store, name, info, listener, got, self.partner_timeout_s, self)
        self._add(leg)
        try:
            await leg.start()
        except BaseException as e:
            await leg.close()
            if isinstance(e, StoreUnavailable):
                if self.on_loss == "node":  # lost between the two calls: as if lost before
                    return self._join_alone(name, info, listener, e)
                raise unavailable(e) from None
            raise
        return leg

    def _add(self, leg: PairLeg) -> None:
        self.here[leg.id] = leg
        self.calls.setdefault(leg.name, []).append(leg)

    def _remove(self, leg: PairLeg) -> None:
        self.here.pop(leg.id, None)
        legs = self.calls.get(leg.name)
        if legs is not None and leg in legs:
            legs.remove(leg)
            if not legs:
                del self.calls[leg.name]
        if leg in self._alone:
            self._alone.remove(leg)

    def _join_alone(self, name: str, info: wire.LegInfo, listener: Listener, error: StoreUnavailable) -> PairLeg:
        """A leg admitted on this process alone while the store is lost: it meets a leg of its call
        here (a third is refused as ever), and takes its place in the store once it answers."""
        if len(self.calls.get(name, ())) >= 2:
            raise InvalidInput(TWO_LEGS)
        if self._logged_alone.due():
            logger.warning(
                "a two-party leg was admitted on this server alone (cluster.on_redis_loss=node: %s); it meets a "
                "partner on another server once the store is back",
                error.message,
            )
        leg = PairLeg(self.store, name, info, listener, None, self.partner_timeout_s, self)
        self._add(leg)
        self._alone.append(leg)
        leg.start_alone()
        self._rejoin_soon()
        return leg

    def _state_changed(self, state: StoreState) -> None:
        if state is StoreState.UP:
            self._back.set()

    def _rejoin_soon(self) -> None:
        if self._rejoining is None or self._rejoining.done():
            self._rejoining = asyncio.get_running_loop().create_task(self._rejoin(), name="phone-pairs-rejoin")

    async def _rejoin(self) -> None:
        """Until every leg admitted alone has its place in the store (tried every ``RETRY_S``, and at
        once when the store says it is back)."""
        while self._alone:
            leg = self._alone[0]
            try:
                await leg.attach()
            except StoreUnavailable:
                self._back.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(RETRY_S * 2):
                        await self._back.wait()
                continue
            except Exception:
                logger.exception("a two-party leg could not join the cluster store; it stays on this server alone")
            if self._alone and self._alone[0] is leg:
                self._alone.pop(0)


def unavailable(e: StoreUnavailable) -> StoreUnavailable:
    return StoreUnavailable(
        f"two-party calls meet through the cluster store, which cannot answer now ({e}): call again in a moment "
        "(cluster.on_redis_loss=refuse)",
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
        lease: Lease | None,
        partner_timeout_s: float,
        pairs: Pairs | None = None,
    ) -> None:
        self._store = store
        self._pairs = pairs
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
        self._closed = False

    def stream(self, leg: str) -> str:
        return f"{self.name}/leg/{leg}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        inbox = await self._store.watch(self.name)
        self._watching = inbox.close
        await self._store.join(self.name, self.id, self.info.to_bytes())
        self._joined = True
        await self._look()
        if not self.met and self._timer is None:  # (a leg admitted alone keeps the time it had)
            self._timer = loop.call_later(self._partner_timeout_s, self._alone)
        self._tasks = [
            loop.create_task(self._watch(inbox), name="phone-pair-watch"),
            loop.create_task(self._read(), name="phone-pair-read"),
            loop.create_task(self._write(), name="phone-pair-write"),
        ]

    def start_alone(self) -> None:
        """Admitted while the store is lost: meet a leg of the call on this process, if one waits."""
        for other in self._local_others():
            if other.partner is None:
                other._meet(self.id, self.info)
            self._meet(other.id, other.info)
            return
        self._timer = asyncio.get_running_loop().call_later(self._partner_timeout_s, self._alone)

    async def attach(self) -> None:
        """A leg admitted alone takes its place in the store, now that it answers (``StoreUnavailable``:
        not yet). A call that found two legs elsewhere meanwhile: it stays on this process alone."""
        if self._tasks or self._closed:
            return
        got = await self._store.acquire([(self.name, 2), (LEGS_CAP, MAX_LEGS)])
        if isinstance(got, Full):
            logger.warning("a two-party leg admitted alone found its call full in the cluster store: it stays alone")
            return
        self._lease = got
        if self._closed:  # it ended meanwhile: its place goes back
            await self._leave_store()
            return
        try:
            await self.start()
        except BaseException:
            await self._leave_store()
            raise
        if self._closed:  # it ended while it joined: what the joining made goes too
            for task in self._tasks:
                task.cancel()
            self._tasks = []
            if self._watching is not None:
                self._watching()
                self._watching = None
            await self._leave_store()

    def _local_others(self) -> list[PairLeg]:
        """The other legs of this call on this process."""
        if self._pairs is None:
            return []
        return [leg for leg in self._pairs.calls.get(self.name, ()) if leg is not self]

    def _meet(self, partner: str, info: wire.LegInfo) -> None:
        self.partner, self.partner_info, self.met = partner, info, True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _alone(self) -> None:
        self._timer = None
        if not self.met:
            self._listener.alone(self._partner_timeout_s)

    # -- to the partner

    def send(self, message: wire.Message) -> bool:
        """Queue ``message`` for the partner; False: no partner now (nobody to hear it)."""
        if self.partner is None:
            return False
        here = self._pairs.here.get(self.partner) if self._pairs is not None else None
        if here is not None:  # on this process: directly, in order (never through the store)
            asyncio.get_running_loop().call_soon(here._hear, message)
            return True
        if len(self._queue) >= MAX_QUEUED:
            self._queue.popleft()
            self._count_lost(1)
        self._queue.append((self.partner, wire.encode(message)))
        self._idle.clear()
        self._wake.set()
        return True

    def _hear(self, message: wire.Message) -> None:
        """A message from a partner on this process (not once this leg has ended)."""
        if not self._closed:
            self._listener.heard(message)

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
        try:
            while True:
                try:
                    await inbox.get()
                    await self._look()
                except StoreUnavailable:
                    inbox.close()  # (the partner as last seen stays)
                    inbox = await self._watch_again()
                except StopAsyncIteration:
                    return
        finally:
            inbox.close()

    async def _watch_again(self) -> Inbox:
        """The store failed under the watch: once it answers, watch again and look (a partner that
        came, or went, meanwhile)."""
        while True:
            await asyncio.sleep(RETRY_S)
            try:
                inbox = await self._store.watch(self.name)
            except StoreUnavailable:
                continue
            self._watching = inbox.close
            try:
                await self._look()
            except StoreUnavailable:
                inbox.close()
                continue
            return inbox

    async def _look(self) -> None:
        members = await self._store.members(self.name)
        local = {leg.id: leg.info for leg in self._local_others()}
        others = sorted(local) or sorted(m for m in members if m != self.id)
        if not others:
            self.partner = self.partner_info = None
            return
        partner = others[0]
        if partner == self.partner:
            return
        if partner in local:
            info = local[partner]
        else:
            try:
                info = wire.LegInfo.from_bytes(members[partner])
            except wire.WireError as e:
                logger.warning("a two-party partner was ignored: %s", e)
                return
        self._meet(partner, info)

    # -- the end

    async def close(self) -> None:
        """The leg ended: the partner is told (``Left``), what was queued is written (within
        ``FLUSH_S``), then the leg leaves its call and gives its place back. Never raises."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.send(wire.Left())
        if self._pairs is not None:
            self._pairs._remove(self)
            for other in self._local_others():
                if other.partner == self.id:
                    other.partner = other.partner_info = None
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
        await self._leave_store()

    async def _leave_store(self) -> None:
        with contextlib.suppress(StoreUnavailable):
            if self._joined:
                self._joined = False
                await self._store.leave(self.name, self.id)
            if self._lease is not None:
                lease, self._lease = self._lease, None
                await self._store.release(lease)
