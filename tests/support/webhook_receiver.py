"""An operator's webhook receiver on loopback (aiohttp), verifying every delivery with the Standard
Webhooks reference library (``standardwebhooks``: the scheme's own code, not ours): what it accepts
it answers 204 and keeps; what fails verification it answers 400 and keeps apart. It can be taken
down (its port closed: connections refused) and brought back on the same port, or made to hold
every request without answering (a receiver that never answers), or to answer every request with
a redirect elsewhere (``redirect_to``); over TLS with a certificate of a ``trustme`` CA (``tls``)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme
from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from translate_svc.settings import WebhookEndpoint, WebhookSettings


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


@dataclass
class Delivery:
    """One delivery as it arrived: its headers, raw body and (verified) payload."""

    headers: dict[str, str]
    body: bytes
    payload: dict[str, Any] | None = None


@dataclass
class Receiver:
    """A receiver verifying with each of ``secrets`` (every one must verify every delivery)."""

    secrets: list[str]
    accepted: list[Delivery] = field(default_factory=list)
    refused: list[Delivery] = field(default_factory=list)
    #: requests seen (answered or not), and the most held unanswered at once
    requests: int = 0
    holding: int = 0
    most_held: int = 0
    #: "answer" (verify, 204), "hold" (never answer), "redirect" (307 to ``redirect_to``)
    mode: str = "answer"
    redirect_to: str = ""
    #: serve https with a certificate for 127.0.0.1 from this CA (None: http)
    tls: trustme.CA | None = None
    port: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/hooks"

    def webhooks(self, data_dir: Path, events: Sequence[str] = ()) -> WebhookSettings:
        """A server's webhook settings that deliver to this receiver (on loopback: plain HTTP
        allowed) with quick retries (0.2 s first, at most 1 s); ``events``: the kinds it takes
        (none named: every kind)."""
        return WebhookSettings(
            endpoints=[WebhookEndpoint(url=self.url, secret=self.secrets[0], events=list(events))],
            data_dir=data_dir,
            first_backoff_s=0.2,
            max_backoff_s=1.0,
            allow_http=True,
        )

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        body = await request.read()
        delivery = Delivery({k.lower(): v for k, v in request.headers.items()}, body)
        if self.mode == "redirect":  # a 307 keeps the method and the body (RFC 9110 15.4.8)
            self.changed.set()
            return web.Response(status=307, headers={"Location": self.redirect_to})
        if self.mode == "hold":
            self.holding += 1
            self.most_held = max(self.most_held, self.holding)
            self.changed.set()
            try:
                await self._release.wait()
            finally:
                self.holding -= 1
            return web.Response(status=503)
        try:
            payloads = [Webhook(s).verify(body, delivery.headers) for s in self.secrets]
        except WebhookVerificationError:
            self.refused.append(delivery)
            self.changed.set()
            return web.Response(status=400)
        delivery.payload = payloads[0]
        self.accepted.append(delivery)
        self.changed.set()
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1, handler_cancellation=True)
        await self._runner.setup()
        context = None
        if self.tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.tls.issue_cert("127.0.0.1").configure_cert(context)
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True, ssl_context=context)
        await site.start()
        if not self.port:
            self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Down: the port closed (new connections refused), held requests cut."""
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._release = asyncio.Event()

    def events(self, type_: str | None = None) -> list[dict[str, Any]]:
        """Accepted payloads (of ``type_``), one per webhook-id: receivers de-duplicate on it."""
        seen: dict[str, dict[str, Any]] = {}
        for d in self.accepted:
            assert d.payload is not None
            if type_ is None or d.payload["type"] == type_:
                seen.setdefault(d.headers["webhook-id"], d.payload)
        return list(seen.values())

    async def wait_for(self, done: Callable[[Receiver], bool], timeout_s: float = 30.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not done(self):
                self.changed.clear()
                await self.changed.wait()


@contextlib.asynccontextmanager
async def receiving(*secrets: str, tls: trustme.CA | None = None) -> Any:
    r = Receiver(list(secrets), tls=tls)
    await r.start()
    try:
        yield r
    finally:
        await r.stop()
