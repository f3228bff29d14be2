"""The MCP endpoint's settings (``Settings.mcp``, docs/agents.md)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class McpSettings(BaseModel):
    """The MCP endpoint (docs/agents.md): agents' tools and room captions at ``/mcp`` on
    ``server.http_port``, with the server's tokens, permissions and caps."""

    #: serve it (``serve --mcp``); needs ``server.http_port``
    enabled: bool = False
    #: the largest clip ``translate_audio`` takes, inline (its base64 is a third larger) or fetched;
    #: never more than ``limits.max_message_bytes``
    max_clip_bytes: int = Field(16 * 1024 * 1024, ge=1024, le=1 << 30)
    #: the hosts ``translate_audio`` may fetch an ``https`` URL from: names (``media.example.com``)
    #: or ``*.example.com``; empty: no fetch. A name that resolves to a private address is refused
    fetch_hosts: list[str] = []
    #: a fetch's whole time (connect, redirects, body), and the redirects it follows
    fetch_timeout_s: float = Field(20.0, gt=0, le=600)
    fetch_max_redirects: int = Field(3, ge=0, le=10)
    #: room caption resources one subscription may watch (each holds a room listener of its tenant)
    max_subscriptions: int = Field(8, ge=1, le=256)
