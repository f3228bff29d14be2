"""What the HTTP port's browser pages share (the demo page, the listen page): their files served with
headers that let them load only their own files and talk only to this server, and their config
(the model's languages for text output, once the model is loaded; until then a 503 the page
retries). Each page is plain HTML, CSS and JavaScript in its route set's ``static/`` folder: no
build step, no CDN. Event loop only."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from translate_svc.errors import NotReady
from translate_svc.session.manager import SessionManager
from translate_svc.types import ModelCard

#: how long a page waits before it asks again for its config while the model loads
LOADING_RETRY_S = 5


def page_headers(media_src: str = "'self' blob:") -> dict[str, str]:
    """A page's headers: it loads only its own files (images inline), plays media from
    ``media_src``, and is neither cached nor sniffed."""
    return {
        "Content-Security-Policy": f"default-src 'self'; img-src 'self' data:; media-src {media_src}",
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }


def page_file(path: Path, content_type: str, headers: dict[str, str]) -> web.Response:
    """One of a page's own files (UTF-8 text)."""
    return web.Response(body=path.read_bytes(), content_type=content_type, charset="utf-8", headers=headers)


def page_languages(card: ModelCard) -> list[dict[str, object]]:
    """The languages a page may pick for text output, by name."""
    return [
        {"code": lang.code, "name": lang.name, "speech": lang.speech_output}
        for lang in sorted(card.languages, key=lambda lang: lang.name)
        if lang.text_output
    ]


def page_config(manager: SessionManager, body: Callable[[ModelCard], dict[str, Any]]) -> web.Response:
    """A page's config (``body`` of the model's card), not cached; a 503 with ``Retry-After`` while
    the model loads."""
    try:
        card = manager.card
    except NotReady as e:
        return web.json_response(
            {"error": {"message": e.message}}, status=503, headers={"Retry-After": str(LOADING_RETRY_S)}
        )
    return web.json_response(body(card), headers={"Cache-Control": "no-store"})
