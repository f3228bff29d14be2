"""Issue 59: a tenant's room caps hold wherever its rooms and listeners land. Two real servers share
a real ``redis-server``; the tenant's line says ``rooms=2 listeners=3``:

- three listeners over the two servers (rooms ``a`` on the first, ``b`` on the second), the
  fourth is refused RESOURCE_EXHAUSTED naming ``listeners`` on either;
- two rooms open over the two servers, a third room is refused naming ``rooms`` on either;
- another tenant is let in meanwhile; a listener that leaves gives its slot back cluster-wide.

The node's own room limits (``rooms.max_rooms``, ``rooms.max_listeners``) bound one server's
memory and stay per server (docs/decisions.md, "Caps as leases"). A room with parties on two
servers counts once on each against ``rooms=`` (stricter, never looser: docs/rooms.md). Before:
each server counted its own (a fourth listener and a third room were let in on the other server).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.support.calls import own_channel
from tests.support.redis_server import redis_server
from tests.support.server_process import ServerProcess
from tests.support.tokens import bearer
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(60)]

ACME = "acme-rooms-token-0123456789abcdef"
OTHER = "other-rooms-token-0123456789abcdef"


@pytest.fixture(scope="module")
def servers(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ServerProcess]]:
    tokens = tmp_path_factory.mktemp("room-caps") / "tokens"
    tokens.write_text(f"{ACME} * tenant=acme rooms=2 listeners=3\n{OTHER} * tenant=other\n")
    args = ["--model", str(test_model_dir), "--host", "127.0.0.1", "--port", "0", "--tokens-file", str(tokens)]
    with redis_server() as redis:
        started: list[ServerProcess] = []
        try:
            for _ in range(2):
                started.append(
                    ServerProcess(
                        args,
                        env={"TRANSLATE_SVC_CLUSTER__REDIS_URL": redis.url, "TRANSLATE_SVC_CLUSTER__LEASE_S": "3"},
                    )
                )
            yield started
        finally:
            for server in started:
                server.stop()


class Listens:
    """Listen calls opened on the servers, cancelled at the end."""

    def __init__(self, servers: list[ServerProcess]) -> None:
        self.channels = [own_channel(s.address) for s in servers]
        self.calls: list[Any] = []

    async def open(self, server: int, room: str, token: str = ACME) -> str:
        """``started`` (let in, held open) or the refusal's status and message."""
        call = pb_grpc.TranslatorStub(self.channels[server]).Listen(
            pb.ListenRequest(room=room, language="spa"), metadata=bearer(token)
        )
        self.calls.append(call)
        try:
            event = await asyncio.wait_for(call.read(), 30)
            return str(event.WhichOneof("event"))
        except grpc.aio.AioRpcError as e:
            return f"{e.code().name}: {e.details()}"

    async def close(self) -> None:
        for call in self.calls:
            call.cancel()
        for channel in self.channels:
            await channel.close()


async def test_a_tenants_listeners_and_rooms_are_capped_over_both_servers(servers: list[ServerProcess]) -> None:
    listens = Listens(servers)
    try:
        assert await listens.open(0, "a") == "started"  # room a on the first server
        assert await listens.open(1, "b") == "started"  # room b on the second
        assert await listens.open(0, "a") == "started"  # a third listener, no new room
        for server, room in ((1, "b"), (0, "a")):
            over = await listens.open(server, room)
            assert over.startswith("RESOURCE_EXHAUSTED") and "listeners" in over, (server, over)
        assert await listens.open(1, "b", OTHER) == "started"  # another tenant is let in
        # a listener of room a leaves: its slot is free on the other server too
        listens.calls[2].cancel()
        deadline = asyncio.get_running_loop().time() + 10
        while (seen := await listens.open(1, "b")) != "started":
            assert asyncio.get_running_loop().time() < deadline, f"the slot never came back: {seen}"
            await asyncio.sleep(0.2)
        listens.calls[-1].cancel()
        await asyncio.sleep(0.5)
        # two rooms open (a on the first server, b on the second): a third is refused on either
        for server in (0, 1):
            third = await listens.open(server, "c")
            assert third.startswith("RESOURCE_EXHAUSTED") and "rooms" in third, (server, third)
    finally:
        await listens.close()
