"""SIP messages read from a byte stream, TCP or TLS (RFC 3261 §18.3): each message's head ends
with an empty line and its body is its Content-Length's bytes (a missing Content-Length is 0);
CRLFs between messages are keep-alives (RFC 5626 §3.5.1). A head or message over the limit, or a
Content-Length we cannot read, ends the connection: the stream cannot be framed any more. So does
a deadline for the next whole message that passes (the door's: a connection without a call is
closed once idle; keep-alives and a message's first bytes do not move it: security finding H2, a CRLF
every few minutes held a connection for good).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from translate_svc.transport.sip.message import SipParseError, head_length

#: with no deadline (a call on the connection), how often the deadline is asked again
RECHECK_S = 5.0
#: ``read_messages``' answer when the deadline passed
IDLE = "idle"


async def read_messages(
    reader: asyncio.StreamReader,
    limit: int,
    received: Callable[[bytes], None],
    deadline: Callable[[], float | None] = lambda: None,
) -> str | None:
    """Each whole message to ``received``, until the peer closes (None), ``deadline()`` (the loop
    time by which the next whole message must have come; None: no deadline now) passes (``IDLE``)
    or the stream cannot be framed (why, for the refusal log)."""
    loop = asyncio.get_running_loop()
    buf = bytearray()
    try:
        while True:
            due = deadline()
            wait = RECHECK_S if due is None else due - loop.time()
            if wait <= 0:
                return IDLE
            try:
                async with asyncio.timeout(wait):
                    chunk = await reader.read(limit)
            except TimeoutError:
                continue  # the deadline is asked again: a message or a call's end may have moved it
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
    except ConnectionError:
        return None


def content_length(head: bytes) -> int | None:
    """A head's Content-Length (``l``, its compact form); 0 when there is none; None: unreadable."""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() in (b"content-length", b"l"):
            text = value.strip()
            return int(text) if text.isdigit() and len(text) <= 9 else None
    return 0
