"""Issue 68 H7: ``translate_audio``'s URL fetch refuses an address that is not public in every form
it may be written in, before any connection: IPv6 forms that carry an IPv4 address (NAT64's
``64:ff9b::/96`` and local-use ``64:ff9b:1::/48``, 6to4 ``2002::/16``, IPv4-compatible ``::/96``,
IPv4-mapped, SIIT's ``::ffff:0:0:0/96``), site-local ``fec0::/10``, reserved ranges, and a host
that only ``inet_aton`` reads as an address (``127.1``, ``0x7f.1``, a bare number). Each through
the ``mcp`` SDK's client against a real server on loopback whose ``mcp.fetch_hosts`` lists every
one of them (so only the address check stands between the agent and the fetch): each refused as
``url_not_allowed`` with the host as written, where before the NAT64, 6to4, IPv4-compatible and SIIT
forms and ``fec0::`` were let through to a connection (``fetch_failed`` here, where nothing
answers; a gateway on the way would have reached the IPv4 address)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.support.live_server import LiveServer, serving
from tests.support.mcp_door import http_client, mcp_settings, mcp_url

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(20)]

#: (host as the URL writes it, what it is)
HOSTS = [
    ("[64:ff9b::7f00:1]", "NAT64 of 127.0.0.1"),
    ("[64:ff9b::a9fe:a9fe]", "NAT64 of the cloud metadata address"),
    ("[64:ff9b:1::a00:1]", "local-use NAT64"),
    ("[2002:7f00:1::1]", "6to4 of 127.0.0.1"),
    ("[2002:a9fe:a9fe::1]", "6to4 of the cloud metadata address"),
    ("[::7f00:1]", "IPv4-compatible 127.0.0.1"),
    ("[::ffff:7f00:1]", "IPv4-mapped 127.0.0.1"),
    ("[::ffff:0:7f00:1]", "SIIT 127.0.0.1"),
    ("[fec0::1]", "site-local"),
    ("[5f00::1]", "reserved"),
    ("240.0.0.1", "reserved"),
    ("127.1", "inet_aton's 127.0.0.1"),
    ("0x7f.1", "inet_aton's 127.0.0.1"),
    ("2130706433", "inet_aton's 127.0.0.1"),
    ("0177.0.0.1", "inet_aton's 127.0.0.1"),
]
TOKEN = "mcp-fetch-addresses-4f0a2c"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def live(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    tokens = tmp_path_factory.mktemp("tokens") / "tokens"
    tokens.write_text(f"{TOKEN} translate\n")
    listed = [host.strip("[]") for host, _ in HOSTS]
    settings = mcp_settings(test_model_dir, tokens, fetch_hosts=listed, fetch_timeout_s=5.0)
    async with serving(settings) as server:
        yield server


async def test_every_form_of_an_address_that_is_not_public_is_refused(live: LiveServer) -> None:
    answers: dict[str, tuple[str, str]] = {}
    async with Client(streamable_http_client(mcp_url(live), http_client=http_client(TOKEN))) as c:
        for host, what in HOSTS:
            result = await c.call_tool(
                "translate_audio",
                {"audio_url": f"https://{host}:8443/clip.wav", "source_language": "eng", "target_languages": ["spa"]},
            )
            assert result.is_error, (host, result.content)
            error = result.structured_content["error"]
            assert error["code"] == "INVALID_ARGUMENT"
            answers[host] = error["reason"], error["message"]
            print(f"H7: {host} ({what}): {error['reason']}: {error['message']}")
    # each refused as written, naming its host, before any lookup or connection
    refused = {
        host: reason == "url_not_allowed" and host.strip("[]").lower() in message and "resolves to" not in message
        for host, (reason, message) in answers.items()
    }
    print(f"H7: {sum(refused.values())} of {len(HOSTS)} forms refused as written")
    assert all(refused.values()), refused
