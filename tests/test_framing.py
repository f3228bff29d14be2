"""The frames of both process wires (``translate_svc/framing.py``): the engine's
(``engine/remote/wire.py``) and the node hub's (``cluster/hub_wire.py``) messages travel in them.
Over a real Unix socket pair, on this loop: a frame is a 4-byte big-endian length and one
MessagePack message; messages arrive whole and in order however they queue; a frame over the bound,
or one that does not decode, is a broken peer (``FrameError``; ``receive_all`` ends and names the
peer); a peer that stops reading is disconnected at its bound (``send_bounded``), ``buffered``
counting what waits; ``close`` still sends what the transport holds but not what is queued;
``stop_serving`` closes a server and its channels (issue 71: the module had no test of its own)."""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import struct
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
import pytest_asyncio

from tests.support.waiting import until
from translate_svc import framing

pytestmark = [pytest.mark.unit, pytest.mark.asyncio(loop_scope="session")]


class Ping(msgspec.Struct, tag=True):
    n: int


class Blob(msgspec.Struct, tag=True):
    n: int
    data: bytes


Message = Ping | Blob
BOUND = 1 << 20


class Pair:
    """Two ends of a socket pair: ``left`` a channel; ``right`` a channel, or raw streams."""

    def __init__(self) -> None:
        self.channels: list[framing.Channel[Message]] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def ends(self) -> tuple[tuple[asyncio.StreamReader, asyncio.StreamWriter], ...]:
        a, b = socket.socketpair()
        ends = (await asyncio.open_connection(sock=a), await asyncio.open_connection(sock=b))
        self.writers += [w for _, w in ends]
        return ends

    def channel(
        self, streams: tuple[asyncio.StreamReader, asyncio.StreamWriter], **kw: int
    ) -> framing.Channel[Message]:
        options = {"max_frame_bytes": BOUND, "write_high": 64 * 1024, **kw}
        channel = framing.Channel[Message](*streams, Message, **options)
        self.channels.append(channel)
        return channel

    async def channels_of(self, **kw: int) -> tuple[framing.Channel[Message], framing.Channel[Message]]:
        a, b = await self.ends()
        return self.channel(a, **kw), self.channel(b, **kw)


@pytest_asyncio.fixture(loop_scope="session")
async def pair() -> AsyncIterator[Pair]:
    made = Pair()
    yield made
    for channel in made.channels:
        if not channel.closing:
            channel.abort()
    for writer in made.writers:
        writer.close()


async def test_a_frame_is_a_big_endian_length_and_one_messagepack_message(pair: Pair) -> None:
    (ra, wa), raw = await pair.ends()
    left = pair.channel((ra, wa))
    left.send(Ping(7))
    reader, _ = raw
    (n,) = struct.unpack(">I", await reader.readexactly(4))
    assert msgspec.msgpack.decode(await reader.readexactly(n), type=Message) == Ping(7)


async def test_messages_arrive_whole_and_in_order_however_they_queue(pair: Pair) -> None:
    # a low mark: most frames wait in the channel's own queue while the peer is not reading yet
    left, right = await pair.channels_of(write_high=1024)
    sent: list[Message] = []
    for n in range(400):
        message: Message = Blob(n, bytes([n % 256]) * (n * 37 % 9000)) if n % 3 else Ping(n)
        left.send(message)
        sent.append(message)
    assert left.buffered > 0  # the kernel's buffer is full: the rest waits, counted
    got = [await right.recv() for _ in sent]
    assert got == sent
    await until(lambda: left.buffered == 0)


async def test_a_frame_over_the_bound_is_a_broken_peer(pair: Pair) -> None:
    raw, ours = await pair.ends()
    right = pair.channel(ours, max_frame_bytes=1000)
    raw[1].write(struct.pack(">I", 1001))
    with pytest.raises(framing.FrameError, match="a frame of 1001 bytes"):
        async with asyncio.timeout(10):  # (not the 1001 bytes awaited: they never come)
            await right.recv()


@pytest.mark.parametrize("payload", [b"\xc1", msgspec.msgpack.encode({"type": "Unknown", "n": 1})])
async def test_a_frame_that_does_not_decode_is_a_broken_peer(pair: Pair, payload: bytes) -> None:
    raw, ours = await pair.ends()
    right = pair.channel(ours)
    raw[1].write(struct.pack(">I", len(payload)) + payload)
    with pytest.raises(framing.FrameError):
        await right.recv()


async def test_receive_all_hands_every_message_then_says_why_it_ended(
    pair: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    left, right = await pair.channels_of()
    for n in range(3):
        left.send(Ping(n))
    left.close()
    handled: list[Message] = []
    ended = await framing.receive_all(right, handled.append, "the left peer")
    assert handled == [Ping(0), Ping(1), Ping(2)] and isinstance(ended, asyncio.IncompleteReadError)

    raw, ours = await pair.ends()
    right = pair.channel(ours)
    good = msgspec.msgpack.encode(Ping(9))
    raw[1].write(struct.pack(">I", len(good)) + good + struct.pack(">I", 1) + b"\xc1")
    handled.clear()
    with caplog.at_level(logging.ERROR, logger="translate_svc.framing"):
        ended = await framing.receive_all(right, handled.append, "a garbled peer")
    assert handled == [Ping(9)] and isinstance(ended, framing.FrameError)
    assert any("a garbled peer sent a bad frame" in r.getMessage() for r in caplog.records)


async def test_a_peer_that_stops_reading_is_disconnected_at_its_bound(
    pair: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    left, right = await pair.channels_of()
    blob = Blob(0, b"x" * 64 * 1024)
    sent = 0
    with caplog.at_level(logging.ERROR, logger="translate_svc.framing"):
        while not left.closing and sent < 1000:
            left.send_bounded(blob, BOUND, "a sleeping peer")
            sent += 1
    assert left.closing and sent < 1000
    assert any("a sleeping peer left" in r.getMessage() and "unread" in r.getMessage() for r in caplog.records)
    left.send_bounded(blob, BOUND, "a sleeping peer")  # once closing: nothing, no error
    # what the peer can still read is what the kernel took: whole frames, then the end
    got = 0
    with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
        while True:
            assert await right.recv() == blob
            got += 1
    assert got < sent


async def test_close_sends_what_the_transport_holds_but_not_what_is_queued(pair: Pair) -> None:
    left, right = await pair.channels_of(write_high=1024)
    sent = [Blob(n, b"y" * 16 * 1024) for n in range(100)]  # far more than the kernel takes
    for message in sent:
        left.send(message)
    left.close()
    got: list[Message] = []
    with pytest.raises(asyncio.IncompleteReadError):
        while True:
            got.append(await right.recv())
    assert got and got == sent[: len(got)] and len(got) < len(sent)


async def test_stop_serving_closes_the_server_and_every_open_channel(pair: Pair) -> None:
    folder = Path(tempfile.mkdtemp(prefix="framing-"))
    accepted: list[framing.Channel[Message]] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(pair.channel((reader, writer)))

    try:
        server = await asyncio.start_unix_server(accept, path=folder / "wire.sock")
        clients = [pair.channel(await asyncio.open_unix_connection(folder / "wire.sock")) for _ in range(2)]
        await until(lambda: len(accepted) == 2)
        await framing.stop_serving(server, accepted)
        assert not server.is_serving()
        for client in clients:
            with pytest.raises(asyncio.IncompleteReadError):
                await client.recv()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
