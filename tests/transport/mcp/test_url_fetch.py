"""``translate_audio``'s URL fetch (issue 62, docs/security.md "The MCP endpoint"): the fetcher
against a real HTTPS server on loopback (a certificate from ``trustme``), with loopback allowed as
a test's stand-in for a public address: the body as sent, redirects followed only to allowed
hosts and at most ``max_redirects`` times, the size cap on ``Content-Length`` and on a chunked
body, the time limit; the production address check refusing every private range; and a clip
given by URL answered as the same clip given inline."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_asyncio
import trustme
from aiohttp import web
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.support.live_server import LiveServer, serving
from tests.support.mcp_door import http_client, mcp_settings, mcp_url
from translate_svc.fetch import ClipRefused, Fetcher, IpAddress, allowed_address
from translate_svc.transport.mcp.door import McpRoutes

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(15)]

BODY = b"RIFF" + bytes(range(256)) * 64


def loopback(address: IpAddress) -> bool:
    return address.is_loopback


class Media:
    """An HTTPS server on loopback with the routes the tests fetch."""

    def __init__(self, clip: bytes) -> None:
        self.clip = clip
        self.port = 0
        self.ca = trustme.CA()
        self.client_ssl = ssl.create_default_context()
        self.ca.configure_trust(self.client_ssl)

    def url(self, path: str, host: str = "localhost") -> str:
        return f"https://{host}:{self.port}{path}"

    async def start(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_get("/clip", self._clip)
        for path, to in (("/hop", "/clip"), ("/away", "https://elsewhere.example.org/clip"), ("/loop", "/loop")):
            app.router.add_get(path, _redirect(to))
        app.router.add_get("/missing", _redirect(None))
        app.router.add_get("/chunked", self._chunked)
        app.router.add_get("/slow", self._slow)
        runner = web.AppRunner(app)
        await runner.setup()
        server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("localhost", "127.0.0.1").configure_cert(server_ssl)
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl)
        await site.start()
        self.port = runner.addresses[0][1]
        return runner

    async def _clip(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=self.clip)

    async def _chunked(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(8):
            await response.write(self.clip)
        return response

    async def _slow(self, request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(30)
        return web.Response(body=self.clip)


def _redirect(to: str | None) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        if to is None:
            raise web.HTTPNotFound()
        raise web.HTTPFound(to)

    return handle


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def media(shared_audio: Path) -> AsyncIterator[Media]:
    server = Media((shared_audio / "jfk.flac").read_bytes())
    runner = await server.start()
    yield server
    await runner.cleanup()


def fetcher(media: Media, **kw: float) -> Fetcher:
    options = {"max_bytes": len(media.clip), "timeout_s": 5.0, "max_redirects": 2, **kw}
    return Fetcher(
        ["localhost"],
        max_bytes=int(options["max_bytes"]),
        timeout_s=options["timeout_s"],
        max_redirects=int(options["max_redirects"]),
        allowed=loopback,
        ssl_context=media.client_ssl,
    )


async def test_fetches_and_follows_allowed_redirects(media: Media) -> None:
    assert await fetcher(media).fetch(media.url("/clip")) == media.clip
    assert await fetcher(media).fetch(media.url("/hop")) == media.clip


@pytest.mark.parametrize(
    ("path", "reason", "says"),
    [
        ("/away", "url_not_allowed", "does not fetch from host"),
        ("/loop", "fetch_failed", "redirected more than 2 times"),
        ("/missing", "fetch_failed", "answered HTTP 404"),
        ("/chunked", "clip_too_large", "byte limit"),
        ("/slow", "fetch_failed", "took over 1 s"),
    ],
)
async def test_refuses(media: Media, path: str, reason: str, says: str) -> None:
    with pytest.raises(ClipRefused) as refused:
        await fetcher(media, timeout_s=1.0).fetch(media.url(path))
    assert refused.value.reason == reason and says in refused.value.message


async def test_a_content_length_over_the_cap_is_refused_unread(media: Media) -> None:
    with pytest.raises(ClipRefused) as refused:
        await fetcher(media, max_bytes=1024).fetch(media.url("/clip"))
    assert refused.value.reason == "clip_too_large"


async def test_the_production_check_refuses_loopback_by_name(media: Media) -> None:
    production = Fetcher(["localhost"], max_bytes=1 << 20, timeout_s=5, max_redirects=2, ssl_context=media.client_ssl)
    with pytest.raises(ClipRefused) as refused:
        await production.fetch(media.url("/clip"))
    assert refused.value.reason == "url_not_allowed" and "resolves to a private" in refused.value.message


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.9", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fc00::1", False),
        ("fe80::1", False),
        ("::ffff:10.0.0.1", False),
        # issue 68 H7: IPv6 forms that carry an IPv4 address, judged as that address
        ("64:ff9b::7f00:1", False),  # NAT64 (RFC 6052) of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254
        ("64:ff9b:1::7f00:1", False),  # local-use NAT64 (RFC 8215), refused whole
        ("64:ff9b:1::808:808", False),
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("2002:a00:1::1", False),  # 6to4 of 10.0.0.1
        ("::7f00:1", False),  # IPv4-compatible 127.0.0.1
        ("::a9fe:a9fe", False),
        ("::ffff:0:7f00:1", False),  # SIIT (RFC 7915) of 127.0.0.1
        ("::ffff:0:c0a8:101", False),  # SIIT of 192.168.1.1
        ("fec0::1", False),  # site-local
        ("2001::1", False),  # Teredo
        ("3fff::1", False),  # documentation (RFC 9637)
        ("5f00::1", False),  # reserved (SRv6 SIDs)
        ("240.0.0.1", False),  # reserved
        ("64:ff9b::808:808", True),  # NAT64 of a public address (DNS64 on an IPv6-only host)
        ("2002:808:808::1", True),
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
    ],
)
async def test_only_public_addresses_are_allowed(address: str, allowed: bool) -> None:
    assert allowed_address(ipaddress.ip_address(address)) is allowed


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def live(test_model_dir: Path) -> AsyncIterator[LiveServer]:
    async with serving(mcp_settings(test_model_dir, fetch_hosts=["localhost"])) as server:
        yield server


async def test_a_clip_by_url_is_answered_as_the_same_clip_inline(live: LiveServer, media: Media) -> None:
    routes = live.server.route_set(McpRoutes)
    assert routes is not None
    routes.toolbox._fetcher = fetcher(media)  # loopback stands in for a public host here
    base = {"source_language": "eng", "target_languages": ["spa"]}
    async with Client(streamable_http_client(mcp_url(live), http_client=http_client(None))) as c:
        by_url = await c.call_tool("translate_audio", {"audio_url": media.url("/clip"), **base})
        inline = await c.call_tool("translate_audio", {"audio_base64": base64.b64encode(media.clip).decode(), **base})
    assert not by_url.is_error, by_url.content
    assert by_url.structured_content == inline.structured_content
    assert by_url.structured_content["segments"]
