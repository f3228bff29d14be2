"""``RedisStore``: the cluster store of several pods, one Redis 7 (``cluster.redis_url``) through
redis-py's asyncio client. What each job keeps in Redis is in ``redis_scripts.py`` (and
docs/decisions.md): sorted sets scored by expiry for leases and members, Lua scripts for every
check-and-set (on Redis's clock), Streams trimmed by time and length, pub/sub for what may drop.

Faults. Every call is bounded by ``op_timeout_s`` (a blocking read by its own time too). A Redis
that cannot be reached at ``start`` is a ``StoreUnavailable`` naming the URL (never its password).
Lost mid-run (a refused connection, a timeout, a replica that turned read-only), the store turns
``DOWN`` at once (``on_state`` listeners: health, ``/metrics``, ``cluster.on_redis_loss``), every
operation raises ``StoreUnavailable`` without waiting, and a task reconnects with backoff (no
restart). Once Redis answers again the store rejoins before it turns ``UP``: every lease and
membership this holder has is written back (a restarted Redis has none; nothing admitted is cut,
even if that puts a cap over its limit for a while) and every subscription is made again.
Messages published while it was down are lost (pub/sub is droppable); stream entries are not.
``release`` and ``leave`` never raise for Redis's loss: what they could not remove expires
``lease_s`` later, never renewed.

The holder is this process (a random name): its store renews every lease and membership every
``lease_s / 3``, and sweeps the groups it watches so that an expired member is told about. Event
loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from translate_svc.cluster import redis_scripts as lua
from translate_svc.cluster.store import (
    FIRST,
    Entry,
    Full,
    Inbox,
    Lease,
    StateReport,
    StoreState,
    StoreUnavailable,
    check_wants,
    id_key,
)

if TYPE_CHECKING:
    from translate_svc.cluster.store import ClusterStore

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: what counts as Redis being lost (not a bug in a request)
LOST = (RedisConnectionError, RedisTimeoutError, ReadOnlyError, OSError, TimeoutError)
#: how long the reconnecting task waits after a failed try: doubling from the first to the last
BACKOFF_S = (0.05, 2.0)
#: pairs of (key, member) a renewal script takes at once
RENEW_BATCH = 256


def shown_url(url: str) -> str:
    """``url`` for a message or a log: its password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class RedisStore:
    """Implements ``ClusterStore`` (store.py) over Redis at ``url``. Event loop only."""

    def __init__(
        self,
        url: str,
        *,
        password: str | None = None,
        lease_s: float = 15.0,
        prefix: str = "translate-svc:",
        op_timeout_s: float = 2.0,
    ) -> None:
        self.url = shown_url(url)
        self.lease_s = lease_s
        self.prefix = prefix
        self.op_timeout_s = op_timeout_s
        self.holder = secrets.token_hex(6)
        # one retry at once, on a fresh connection: a pooled one that a restarted Redis closed; beyond
        # that a lost Redis is this store's to notice, report and reconnect to
        self._client = aioredis.Redis.from_url(
            url,
            password=password,
            socket_connect_timeout=op_timeout_s,
            socket_timeout=None,  # every call has its own deadline (a blocking read a longer one)
            retry=Retry(NoBackoff(), 1),
            health_check_interval=0,
        )
        self._scripts = {name: self._client.register_script(getattr(lua, name)) for name in lua.SCRIPTS}
        self._report = StateReport()
        self._up = asyncio.Event()
        self._error = f"Redis at {self.url} is not connected yet"
        self._down_since = 0.0
        self._ids = itertools.count()
        #: what this holder has, renewed and written back on rejoin
        self._leases: dict[str, Lease] = {}
        self._members: dict[str, dict[str, bytes]] = {}  # group -> member -> value
        #: subscriptions by Redis channel (a watch is one on its group's change channel)
        self._channels: dict[str, set[Inbox]] = {}
        self._confirming: dict[str, asyncio.Future[None]] = {}
        self._pubsub: PubSub | None = None
        #: SUBSCRIBE and UNSUBSCRIBE go one at a time, each after a look at what is wanted now: a
        #: channel left and subscribed again at once ends subscribed
        self._subscribing = asyncio.Lock()
        self._channels_changed = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reconnecting: asyncio.Task[None] | None = None
        self._closed = False

    # -- state

    @property
    def state(self) -> StoreState:
        return self._report.state

    @property
    def error(self) -> str:
        """Why it is down (the last error), for health and logs."""
        return self._error

    def on_state(self, listener: Callable[[StoreState], None]) -> None:
        self._report.on_state(listener)

    def _set_state(self, state: StoreState) -> None:
        if state is StoreState.UP:
            self._up.set()
        else:
            self._up.clear()
        self._report.set(state)

    async def start(self) -> None:
        try:
            async with asyncio.timeout(self.op_timeout_s):
                await self._client.ping()
        except LOST as e:
            raise StoreUnavailable(
                f"cannot reach Redis at {self.url} (cluster.redis_url): {_reason(e)}; start it, or correct the "
                "URL (and cluster.redis_password_file)"
            ) from None
        self._set_state(StoreState.UP)
        self._spawn(self._listen(), "cluster-redis-pubsub")
        self._spawn(self._tick(), "cluster-redis-renew")

    async def close(self) -> None:
        """Give back what this holder has (briefly: what is not given back expires), disconnect."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._report.state is StoreState.UP:
            with contextlib.suppress(StoreUnavailable, *LOST):
                for lease in list(self._leases.values()):
                    await self.release(lease)
                for group, members in list(self._members.items()):
                    for member in list(members):
                        await self.leave(group, member)
        self._set_state(StoreState.DOWN)
        self._error = f"the cluster store of Redis at {self.url} is closed"
        await self._client.aclose()

    def _spawn(self, coro: Awaitable[None], name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- calls and faults

    async def _run(self, call: Callable[[], Awaitable[T]], *, wait_s: float = 0.0) -> T:
        if self._report.state is not StoreState.UP:
            raise StoreUnavailable(self._unavailable())
        try:
            async with asyncio.timeout(self.op_timeout_s + wait_s):
                return await call()
        except LOST as e:
            self._lost(e)
            raise StoreUnavailable(self._unavailable()) from None

    async def _script(self, name: str, keys: Sequence[str], args: Sequence[Any], *, wait_s: float = 0.0) -> Any:
        script = self._scripts[name]
        return await self._run(lambda: script(keys=list(keys), args=list(args)), wait_s=wait_s)

    def _unavailable(self) -> str:
        if self._closed:
            return self._error
        down = time.monotonic() - self._down_since
        return f"Redis at {self.url} is unreachable ({self._error}, for {down:.0f} s); retry shortly"

    def _lost(self, error: BaseException) -> None:
        if self._report.state is not StoreState.UP or self._closed:
            return
        self._error = _reason(error)
        self._down_since = time.monotonic()
        logger.error("lost Redis at %s (%s): reconnecting", self.url, self._error)
        self._set_state(StoreState.DOWN)
        if self._reconnecting is None or self._reconnecting.done():
            self._reconnecting = self._spawn(self._reconnect(), "cluster-redis-reconnect")

    async def _reconnect(self) -> None:
        """Until Redis answers; then rejoin and turn UP."""
        wait, longest = BACKOFF_S
        while not self._closed:
            await asyncio.sleep(wait)
            try:
                async with asyncio.timeout(self.op_timeout_s):
                    await self._client.ping()
                    await self._rejoin()
            except LOST as e:
                self._error = _reason(e)
                wait = min(longest, wait * 2)
                continue
            logger.warning(
                "Redis at %s is back after %.1f s: rejoined with %d leases and %d memberships",
                self.url,
                time.monotonic() - self._down_since,
                len(self._leases),
                sum(len(m) for m in self._members.values()),
            )
            self._set_state(StoreState.UP)
            return

    async def _rejoin(self) -> None:
        """Write back every lease and membership (a restarted Redis lost them: same as a renewal)."""
        await self._renew_all()

    async def _renew_all(self) -> None:
        ttl = round(self.lease_s * 1000)
        pairs = [(self._key("l", name), lease.id) for lease in self._leases.values() for name in lease.names]
        for start in range(0, len(pairs), RENEW_BATCH):
            batch = pairs[start : start + RENEW_BATCH]
            await self._scripts["RENEW"](keys=[k for k, _ in batch], args=[ttl, *(m for _, m in batch)])
            # a lease released while its renewal was on the way may have been written back after
            # its release removed it (RENEW adds, so that a rejoin restores): remove it again
            gone = [(key, member) for key, member in batch if member not in self._leases]
            if gone:
                async with self._client.pipeline(transaction=False) as pipe:
                    for key, member in gone:
                        pipe.zrem(key, member)
                    await pipe.execute()
        for group, members in list(self._members.items()):
            items = list(members.items())
            for start in range(0, len(items), RENEW_BATCH):
                args: list[Any] = [group]
                for member, value in items[start : start + RENEW_BATCH]:
                    args += [member, value]
                await self._scripts["RENEW_MEMBERS"](keys=self._group_keys(group), args=[*args, ttl])

    async def _tick(self) -> None:
        """Renew every ``lease_s / 3``; sweep the watched groups more often (expired members told)."""
        every = min(1.0, self.lease_s / 4)
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(every)
            if self._report.state is not StoreState.UP:
                continue
            try:
                if time.monotonic() - renewed >= self.lease_s / 3:
                    await self.renew()
                    renewed = time.monotonic()
                for channel in [c for c in self._channels if c.startswith(self._key("gc", ""))]:
                    group = channel.removeprefix(self._key("gc", ""))
                    await self._script("SWEEP", self._group_keys(group), [group])
            except StoreUnavailable:
                continue  # the reconnecting task has it

    def _key(self, kind: str, name: str) -> str:
        return f"{self.prefix}{kind}:{name}"

    def _group_keys(self, group: str) -> list[str]:
        return [self._key("g", group), self._key("gv", group), self._key("gc", group)]

    # -- pub/sub

    async def publish(self, channel: str, data: bytes) -> None:
        await self._run(lambda: self._client.publish(self._key("c", channel), data))

    async def subscribe(self, channel: str, *, limit: int) -> Inbox:
        return await self._attach(self._key("c", channel), limit)

    async def _attach(self, channel: str, limit: int) -> Inbox:
        """An inbox of Redis channel ``channel``, once Redis confirmed the subscription."""
        if self._report.state is not StoreState.UP:
            raise StoreUnavailable(self._unavailable())
        inbox = Inbox(limit, lambda box: self._detach(channel, box))
        inboxes = self._channels.get(channel)
        if inboxes is not None:
            inboxes.add(inbox)
            confirming = self._confirming.get(channel)
            if confirming is not None:
                await self._run(lambda: asyncio.shield(confirming))
            return inbox
        self._channels[channel] = {inbox}
        confirmed = self._confirming[channel] = asyncio.get_running_loop().create_future()
        try:
            async with self._subscribing:
                pubsub = self._pubsub
                if pubsub is not None:
                    await self._run(lambda: pubsub.subscribe(channel))
                else:
                    self._channels_changed.set()  # the listening task subscribes it with the others
            await self._run(lambda: asyncio.shield(confirmed))
        except BaseException:
            inbox.close()
            raise
        finally:
            if self._confirming.get(channel) is confirmed:
                del self._confirming[channel]
        return inbox

    def _detach(self, channel: str, inbox: Inbox) -> None:
        inboxes = self._channels.get(channel)
        if inboxes is None or inbox not in inboxes:
            return
        inboxes.discard(inbox)
        if inboxes:
            return
        del self._channels[channel]
        pubsub = self._pubsub
        if pubsub is not None and self._report.state is StoreState.UP:
            self._spawn(self._unsubscribe(pubsub, channel), "cluster-redis-unsubscribe")

    async def _unsubscribe(self, pubsub: PubSub, channel: str) -> None:
        async with self._subscribing:
            if channel in self._channels or pubsub is not self._pubsub:
                return  # wanted again since (or the connection is another: it never had it)
            with contextlib.suppress(StoreUnavailable):
                await self._run(lambda: pubsub.unsubscribe(channel))

    async def _listen(self) -> None:
        """The one pub/sub connection: made (again) whenever Redis is up and a channel is wanted."""
        while True:
            await self._up.wait()
            if not self._channels:
                self._channels_changed.clear()
                await self._channels_changed.wait()
                continue
            pubsub = self._client.pubsub()
            try:
                async with self._subscribing, asyncio.timeout(self.op_timeout_s):
                    await pubsub.subscribe(*self._channels)
                    self._pubsub = pubsub
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is not None:
                        self._heard(message)
            except LOST as e:
                self._lost(e)
            finally:
                self._pubsub = None
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _heard(self, message: dict[str, Any]) -> None:
        channel = message["channel"].decode()
        if message["type"] == "subscribe":
            confirmed = self._confirming.get(channel)
            if confirmed is not None and not confirmed.done():
                confirmed.set_result(None)
        elif message["type"] == "message":
            for inbox in list(self._channels.get(channel, ())):
                inbox.put(message["data"])

    # -- streams

    async def append(self, key: str, data: bytes, *, keep_s: float, max_len: int) -> str:
        if max_len < 1 or keep_s <= 0:
            raise ValueError("a stream keeps at least one entry for a while: max_len >= 1, keep_s > 0")
        entry_id = await self._script("APPEND", [self._key("s", key)], [data, round(keep_s * 1000), max_len])
        return str(entry_id.decode())

    async def read(
        self, key: str, after: str = FIRST, *, within_s: float | None = None, count: int = 256, block_s: float = 0.0
    ) -> list[Entry]:
        stream = self._key("s", key)
        within = -1 if within_s is None else round(within_s * 1000)
        got = await self._script("READ", [stream], [after, within, count])
        entries = [Entry(got[i].decode(), got[i + 1]) for i in range(1, len(got), 2)]
        if entries or block_s <= 0:
            return entries
        last = got[0].decode() or FIRST
        start = max(after, last, key=id_key)
        block_ms = max(1, round(block_s * 1000))
        answer: Any = await self._run(
            lambda: self._client.xread({stream: start}, count=count, block=block_ms), wait_s=block_s
        )
        out = []
        for _, items in answer or ():
            for entry_id, fields in items:
                if b"d" in fields:
                    out.append(Entry(entry_id.decode(), fields[b"d"]))
        return out

    # -- presence

    async def join(self, group: str, member: str, value: bytes = b"") -> dict[str, bytes]:
        got = await self._script("JOIN", self._group_keys(group), [group, member, value, round(self.lease_s * 1000)])
        self._members.setdefault(group, {})[member] = value
        return {got[i].decode(): got[i + 1] for i in range(0, len(got), 2)}

    async def leave(self, group: str, member: str) -> int | None:
        members = self._members.get(group)
        if members is not None:
            members.pop(member, None)
            if not members:
                del self._members[group]
        try:
            return int(await self._script("LEAVE", self._group_keys(group), [group, member]))
        except StoreUnavailable:  # not renewed, it expires
            return None

    async def members(self, group: str) -> dict[str, bytes]:
        got = await self._script("MEMBERS", self._group_keys(group), [group])
        return {got[i].decode(): got[i + 1] for i in range(0, len(got), 2)}

    async def watch(self, group: str) -> Inbox:
        return await self._attach(self._key("gc", group), 1)

    # -- leases

    async def acquire(self, wants: Sequence[tuple[str, int]]) -> Lease | Full:
        check_wants(wants)
        lease = Lease(f"{self.holder}:{next(self._ids)}", tuple(name for name, _ in wants))
        keys = [self._key("l", name) for name in lease.names]
        full = await self._script("ACQUIRE", keys, [lease.id, round(self.lease_s * 1000), *(n for _, n in wants)])
        if full:
            name, limit = wants[int(full) - 1]
            return Full(name, limit)
        self._leases[lease.id] = lease
        return lease

    async def release(self, lease: Lease) -> None:
        if self._leases.pop(lease.id, None) is None:
            return

        async def remove() -> None:
            async with self._client.pipeline(transaction=False) as pipe:
                for name in lease.names:
                    pipe.zrem(self._key("l", name), lease.id)
                await pipe.execute()

        with contextlib.suppress(StoreUnavailable):  # not renewed, it expires
            await self._run(remove)

    async def renew(self) -> None:
        await self._run(self._renew_all)

    async def count(self, name: str) -> int:
        return int(await self._script("COUNT", [self._key("l", name)], []))

    # -- budgets

    async def spend(self, name: str, amount: float, per_minute: float) -> float:
        return float(await self._script("SPEND", [self._key("b", name)], [repr(amount), repr(per_minute)]))


def _reason(error: BaseException) -> str:
    """An error in a few words (redis-py's name the host and port, never the password)."""
    text = (str(error) or type(error).__name__).rstrip(".")
    return text if len(text) <= 200 else text[:197] + "..."


if TYPE_CHECKING:  # mypy proves that the class implements the Protocol

    def _implements(store: RedisStore) -> ClusterStore:
        return store
