"""Stored glossaries take at most a byte budget per tenant and one for every tenant together
(issue 87 J12: before, a tenant could keep ``max_glossaries`` x ``max_import_bytes``, about 340
MiB, and every tenant as much): real servers on loopback with a tokens file of two tenants, the
glossaries in an SQLite file (one server) or a real ``redis-server`` shared by two servers (two
pods: the budgets are the store's, counted whichever pod writes). A tenant that fills its budget is
refused RESOURCE_EXHAUSTED on gRPC and 429 on the HTTP port, naming the setting; another tenant
then fills the store's; a delete gives its bytes back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import grpc
import pytest
import pytest_asyncio

from tests.support.fake_runner import FakeRunner
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.redis_server import RedisServer, redis_server
from tests.support.tokens import bearer
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

ACME, OTHER = "budget-acme-token-2b7c", "budget-other-token-9e40"
KIB = 1024
#: entries of about 20 KiB as stored: a tenant's 64 KiB hold three
ENTRIES = 160


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def kept(request: pytest.FixtureRequest) -> Iterator[RedisServer | None]:
    if request.param == "sqlite":
        yield None
    else:
        with redis_server() as redis:
            yield redis


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pods(
    kept: RedisServer | None, tmp_path_factory: pytest.TempPathFactory, test_model_dir: Path
) -> AsyncIterator[list[LiveServer]]:
    folder = tmp_path_factory.mktemp("budgets")
    tokens = folder / "tokens"
    tokens.write_text(f"{ACME} * glossaries tenant=acme\n{OTHER} * glossaries tenant=other\n")
    settings = make_settings(test_model_dir)
    settings.auth.tokens_file = tokens
    settings.server.http_port = 0
    settings.glossaries.enabled = True
    settings.glossaries.max_tenant_bytes = 64 * KIB
    settings.glossaries.max_total_bytes = 96 * KIB
    if kept is None:
        settings.glossaries.data_dir = folder / "glossaries"
    else:
        settings.cluster.redis_url = kept.url
    async with AsyncExitStack() as stack:
        servers = [await stack.enter_async_context(serving(settings, runner_factory=FakeRunner))]
        if kept is not None:
            servers.append(await stack.enter_async_context(serving(settings, runner_factory=FakeRunner)))
        yield servers


def content(tag: str) -> pb.GlossaryContent:
    """About 20 KiB as stored."""
    rows = [
        pb.GlossaryEntry(
            phrase=f"{tag} phrase {k:03} " + "x" * 40, translation=f"frase {k:03} " + "y" * 40, target_language="spa"
        )
        for k in range(ENTRIES)
    ]
    return pb.GlossaryContent(entries=pb.GlossaryEntries(entries=rows))


async def create(live: LiveServer, token: str, gid: str) -> None:
    stub = pb_grpc.GlossariesStub(live.channel)
    await stub.CreateGlossary(
        pb.CreateGlossaryRequest(glossary_id=gid, content=content(gid)), metadata=bearer(token), timeout=30
    )


async def refused(live: LiveServer, token: str, gid: str) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await create(live, token, gid)
    assert e.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    return e.value.details() or ""


async def http_create(live: LiveServer, token: str, gid: str) -> tuple[int, str]:
    url = f"http://127.0.0.1:{live.server.ports()['http_port']}/v1/glossaries"
    rows = [
        {"phrase": e.phrase, "translation": e.translation, "target_language": e.target_language}
        for e in content(gid).entries.entries
    ]
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, json={"id": gid, "entries": rows}, headers={"Authorization": f"Bearer {token}"}) as r,
    ):
        body = await r.json()
        return r.status, str(body.get("error", {}).get("message", ""))


async def test_a_tenant_and_the_store_fill_their_byte_budgets(pods: list[LiveServer]) -> None:
    first, last = pods[0], pods[-1]
    for k in range(3):
        await create(first, ACME, f"g{k}")
    message = await refused(last, ACME, "g3")  # on the other pod too: the store counts
    print(f"\na tenant's fourth: {message}")
    assert message.startswith("tenant 'acme''s glossaries take ")
    assert message.endswith(f"past {64 * KIB} (glossaries.max_tenant_bytes): delete or shrink one first")
    status, message = await http_create(first, ACME, "g3")
    assert status == 429 and "(glossaries.max_tenant_bytes)" in message

    await create(last, OTHER, "o0")
    status, message = await http_create(last, OTHER, "o1")  # every tenant's: about 99,000 bytes > 96 KiB
    print(f"the store's: {status} {message}")
    assert status == 429 and "(glossaries.max_total_bytes)" in message and "acme" not in message

    stub = pb_grpc.GlossariesStub(first.channel)
    await stub.DeleteGlossary(pb.DeleteGlossaryRequest(glossary_id="g0"), metadata=bearer(ACME), timeout=30)
    await create(last, OTHER, "o1")  # what acme gave back
