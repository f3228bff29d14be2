"""The sink the sessions emit into (``events.EventSink``) and the deliveries to the operator's
endpoints: Standard Webhooks over aiohttp, at least once, off every call's path.

An ``emit`` on the event loop only hands the event to the store's one thread (``store.EventStore``,
SQLite on disk; ``redis_queue.RedisEventStore``, one queue for every pod, when
``cluster.redis_url`` is set) and returns: at most ``MAX_PENDING`` writes wait there, beyond that (a stuck
disk) events are dropped, never awaited by a call. A full queue pushes out the oldest delivery of
the tenant with the most waiting (``store.py``). Every drop is counted per tenant and logged at a
bounded rate (``drops.DropLog``). One delivery task per
endpoint takes due rows (at most ``max_in_flight`` at once, each within ``timeout_s``) and signs
each attempt with a fresh timestamp (receivers refuse old ones); a 2xx deletes the row, anything
else retries it after an exponential backoff with jitter (``first_backoff_s`` doubling up to
``max_backoff_s``) until ``retry_for_s`` after the event, then it is given up (counted, logged).
A redirect is not followed (security finding H13: the signed body would go where the receiver's answer
says): a 3xx is a failed attempt, retried as any. A receiver that never answers therefore holds
``max_in_flight`` requests and the rows on disk (at most ``max_queued``), nothing more. Logs name
a receiver by ``shown_url`` (no credentials a URL may carry), never a secret.

Every ``lease_s`` the process beats (its live sessions' usage checkpointed) and ends, from their
last checkpoint, the sessions of processes that stopped beating for ``3 x lease_s`` (a killed
worker: ``session.ended`` with ``ending: lost``). Event loop only, except the store's thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import json
import logging
import os
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp

from translate_svc.observability import webhook_metrics as wm
from translate_svc.settings import ClusterSettings, WebhookEndpoint, WebhookSettings
from translate_svc.settings.webhooks import shown_url
from translate_svc.webhooks import signing
from translate_svc.webhooks.drops import DropLog
from translate_svc.webhooks.events import Event, LiveSession
from translate_svc.webhooks.store import Delivery, EventStore

if TYPE_CHECKING:
    from translate_svc.webhooks.redis_queue import RedisEventStore

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: event writes waiting for the store's thread at most; beyond: dropped (a stuck disk)
MAX_PENDING = 4096
#: a lost session's checkpoint says this (its process stopped without ending it)
LOST = ("lost", "process_exited", "UNAVAILABLE")


@dataclass(frozen=True)
class Endpoint:
    url: str
    keys: tuple[bytes, ...]
    events: frozenset[str]
    tenants: frozenset[str]

    def takes(self, event: Event) -> bool:
        return (not self.events or event.type in self.events) and (not self.tenants or event.tenant in self.tenants)


def endpoint_of(s: WebhookEndpoint) -> Endpoint:
    """An endpoint's settings, its secrets decoded (ValueError naming the endpoint, not the secret,
    if one is neither base64 nor base64url)."""
    try:
        keys = tuple(signing.secret_key(x.get_secret_value()) for x in (s.secret, *s.secrets))
    except ValueError as e:
        raise ValueError(f"webhooks.endpoints: a secret of {shown_url(s.url)[:120]} is not usable: {e}") from None
    return Endpoint(s.url, keys, frozenset(s.events), frozenset(s.tenants))


def backoff_s(attempts: int, first_s: float, most_s: float) -> float:
    """The wait before retry number ``attempts`` (1, 2, ...): ``first_s`` doubling each time up to
    ``most_s``, of which a random half (jitter: receivers coming back are not hit all at once)."""
    full = min(most_s, first_s * 2.0 ** max(0, attempts - 1))
    return full / 2 + random.uniform(0, full / 2)


class Outbox:
    """The events' sink and deliveries of one process (``start`` on its loop, ``close`` at stop)."""

    def __init__(
        self,
        settings: WebhookSettings,
        *,
        cluster: ClusterSettings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``cluster.redis_url`` set: the queue and the usage records are in that Redis, shared by
        every pod (``redis_queue.py``); else in ``settings.data_dir`` (this node's)."""
        self.settings = settings
        self.endpoints = [endpoint_of(e) for e in settings.endpoints]
        urls = [e.url for e in self.endpoints]
        if len(set(urls)) != len(urls):
            raise ValueError("webhooks.endpoints: each endpoint's url must be different")
        #: every drop counted per tenant and logged at a bounded rate (the store's thread reports too)
        self.drops = DropLog()
        self.store: EventStore | RedisEventStore
        if cluster is not None and cluster.redis_url is not None:
            # redis-py (and the OpenTelemetry it imports) only where Redis is used (cluster/choose.py)
            from translate_svc.webhooks.redis_queue import RedisEventStore, read_password

            password = read_password(cluster.redis_password_file)
            self.store = RedisEventStore(
                cluster.redis_url, password, self._route, max_queued=settings.max_queued, on_drop=self._pushed_out
            )
        else:
            assert settings.data_dir is not None
            self.store = EventStore(
                settings.data_dir, self._route, max_queued=settings.max_queued, on_drop=self._pushed_out
            )
        self._clock = clock
        self.owner = uuid.uuid4().hex
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="webhooks-store")
        self._pending = 0
        self._live: dict[str, LiveSession] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._sends: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _route(self, event: Event) -> list[str]:
        return [e.url for e in self.endpoints if e.takes(event)]

    def _pushed_out(self, tenant: str, n: int) -> None:
        """The store's report (its thread): ``n`` of ``tenant``'s deliveries dropped at a full queue."""
        why = (
            f"the queue holds webhooks.max_queued ({self.settings.max_queued}) deliveries and this tenant had the "
            "most waiting (its oldest made room), or nothing could be pushed out"
        )
        self.drops("queue_full", tenant, n, why)

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, functools.partial(fn, *args))

    # -- lifetime

    async def start(self) -> None:
        """Open the store (a file that cannot be opened fails the start), end the sessions a dead
        process left open, and start delivering."""
        self._loop = asyncio.get_running_loop()
        await self._db(self.store.open)
        await self._beat()
        s = self.settings
        self._http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=s.timeout_s),
            connector=aiohttp.TCPConnector(limit=max(1, len(self.endpoints)) * s.max_in_flight),
        )
        for e in self.endpoints:
            self._wake[e.url] = asyncio.Event()
            self._tasks.append(asyncio.create_task(self._deliver(e), name=f"webhooks-{shown_url(e.url)}"))
        self._tasks.append(asyncio.create_task(self._beats(), name="webhooks-beat"))
        wm.queued(self.store.queued)

    async def close(self) -> None:
        """Stop delivering (rows in flight stay queued: sent again after the next start) and write
        what is pending; the file keeps the rest."""
        tasks = [*self._tasks, *self._sends]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        if self._http is not None:
            await self._http.close()
        if self.store.is_open:
            await self._db(self.store.leave, self.owner)
            await self._db(self.store.close)
        await asyncio.to_thread(self._thread.shutdown, True)

    # -- the sink (events.EventSink)

    def emit(self, event: Event) -> None:
        self._write(event)

    def session_started(self, event: Event, live: LiveSession) -> None:
        self._live[live.session_id] = live
        self._write(event, live.ended_data(*LOST))

    def session_ended(self, event: Event) -> None:
        if event.session_id is not None:
            self._live.pop(event.session_id, None)
        self._write(event)

    async def session_data(self, session_id: str) -> dict[str, Any] | None:
        """As ``EventSink.session_data``, read on the store's thread after every write queued
        before it (a session this process just ended is found ended)."""
        if not self.store.is_open:
            return None
        try:
            return await self._db(self.store.session_data, session_id)
        except Exception as e:  # the store cannot be read now (Redis away): the caller goes without
            logger.warning("webhooks: the usage record of session %s could not be read (%s)", session_id, e)
            return None

    def _write(self, event: Event, lost: dict[str, Any] | None = None) -> None:
        n = max(1, len(self._route(event)))  # (an event for no endpoint still carries its usage record)
        if self._loop is None or not self.store.is_open:
            self.drops("not_started", event.tenant, n, f"a {event.type} event came while the outbox was not running")
            return
        if self._pending >= MAX_PENDING:
            why = f"a {event.type} event came while {self._pending} writes waited for the store"
            self.drops("store_behind", event.tenant, n, why)
            return
        self._pending += 1
        fut = self._thread.submit(self.store.add, event, self.owner, lost)
        fut.add_done_callback(lambda f: self._loop.call_soon_threadsafe(self._written, event, f))  # type: ignore[union-attr]

    def _written(self, event: Event, fut: concurrent.futures.Future[int]) -> None:
        self._pending -= 1
        try:
            fut.result()  # what a full queue pushed out was reported by the store (``_pushed_out``)
        except Exception as e:
            why = f"the store failed writing a {event.type} event ({type(e).__name__}: {str(e)[:200]})"
            self.drops("store_error", event.tenant, max(1, len(self._route(event))), why)
            logger.debug("webhooks: the store failed", exc_info=True)  # (its line above is rate-bounded)
            return
        wm.queued(self.store.queued)
        for url in self._route(event):
            self._wake[url].set()

    # -- deliveries

    async def _deliver(self, endpoint: Endpoint) -> None:
        """The endpoint's deliveries, for the outbox's life: a failing disk is logged and retried."""
        s = self.settings
        wake = self._wake[endpoint.url]
        in_flight: set[asyncio.Task[None]] = set()
        while True:
            wake.clear()
            try:
                wait_s = await self._take(endpoint, in_flight)
            except Exception:
                logger.exception("webhooks: reading the queue of %s failed; retrying", shown_url(endpoint.url))
                wait_s = s.first_backoff_s
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that lands as
            # the event is set, and close() would wait for this loop forever
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    await wake.wait()

    async def _take(self, endpoint: Endpoint, in_flight: set[asyncio.Task[None]]) -> float:
        """Start the due deliveries there is room for; how long to wait before looking again (a
        new row, a finished attempt wakes it sooner; at most a minute: rows another process of the
        node added)."""
        s = self.settings
        wake = self._wake[endpoint.url]
        free = s.max_in_flight - len(in_flight)
        if free > 0:
            for d in await self._db(self.store.take_due, endpoint.url, self._clock(), free, s.timeout_s + 5):
                task = asyncio.create_task(self._send(endpoint, d))
                in_flight.add(task)
                self._sends.add(task)
                task.add_done_callback(in_flight.discard)
                task.add_done_callback(self._sends.discard)
                task.add_done_callback(lambda _: wake.set())
        if len(in_flight) >= s.max_in_flight:
            return s.timeout_s + 5
        nxt = await self._db(self.store.next_due, endpoint.url)
        return 60.0 if nxt is None else min(60.0, max(0.05, nxt - self._clock()))

    async def _send(self, endpoint: Endpoint, d: Delivery) -> None:
        assert self._http is not None
        wm.in_flight(1)
        ok, why = False, ""
        try:
            ts = int(self._clock())
            headers = signing.headers(endpoint.keys, d.msg_id, ts, d.body)
            # never to where a redirect points: the signed body goes to the configured URL only
            async with self._http.post(endpoint.url, data=d.body, headers=headers, allow_redirects=False) as resp:
                ok, why = 200 <= resp.status < 300, f"HTTP {resp.status}"
                if 300 <= resp.status < 400:
                    why += " (a redirect, not followed: configure the receiver's final URL)"
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            why = type(e).__name__
        finally:
            wm.in_flight(-1)
        try:
            await self._settle(endpoint, d, ok, why)
        except Exception:  # the row stays held: it is sent again when its hold ends
            logger.exception("webhooks: recording the outcome of %s failed", d.msg_id)

    async def _settle(self, endpoint: Endpoint, d: Delivery, ok: bool, why: str) -> None:
        s = self.settings
        if ok:
            wm.attempt("delivered")
            await self._db(self.store.delivered, d.seq)
        elif self._clock() - d.created >= s.retry_for_s:
            wm.attempt("expired")
            logger.error(
                "webhook %s to %s given up after %d attempts over %.0f s (%s)",
                d.msg_id,
                shown_url(endpoint.url),
                d.attempts + 1,
                s.retry_for_s,
                why,
            )
            await self._db(self.store.delivered, d.seq)
        else:
            wm.attempt("failed")
            wait = backoff_s(d.attempts + 1, s.first_backoff_s, s.max_backoff_s)
            logger.info("webhook %s to %s failed (%s); retry in %.1f s", d.msg_id, shown_url(endpoint.url), why, wait)
            await self._db(self.store.retry, d.seq, self._clock() + wait)
        wm.queued(self.store.queued)

    # -- heartbeats, checkpoints and lost sessions

    async def _beats(self) -> None:
        while True:
            await asyncio.sleep(self.settings.lease_s)
            try:
                await self._beat()
            except Exception:
                logger.exception("webhooks: the heartbeat failed; retrying")

    async def _beat(self) -> None:
        s = self.settings
        lost = [(sid, json.dumps(live.ended_data(*LOST))) for sid, live in list(self._live.items())]
        now = self._clock()
        await self._db(self.store.beat, self.owner, os.getpid(), now, lost)
        ended = await self._db(self.store.sweep, now, 3 * s.lease_s)
        self.drops.flush()
        await self._db(self.store.expire_usage, now - s.usage_retention_days * 86_400)
        wm.queued(self.store.queued)
        if ended:
            for w in self._wake.values():
                w.set()
