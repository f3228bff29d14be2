"""Bad glossary bodies are refused with a status that says what to fix (issue 87 J9, the glossary
half, and J4's nesting), never a 500 or INTERNAL: a real server on loopback, ``aiohttp`` on
``/v1/glossaries`` and the gRPC ``Glossaries`` stub:

- JSON nested deeper than the decoder reads (100,000 ``[``): was 500, a traceback in the log;
- a TBX whose XML declaration names an encoding expat cannot read (``cp932``, ``bogus``,
  ``idna``): was 500 on the HTTP port and INTERNAL on the gRPC port;
- a TBX nesting elements without end: refused at the bound, naming it (was read to its end).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import grpc
import pytest
import pytest_asyncio

from tests.support.fake_runner import FakeRunner
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.tokens import bearer
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

TOKEN = "bodies-token-6a1f"
TBX = (
    '<?xml version="1.0" encoding="{}"?><martif type="TBX"><text><body><termEntry id="c1">'
    '<langSet xml:lang="en"><tig><term>cloud</term></tig></langSet>'
    '<langSet xml:lang="es"><tig><term>nube</term></tig></langSet></termEntry></body></text></martif>'
)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live(tmp_path_factory: pytest.TempPathFactory, test_model_dir: Path) -> AsyncIterator[LiveServer]:
    folder = tmp_path_factory.mktemp("bodies")
    tokens = folder / "tokens"
    tokens.write_text(f"{TOKEN} * glossaries tenant=acme\n")
    settings = make_settings(test_model_dir)
    settings.auth.tokens_file = tokens
    settings.server.http_port = 0
    settings.glossaries.enabled = True
    settings.glossaries.data_dir = folder / "glossaries"
    async with serving(settings, runner_factory=FakeRunner) as live:
        yield live


async def post(live: LiveServer, body: bytes, content_type: str, query: str = "") -> tuple[int, str]:
    url = f"http://127.0.0.1:{live.server.ports()['http_port']}/v1/glossaries{query}"
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": content_type}
    async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as r:
        text = await r.text()
        if r.content_type == "application/json" and r.status >= 400:
            return r.status, str((await r.json())["error"]["message"])
        return r.status, text


async def test_json_nested_too_deep_is_a_400_saying_so(live: LiveServer) -> None:
    status, message = await post(live, b"[" * 100_000, "application/json")
    print(f"\ndeep JSON: {status} {message}")
    assert status == 400
    assert message.startswith("the body's JSON nests too deep")
    status, message = await post(live, b'{"id": "x", "entries": ' + b"[" * 50_000, "application/json")
    assert status == 400 and message.startswith("the body's JSON nests too deep")


@pytest.mark.parametrize("encoding", ["cp932", "bogus", "idna"])
async def test_a_tbx_in_an_encoding_not_read_is_refused_on_both_ports(live: LiveServer, encoding: str) -> None:
    body = TBX.format(encoding).encode()
    status, message = await post(live, body, "application/x-tbx+xml", "?id=enc&source_language=en")
    print(f"\nTBX in {encoding}: {status} {message}")
    assert status == 400
    assert "names an encoding this server does not read: save it as UTF-8" in message
    content = pb.GlossaryContent(tbx=pb.TbxImport(data=body, source_language="en"))
    stub = pb_grpc.GlossariesStub(live.channel)
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stub.CreateGlossary(
            pb.CreateGlossaryRequest(glossary_id="enc", content=content), metadata=bearer(TOKEN), timeout=30
        )
    assert e.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "save it as UTF-8" in (e.value.details() or "")
    # the same file in UTF-8 is taken
    status, _ = await post(
        live, TBX.format("utf-8").encode(), "application/x-tbx+xml", f"?id={encoding}&source_language=en"
    )
    assert status == 201


async def test_a_tbx_nesting_without_end_is_refused_at_the_bound(live: LiveServer) -> None:
    body = b'<martif type="TBX">' + b"<text>" * 200_000
    status, message = await post(live, body, "application/x-tbx+xml", "?id=deep&source_language=en")
    print(f"\ndeep TBX: {status} {message}")
    assert status == 400
    assert message.startswith("the TBX nests elements more than 32 deep at line 1")
