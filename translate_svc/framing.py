"""Messages between the processes of a node over a Unix socket: a frame is a 4-byte big-endian
length and one msgspec message (MessagePack). The engine's wire (``engine/remote/wire.py``) and the
node's cluster hub (``cluster/hub_wire.py``) frame their messages so; each says what its messages are.

``Channel`` is one connection's framing: ``send`` encodes and queues (never blocks the loop),
``recv`` reads the next message. Frames wait in a queue of their own and enter the transport only
while its buffer is small: Python 3.11's transport keeps one flat buffer and moves all of it after
each partial send, which made a window of 128 queued segments cost ~800 µs of CPU a frame.
``buffered`` is everything not yet taken by the kernel, so an owner can bound what a peer that stops
reading costs (the engine and the hub disconnect it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

import msgspec

In = TypeVar("In")

logger = logging.getLogger(__name__)

_LENGTH = struct.Struct(">I")


class FrameError(Exception):
    """The peer sent something that is not a frame of this protocol."""


class Channel(Generic[In]):
    """One connection's framing (see the module's docstring). Event loop only."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        incoming: Any,
        *,
        max_frame_bytes: int,
        write_high: int,
        hooks: Mapping[str, Any] | None = None,
        decode_hooks: Mapping[str, Any] | None = None,
    ) -> None:
        """``incoming``: the type (a tagged union of structs) this side receives; a frame larger
        than ``max_frame_bytes`` is a broken peer; ``write_high``: what the transport may hold before
        frames wait in the channel's own queue; ``hooks`` and ``decode_hooks``: msgspec's
        ``enc_hook`` and ``dec_hook``/``ext_hook`` for types a wire carries beyond its structs."""
        self._reader = reader
        self._writer = writer
        self._max_frame_bytes = max_frame_bytes
        self._write_high = write_high
        self._encoder = msgspec.msgpack.Encoder(**(hooks or {}))
        self._decoder: msgspec.msgpack.Decoder[In] = msgspec.msgpack.Decoder(incoming, **(decode_hooks or {}))
        writer.transport.set_write_buffer_limits(high=write_high)
        self._queue: deque[bytearray] = deque()
        self._queued_bytes = 0
        self._wake = asyncio.Event()
        self._flusher = asyncio.get_running_loop().create_task(self._flush(), name="channel-flush")

    def send(self, message: msgspec.Struct) -> None:
        frame = bytearray(_LENGTH.size)
        self._encoder.encode_into(message, frame, _LENGTH.size)  # one buffer: length, then message
        _LENGTH.pack_into(frame, 0, len(frame) - _LENGTH.size)
        if not self._queue and self._writer.transport.get_write_buffer_size() < self._write_high:
            self._writer.write(frame)
            return
        self._queue.append(frame)
        self._queued_bytes += len(frame)
        self._wake.set()

    async def _flush(self) -> None:
        with contextlib.suppress(ConnectionError):
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._queue:
                    await self._writer.drain()  # until the transport's buffer is below its low mark
                    frame = self._queue.popleft()
                    self._queued_bytes -= len(frame)
                    self._writer.write(frame)

    async def recv(self) -> In:
        """The next message; ``asyncio.IncompleteReadError`` when the peer closed."""
        (n,) = _LENGTH.unpack(await self._reader.readexactly(_LENGTH.size))
        if n > self._max_frame_bytes:
            raise FrameError(f"a frame of {n} bytes (at most {self._max_frame_bytes})")
        try:
            return self._decoder.decode(await self._reader.readexactly(n))
        except msgspec.DecodeError as e:
            raise FrameError(str(e)) from e

    def send_bounded(self, message: msgspec.Struct, most: int, peer: str) -> None:
        """``send``, and close at once (dropping what waits) if ``peer`` leaves more than ``most``
        bytes unread: an owner holds a bounded amount for any peer, never a growing one."""
        if self.closing:
            return
        self.send(message)
        if self.buffered > most:
            logger.error("%s left %d bytes unread; disconnecting it", peer, self.buffered)
            self.abort()

    @property
    def buffered(self) -> int:
        return self._writer.transport.get_write_buffer_size() + self._queued_bytes

    @property
    def closing(self) -> bool:
        return self._writer.is_closing()

    def close(self) -> None:
        """Close (what the transport holds is still sent; frames still queued are not)."""
        self._flusher.cancel()
        self._writer.close()

    def abort(self) -> None:
        """Close now, dropping what is buffered (a peer that does not read would hold it forever)."""
        self._flusher.cancel()
        self._writer.transport.abort()


async def receive_all(channel: Channel[In], handle: Callable[[In], None], peer: str) -> BaseException | None:
    """Hand every message to ``handle`` until the connection ends; why it ended (None: never, as a
    cancelled reader). A bad frame is logged (naming ``peer``) and ends it too."""
    try:
        while True:
            handle(await channel.recv())
    except (asyncio.IncompleteReadError, ConnectionError) as e:
        return e
    except FrameError as e:
        logger.error("%s sent a bad frame: %s", peer, e)
        return e


async def stop_serving(server: asyncio.Server | None, channels: Iterable[Channel[Any]]) -> None:
    """Stop taking connections, close every open one, and wait until the server has closed."""
    if server is not None:
        server.close()
    for channel in list(channels):
        channel.close()
    if server is not None:
        await server.wait_closed()
