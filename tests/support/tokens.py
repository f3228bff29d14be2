"""Tokens as the tests write and change them: two tokens of a tokens file (all rights, and
ListLanguages only), a token's gRPC metadata, the file rewritten at once (as a mounted Secret
changes) and the server's reload of it awaited."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.live_server import LiveServer
from tests.support.waiting import eventually

ALL = "all-token-3b9d0c1e5f7a"
LANG_ONLY = "lang-token-9c2e4a6b8d0f"


def bearer(token: str) -> tuple[tuple[str, str]]:
    """A gRPC call's metadata carrying ``token``."""
    return (("authorization", f"Bearer {token}"),)


def replace(path: Path, text: str) -> None:
    """Rewrite the tokens file at once, as a mounted Secret changes."""
    tmp = path.with_suffix(".new")
    tmp.write_text(text)
    os.replace(tmp, path)


async def reloaded(live: LiveServer, before: int) -> None:
    """Until the server has read its tokens file again since it had read it ``before`` times."""
    store = live.server.tokens
    assert store is not None

    async def seen() -> bool:
        return bool(store.reloads > before)

    await eventually(seen, "the tokens file reloaded")
