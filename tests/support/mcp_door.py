"""The MCP endpoint as its tests reach it (issue 62, docs/agents.md): settings that serve it on the
stable test translator (its words are made up, but the same for the same input on every door),
its address, and an ``mcp`` SDK client over streamable HTTP with a token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2

from tests.support.live_server import LiveServer, make_settings
from tests.support.rooms import room_settings


def mcp_settings(test_model_dir: Path, tokens_file: Path | None = None, **mcp: Any):  # type: ignore[no-untyped-def]
    """A server with ``--http-port 0 --mcp`` (and ``mcp``: ``McpSettings``' fields) on the stable
    translator, with rooms' long backlog."""
    s = room_settings(test_model_dir)
    s.server.http_port = 0
    s.mcp.enabled = True
    for key, value in mcp.items():
        setattr(s.mcp, key, value)
    s.auth.tokens_file = tokens_file
    return s


def checkpoint_settings(test_model_dir: Path):  # type: ignore[no-untyped-def]
    """A server with ``--http-port 0 --mcp`` on the test checkpoint itself (the model's own path:
    terms act on it, and a long clip takes a while), without tokens."""
    s = make_settings(test_model_dir)
    s.server.http_port = 0
    s.mcp.enabled = True
    return s


def mcp_url(live: LiveServer) -> str:
    assert live.server.http is not None
    return f"http://127.0.0.1:{live.server.http.port}/mcp"


def http_client(token: str | None) -> httpx2.AsyncClient:
    """The HTTP client the SDK's streamable HTTP transport sends through, with ``token``."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(120.0, read=120.0))
