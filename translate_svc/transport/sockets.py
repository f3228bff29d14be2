"""The kernel buffers of a call's socket, for every door that holds one (a realtime WebSocket on
the OpenAI door, a phone call's WebSocket): fixed, not left to the kernel, which would grow each
to MBs (~500 KB of a phone call's speech waited there, unseen by
``phone.max_held_s``). Door-neutral: it takes the connection's asyncio transport, whatever runs on
it."""

from __future__ import annotations

import asyncio
import socket

from translate_svc.settings import LimitsSettings


def fix_buffers(transport: asyncio.BaseTransport | None, limits: LimitsSettings) -> None:
    """Fixed kernel buffers for the socket, as the gRPC door fixes its HTTP/2 windows.
    Sending (``limits.ws_send_buffer_bytes``): what a client that does not read lets the server push
    (results computed for nobody, held in the kernel). Receiving (``limits.stream_window_bytes``):
    what a client sends ahead of a session that stopped reading."""
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, limits.ws_send_buffer_bytes)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, limits.stream_window_bytes)
