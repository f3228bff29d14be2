"""URL fetches from a test's media server on loopback, for a ``translate-svc serve`` in a subprocess
(where a test cannot set ``JobWorker.fetch_checks`` as it does in its own process): ``serve_prefix``
is a ``ServerProcess`` prefix that runs the CLI in-process after making every ``Fetcher``'s default
checks a test's (loopback allowed, the test CA trusted). ``Media``: an https server on loopback with
a ``trustme`` certificate, whose ``/held.flac`` sends the first half of its clip, then holds the rest
until ``release`` is set (a fetch in flight, on demand). Run as
``python -m tests.support.loopback_fetch CA_PEM <the CLI's argv>`` (the prefix does)."""

from __future__ import annotations

import asyncio
import ssl
import sys
from pathlib import Path

import trustme
from aiohttp import web

from tests.support.paths import REPO


def serve_prefix(ca_pem: Path) -> tuple[list[str], dict[str, str]]:
    """The ``ServerProcess`` prefix and the environment it needs (the repository on the path)."""
    path = f"{REPO}:{REPO / 'clients' / 'python' / 'src'}"
    return [sys.executable, "-m", "tests.support.loopback_fetch", str(ca_pem)], {"PYTHONPATH": path}


class Media:
    """An https server on loopback serving ``clip`` (``/clip.flac`` whole, chunked with no
    ``Content-Length``; ``/held.flac`` half, then the rest once ``release`` is set); any other path is 404."""

    def __init__(self, clip: bytes, ca_pem: Path) -> None:
        self.clip = clip
        self.ca = trustme.CA()
        self.ca.cert_pem.write_to_path(str(ca_pem))
        self.port = 0
        self.release = asyncio.Event()
        #: requests for /held.flac, and of them those whose first half was sent
        self.held_requests = 0
        self.halves_sent = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/clip.flac", self._whole)
        app.router.add_get("/held.flac", self._held)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("localhost", "127.0.0.1").configure_cert(server_ssl)
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=server_ssl)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def close(self) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, path: str) -> str:
        return f"https://localhost:{self.port}/{path}"

    async def _whole(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for at in range(0, len(self.clip), 64 * 1024):
            await response.write(self.clip[at : at + 64 * 1024])
        await response.write_eof()
        return response

    async def _held(self, request: web.Request) -> web.StreamResponse:
        self.held_requests += 1
        response = web.StreamResponse()
        response.content_length = len(self.clip)
        await response.prepare(request)
        half = len(self.clip) // 2
        await response.write(self.clip[:half])
        self.halves_sent += 1
        await self.release.wait()
        await response.write(self.clip[half:])
        await response.write_eof()
        return response


def _main() -> None:
    ca_pem, argv = sys.argv[1], sys.argv[2:]
    from translate_svc.cli import app
    from translate_svc.fetch import Fetcher

    context = ssl.create_default_context(cafile=ca_pem)
    original = Fetcher.__init__

    def loopback(self: Fetcher, *args: object, **kw: object) -> None:
        kw.setdefault("allowed", lambda address: address.is_loopback)  # type: ignore[attr-defined]
        kw.setdefault("ssl_context", context)
        original(self, *args, **kw)  # type: ignore[arg-type]

    Fetcher.__init__ = loopback  # type: ignore[method-assign]
    sys.argv = ["translate-svc", *argv[argv.index("serve") :]]
    app()


if __name__ == "__main__":
    _main()
