"""The SDK sends a glossary's CSV or TBX over ``ImportGlossary`` in chunks (issue 91), and to a
server from before it (no such method: UNIMPLEMENTED, or INTERNAL when its chunks were in flight)
in one ``CreateGlossary`` or ``ReplaceGlossary`` message, as it did. The older server here is a
real gRPC server on loopback serving the ``Glossaries`` service as servers before issue 91 did:
only the five unary methods, registered by name (what grpc answers for a method it has not is
its own)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
import pytest_asyncio

from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.client import AsyncTranslateClient

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

SERVICE = "translate_svc.api.v1.Glossaries"


class OlderServer:
    """``CreateGlossary`` and ``ReplaceGlossary`` only: each request kept, a glossary answered."""

    def __init__(self) -> None:
        self.requests: list[Any] = []

    async def create(self, request: pb.CreateGlossaryRequest, context: Any) -> pb.Glossary:
        self.requests.append(request)
        return pb.Glossary(glossary_id=request.glossary_id, entry_count=1, revision=1)

    async def replace(self, request: pb.ReplaceGlossaryRequest, context: Any) -> pb.Glossary:
        self.requests.append(request)
        return pb.Glossary(glossary_id=request.glossary_id, entry_count=1, revision=request.revision + 1)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def older() -> AsyncIterator[tuple[OlderServer, int]]:
    servicer = OlderServer()
    handlers = {
        "CreateGlossary": grpc.unary_unary_rpc_method_handler(
            servicer.create,
            request_deserializer=pb.CreateGlossaryRequest.FromString,
            response_serializer=pb.Glossary.SerializeToString,
        ),
        "ReplaceGlossary": grpc.unary_unary_rpc_method_handler(
            servicer.replace,
            request_deserializer=pb.ReplaceGlossaryRequest.FromString,
            response_serializer=pb.Glossary.SerializeToString,
        ),
    }
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield servicer, port
    finally:
        await server.stop(None)


@pytest.mark.parametrize("size", [2_000, 3_000_000])  # one chunk; many in flight
async def test_an_older_server_gets_the_file_in_one_message(older: tuple[OlderServer, int], size: int) -> None:
    servicer, port = older
    servicer.requests.clear()
    data = b"phrase,translation,target_language\n" + b"a,b,spa\n" * (size // 8)
    async with AsyncTranslateClient(f"127.0.0.1:{port}") as client:
        made = await client.create_glossary("old", csv=data, display_name="Old")
        new = await client.replace_glossary("old", tbx=data, source_language="en", revision=1)
    assert (made.id, new.revision) == ("old", 2)
    create, replace = servicer.requests
    assert isinstance(create, pb.CreateGlossaryRequest) and create.content.csv == data
    assert create.display_name == "Old"
    assert isinstance(replace, pb.ReplaceGlossaryRequest) and replace.content.tbx.data == data
    assert (replace.content.tbx.source_language, replace.revision) == ("en", 1)
