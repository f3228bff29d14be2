"""SIP messages read from a byte stream, TCP or TLS (RFC 3261 §18.3): each message's head ends
with an empty line and its body is its Content-Length's bytes (a missing Content-Length is 0);
CRLFs between messages are keep-alives (RFC 5626 §3.5.1). A head or message over the limit, or a
Content-Length we cannot read, ends the connection: the stream cannot be framed any more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from translate_svc.transport.sip.message import SipParseError, head_length

#: a connection with no bytes for this long is closed
TCP_IDLE_S = 300.0


async def read_messages(reader: asyncio.StreamReader, limit: int, received: Callable[[bytes], None]) -> str | None:
    """Each whole message to ``received``, until the peer closes or is idle for ``TCP_IDLE_S``
    (None) or the stream cannot be framed (why, for the refusal log)."""
    buf = bytearray()
    try:
        while True:
            async with asyncio.timeout(TCP_IDLE_S):
                chunk = await reader.read(limit)
            if not chunk:
                return None
            buf += chunk
            while buf:
                while buf[:2] == b"\r\n":
                    del buf[:2]  # keep-alives between messages
                try:
                    end = head_length(buf, limit)
                except SipParseError as e:
                    return e.reason
                if end is None:
                    break
                length = content_length(bytes(buf[:end]))
                if length is None or end + length > limit:
                    return "Content-Length missing, unreadable or over the limit"
                if len(buf) < end + length:
                    break
                message, buf[:] = bytes(buf[: end + length]), buf[end + length :]
                received(message)
    except (TimeoutError, ConnectionError):
        return None
    return None


def content_length(head: bytes) -> int | None:
    """A head's Content-Length (``l``, its compact form); 0 when there is none; None: unreadable."""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() in (b"content-length", b"l"):
            text = value.strip()
            return int(text) if text.isdigit() and len(text) <= 9 else None
    return 0
