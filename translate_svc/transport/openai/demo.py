"""The browser demo page (``server.demo_page``), on the HTTP port beside the realtime sessions.

- ``GET /demo``: the page (``static/``: plain HTML, CSS and JavaScript; no build step, no CDN);
- ``GET /demo/config``: what the page offers: the model's languages and whether it is the test
  checkpoint;
- ``POST /demo/client_secret``: a short-lived client secret, minted here on the server, for the
  page's WebRTC call (``POST /v1/realtime/translations/calls``). The page never holds a token.

Minting without a token means anyone who reaches the HTTP port can open sessions (within every
limit, for the secret's TTL at a time): the page is for trying the service out, and it is off by
default. ``describe`` says so when it is on. A browser page of another site cannot mint (403,
``limits.http_allowed_origins``): only this page, or a client that is not a browser.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from translate_svc.session.manager import SessionManager
from translate_svc.transport.http.client_secrets import DEMO_TENANT, ORIGIN_REFUSED, ClientSecrets, origin_allowed
from translate_svc.transport.http.pages import page_config, page_file, page_headers, page_languages
from translate_svc.types import ModelCard

PATH = "/demo"
STATIC = Path(__file__).with_name("static")
#: the page loads only its own files and talks only to this server; it plays the microphone
_HEADERS = page_headers("'self' blob: mediastream:")
_FILES = {
    "": ("demo.html", "text/html"),
    "/demo.js": ("demo.js", "text/javascript"),
    "/demo.css": ("demo.css", "text/css"),
}


def page_url(host: str, port: int, *, tls: bool) -> str:
    """The page's address to print: on a wildcard host, this machine's loopback (a browser grants
    the microphone to http://127.0.0.1 but to plain http elsewhere not at all)."""
    if host in ("0.0.0.0", "", "::", "[::]"):
        host = "127.0.0.1"
    host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"{'https' if tls else 'http'}://{host}:{port}{PATH}"


class DemoPage:
    def __init__(self, manager: SessionManager, secrets: ClientSecrets) -> None:
        self._m = manager
        self._secrets = secrets

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/", self._home)
        for suffix in _FILES:
            router.add_get(PATH + suffix, self._file)
        router.add_get(PATH + "/config", self._config)
        router.add_post(PATH + "/client_secret", self._mint)

    async def _home(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(PATH)

    async def _file(self, request: web.Request) -> web.Response:
        name, content_type = _FILES[request.path.removeprefix(PATH)]
        return page_file(STATIC / name, content_type, _HEADERS)

    async def _config(self, request: web.Request) -> web.Response:
        return page_config(self._m, self._config_of)

    def _config_of(self, card: ModelCard) -> dict[str, object]:
        return {
            "model": card.info.name,
            "test_model": card.info.is_test_model,
            "languages": page_languages(card),
            "max_targets": self._m.limits.max_target_languages,
            "min_captions_interval_ms": self._m.limits.min_interim_interval_ms,
        }

    async def _mint(self, request: web.Request) -> web.Response:
        """A secret for this server's own page (its fetch sends the page's Origin, which is this
        server's); a page of another site is refused unless ``limits.http_allowed_origins`` lists it."""
        if not origin_allowed(
            request.headers.get("Origin"), request.headers.get("Host"), self._m.limits.http_allowed_origins
        ):
            error = {"message": ORIGIN_REFUSED, "type": "invalid_request_error", "code": "origin_not_allowed"}
            return web.json_response({"error": error}, status=403, headers={"Cache-Control": "no-store"})
        value, expires = self._secrets.mint(tenant=DEMO_TENANT, page=True)
        return web.json_response({"value": value, "expires_at": expires}, headers={"Cache-Control": "no-store"})
