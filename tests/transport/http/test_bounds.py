"""Issue 34 on the HTTP port, each attack at small scale against a real server on loopback, and the
victim served once the bound holds: half-sent requests (N6: a cap on open connections, a header
timeout, one log line), unconfigured WebSockets (N3: slots taken before the upgrade, the config
timeout, the message size), browser pages of other sites (N12: the Origin check), and what an
event may make the door echo."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest
import pytest_asyncio
import trustme
from openai import AsyncOpenAI

from tests.support.live_server import LiveServer, make_settings, serving
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.client_cli.decode import load_pcm16k
from translate_svc.transport.http import site as http_site
from translate_svc.transport.openai import loop
from translate_svc.transport.openai.door import PATH

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(30)]

TOKEN = "http-bounds-token-2f7c9a"
CAPPED = "http-bounds-capped-8d1e4b"  # tenant x: two streams at most
MODEL = "gpt-realtime-translate"
CAP = 6  # connections on the HTTP port
HEADER_TIMEOUT_S = 3.0
CONFIG_TIMEOUT_MS = 500
MAX_CHUNK_BYTES = 32 * 1024
#: small, so a message over the bound is sent whole before the server closes (not reset mid-write)
WS_MAX_APPEND_BYTES = 48 * 1024
#: a request's head, not sent whole (no blank line ends it)
HALF_SENT = b"GET /v1/realtime/translations HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
UPDATE = {"type": "session.update", "session": {"audio": {"output": {"language": "es"}}}}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def door(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    tokens = tmp_path_factory.mktemp("tokens") / "tokens"
    tokens.write_text(f"{TOKEN} *\n{CAPPED} stream tenant=x streams=2\n")
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    settings.server.demo_page = True
    settings.auth.tokens_file = tokens
    settings.limits.http_max_connections = CAP
    settings.limits.http_header_timeout_s = HEADER_TIMEOUT_S
    settings.limits.config_timeout_ms = CONFIG_TIMEOUT_MS
    settings.limits.max_chunk_bytes = MAX_CHUNK_BYTES
    settings.limits.ws_max_append_bytes = WS_MAX_APPEND_BYTES
    async with serving(settings) as live:
        yield live


def _port(live: LiveServer) -> int:
    assert live.server.http is not None
    return live.server.http.port


def _site(live: LiveServer) -> http_site.CappedSite:
    assert live.server.http is not None and live.server.http.site is not None
    return live.server.http.site


def _url(live: LiveServer, path: str = "") -> str:
    return f"http://127.0.0.1:{_port(live)}{PATH}{path}"


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _until(check: Callable[[], bool | Awaitable[bool]], what: str, deadline_s: float = 10.0) -> None:
    """Until ``check`` holds (looked at every 50 ms), or fail after ``deadline_s``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while True:
        result = check()
        if result if isinstance(result, bool) else await result:
            return
        if loop.time() > end:
            raise AssertionError(f"not within {deadline_s} s: {what}")
        await asyncio.sleep(0.05)


async def _closed(reader: asyncio.StreamReader) -> tuple[bytes, float]:
    """What the server sent before it closed the connection, and when it closed (loop time)."""
    data = b""
    try:
        while chunk := await reader.read(4096):
            data += chunk
    except ConnectionError:  # closed with our unread request in its buffer: a reset
        pass
    return data, asyncio.get_running_loop().time()


async def _first(tasks: list[asyncio.Task[Any]], n: int, deadline_s: float) -> list[asyncio.Task[Any]]:
    """The ``tasks`` done once ``n`` of them are, or fail after ``deadline_s``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while len(done := [t for t in tasks if t.done()]) < n:
        if loop.time() >= end:
            raise AssertionError(f"{len(done)} of {len(tasks)} done in {deadline_s} s, not {n}")
        pending = [t for t in tasks if not t.done()]
        await asyncio.wait(pending, timeout=end - loop.time(), return_when=asyncio.FIRST_COMPLETED)
    return done


def _server_side_connections(port: int) -> int:
    """This process's accepted sockets on ``port`` (each holds a file descriptor)."""
    return sum(1 for c in psutil.Process().net_connections("tcp") if c.laddr and c.laddr.port == port and c.raddr)


async def _sdk_session(live: LiveServer, token: str = TOKEN) -> list[str]:
    """A session of the real ``openai`` SDK: configured, closed; the events' types."""
    sdk = AsyncOpenAI(base_url=f"http://127.0.0.1:{_port(live)}/v1", api_key=token, max_retries=0)
    got: list[str] = []
    async with sdk.realtime.translations.connect(model=MODEL) as conn:
        got.append((await conn.recv()).type)
        await conn.send(UPDATE)  # type: ignore[arg-type]
        await conn.send({"type": "session.close"})  # type: ignore[arg-type]
        async with asyncio.timeout(30):
            async for ev in conn:
                got.append(ev.type)
    return got


async def _grpc_served(live: LiveServer, shared_audio: Path) -> None:
    """A ListLanguages and a Translate call of the same server answer (structure only)."""
    metadata = (("authorization", f"Bearer {TOKEN}"),)
    langs = await live.stub.ListLanguages(pb.ListLanguagesRequest(), metadata=metadata, timeout=10)
    assert langs.languages
    clip = load_pcm16k(shared_audio / "jfk.flac")[: 16000 * 2].tobytes()
    reply = await live.stub.Translate(
        pb.TranslateRequest(
            audio=pb.AudioInput(content=clip, format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000)),
            target_languages=["spa"],
        ),
        metadata=metadata,
        timeout=60,
    )
    assert reply.audio_duration_ms == 2000


async def _messages(ws: aiohttp.ClientWebSocketResponse, deadline_s: float = 10.0) -> list[dict[str, Any]]:
    """Every event the server sends until it closes the socket."""
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(deadline_s):
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            got.append(json.loads(msg.data))
    return got


# -- N6: half-sent requests --------------------------------------------------------------------------


async def test_half_sent_requests_hold_at_most_the_cap_and_are_dropped_after_the_header_timeout(
    door: LiveServer, shared_audio: Path, caplog: pytest.LogCaptureFixture
) -> None:
    site, port = _site(door), _port(door)
    assert site.max_connections == CAP
    await _until(lambda: site.open_connections == 0, "the port idle (earlier tests' connections closed)")
    refused_before = site.refused
    loop = asyncio.get_running_loop()
    caplog.set_level(logging.WARNING)

    async def half_sent() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(HALF_SENT)
        return reader, writer

    opened_at = loop.time()
    conns = await asyncio.gather(*(half_sent() for _ in range(3 * CAP)))
    try:
        closing = [asyncio.create_task(_closed(reader)) for reader, _ in conns]
        # over the cap: closed as soon as accepted, after a 503 (or a reset, our request unread)
        refused = await _first(closing, 2 * CAP, deadline_s=HEADER_TIMEOUT_S * 0.75)
        for task in refused:
            data, _ = task.result()
            assert data == b"" or data.startswith(b"HTTP/1.1 503 "), data[:100]
            if data:
                assert b"limits.http_max_connections" in data and b"Retry-After: 1" in data, data
        assert site.refused - refused_before == 2 * CAP
        # the process holds one descriptor per connection of the cap, no more; the gRPC door answers
        assert site.open_connections == CAP and _server_side_connections(port) == CAP
        await _grpc_served(door, shared_audio)
        # the cap's connections: closed by the server once the header timeout passed, not before
        held = [t for t in closing if t not in refused]
        async with asyncio.timeout(HEADER_TIMEOUT_S + 10):
            results = await asyncio.gather(*held)
        for data, closed_at in results:
            assert data == b"", data[:100]
            assert closed_at - opened_at >= HEADER_TIMEOUT_S - 0.1, closed_at - opened_at
    finally:
        for _, writer in conns:
            writer.close()
    await _until(lambda: site.open_connections == 0, "the cap's connections released")
    # the victims: a real openai SDK session, and the gRPC door again
    assert await _sdk_session(door) == ["session.created", "session.updated", "session.closed"]
    await _grpc_served(door, shared_audio)
    # the refusals: one line at the first, then one per 10 s with the count; no accept failed (no
    # file descriptor ran out)
    lines = [r.getMessage() for r in caplog.records if "http_max_connections" in r.getMessage()]
    assert lines and "refusing" in lines[0] and lines[1:] in ([], [lines[-1]]), lines
    assert lines[1:] == [] or f"{2 * CAP - 1} more" in lines[1], lines
    assert not [r for r in caplog.records if "out of system resource" in r.getMessage()]


async def test_a_tls_handshake_counts_from_accept_and_is_dropped_after_the_header_timeout(
    test_model_dir: Path, tmp_path: Path
) -> None:
    """The same bound with TLS on the HTTP port: connections that never finish their handshake
    hold at most the cap, each for the header timeout at most; then a wss:// session is served."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(tmp_path / "tls.crt")
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(tmp_path / "tls.crt", append=True)
    cert.private_key_pem.write_to_path(tmp_path / "tls.key")
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    settings.server.tls_cert_file = tmp_path / "tls.crt"
    settings.server.tls_key_file = tmp_path / "tls.key"
    settings.limits.http_max_connections = 2
    settings.limits.http_header_timeout_s = 2.0
    async with serving(settings, warmup=False) as live:
        site, port = _site(live), _port(live)
        opened_at = asyncio.get_running_loop().time()
        conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(6)]  # no ClientHello
        try:
            closing = [asyncio.create_task(_closed(reader)) for reader, _ in conns]
            await _first(closing, 4, deadline_s=1.5)  # over the cap: closed at once
            assert site.refused == 4 and site.open_connections == 2
            async with asyncio.timeout(12):
                assert [data for data, _ in await asyncio.gather(*closing)] == [b""] * 6
            assert max(t.result()[1] for t in closing) - opened_at >= 2.0 - 0.1
        finally:
            for _, writer in conns:
                writer.close()
        await _until(lambda: site.open_connections == 0, "the handshakes released")
        tls = ssl.create_default_context()
        ca.configure_trust(tls)
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(f"wss://127.0.0.1:{port}{PATH}", ssl=tls) as ws,
        ):
            assert json.loads((await ws.receive(timeout=10)).data)["type"] == "session.created"


# -- N3: unconfigured WebSockets ---------------------------------------------------------------------


async def test_unconfigured_sockets_hold_their_tenants_slots_until_the_config_timeout(door: LiveServer) -> None:
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as http:
        opened_at = loop.time()
        held = [await http.ws_connect(_url(door), headers=_auth(CAPPED)) for _ in range(2)]
        for ws in held:
            assert json.loads((await ws.receive(timeout=10)).data)["type"] == "session.created"
        # tenant x is at its cap of 2 streams: the third is refused at the handshake, not upgraded
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(_url(door), headers=_auth(CAPPED))
        assert refused.value.status == 429 and refused.value.headers is not None
        assert refused.value.headers.get("Retry-After") == "1"
        async with http.get(_url(door), headers=_auth(CAPPED)) as answer:
            body = await answer.json()
        assert answer.status == 429 and "streams=2" in body["error"]["message"], body
        # the two never send a config: ended by the server at limits.config_timeout_ms
        for ws in held:
            events = await _messages(ws)
            codes = [e["error"]["code"] for e in events if e["type"] == "error"]
            assert codes == ["config_timeout"], events
            assert ws.closed
        assert loop.time() - opened_at >= CONFIG_TIMEOUT_MS / 1000 - 0.05
    # the tenant's slots are back: its next session is served
    assert await _sdk_session(door, CAPPED) == ["session.created", "session.updated", "session.closed"]


async def test_a_websocket_message_is_bounded_by_one_audio_append_not_max_message_bytes(door: LiveServer) -> None:
    """A session.update as large as the bound (a flood of tags) is never parsed: 1009."""
    limits = door.server.settings.limits
    bound = loop.ws_message_bytes(limits.ws_max_append_bytes)
    assert bound < limits.max_message_bytes
    update = {"type": "session.update", "session": {"audio": {"output": {"languages": ["es"] * (bound // 5)}}}}
    async with aiohttp.ClientSession() as http, http.ws_connect(_url(door), headers=_auth(TOKEN)) as ws:
        await ws.receive(timeout=10)  # session.created
        await ws.send_str(json.dumps(update))
        assert await _messages(ws) == []  # nothing is parsed: the socket is closed
    assert ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG


async def test_an_unconfigured_socket_is_closed_at_its_first_message_over_the_size_bound(door: LiveServer) -> None:
    """What an unconfigured socket can make the server hold is bounded by the message size (one
    audio append of limits.ws_max_append_bytes as base64, and room for JSON): a larger message
    closes the socket (1009) and releases its slot."""
    max_msg = loop.ws_message_bytes(door.server.settings.limits.ws_max_append_bytes)
    async with aiohttp.ClientSession() as http:
        for _ in range(2):  # twice the tenant's cap: each socket's slot is released when it closes
            async with http.ws_connect(_url(door), headers=_auth(CAPPED)) as ws:
                assert json.loads((await ws.receive(timeout=10)).data)["type"] == "session.created"
                await ws.send_str(json.dumps({"type": "x", "pad": "a" * (2 * max_msg)}))
                await _messages(ws)
                assert ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
            async with http.ws_connect(_url(door), headers=_auth(CAPPED)) as ws:
                assert json.loads((await ws.receive(timeout=10)).data)["type"] == "session.created"


async def test_a_draining_server_refuses_a_socket_at_the_handshake_with_503(test_model_dir: Path) -> None:
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    async with serving(settings, warmup=False) as live:
        live.server.app.sessions.drain(5.0)
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(_url(live))
            assert refused.value.status == 503
            async with http.get(_url(live)) as answer:
                assert answer.status == 503
                assert (await answer.json())["error"]["code"] == "server_shutting_down"


# -- N12: browser pages of other sites ---------------------------------------------------------------


async def test_a_page_of_another_site_is_refused_and_this_servers_own_page_is_not(
    door: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = f"http://127.0.0.1:{_port(door)}"
    foreign = "https://evil.example"
    mint = _url(door, "/client_secrets")
    demo_mint = f"{own}/demo/client_secret"
    async with aiohttp.ClientSession() as http:
        # another site's page: no WebSocket, no secret (the SDK's and the demo page's endpoints)
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(_url(door), headers={**_auth(TOKEN), "Origin": foreign})
        assert refused.value.status == 403
        for url, headers in ((_url(door), _auth(TOKEN)), (mint, _auth(TOKEN)), (demo_mint, {})):
            method = http.get if url == _url(door) else http.post
            async with method(url, headers={**headers, "Origin": foreign}, json={}) as answer:
                body = await answer.json()
            assert answer.status == 403, (url, body)
            assert body["error"]["code"] == "origin_not_allowed" and "http_allowed_origins" in body["error"]["message"]
            assert foreign not in json.dumps(body)
        # this server's own page, and clients that are not browsers (no Origin): served
        for origin in ({"Origin": own}, {}):
            async with http.ws_connect(_url(door), headers={**_auth(TOKEN), **origin}) as ws:
                assert json.loads((await ws.receive(timeout=10)).data)["type"] == "session.created"
            async with http.post(mint, headers={**_auth(TOKEN), **origin}, json={}) as answer:
                assert answer.status == 200 and (await answer.json())["value"].startswith("ek_")
            async with http.post(demo_mint, headers=origin) as answer:
                assert answer.status == 200 and (await answer.json())["value"].startswith("ek_")
        # an origin the operator lists is let in
        monkeypatch.setattr(door.server.app.sessions.limits, "http_allowed_origins", [foreign + "/"])
        async with http.ws_connect(_url(door), headers={**_auth(TOKEN), "Origin": foreign}) as ws:
            assert json.loads((await ws.receive(timeout=10)).data)["type"] == "session.created"
        async with http.post(demo_mint, headers={"Origin": foreign}) as answer:
            assert answer.status == 200


# -- what an event makes the door echo ---------------------------------------------------------------


async def test_an_events_type_and_event_id_are_echoed_bounded(door: LiveServer) -> None:
    events = [
        # unknown; its id (64 characters) echoed. (60,000 characters: an event over 64 KiB beside
        # audio is refused unread, as event_too_large: issue 52 F3)
        {"type": "t" * 60_000, "event_id": "e" * 64},
        {"type": {"nested": ["x"] * 10_000}},  # not a string
        {**UPDATE, "event_id": "e" * 65},  # an id too long: refused, not used, not echoed
        {**UPDATE, "event_id": {"an": "object"}},
        {**UPDATE, "event_id": "mine"},  # a good one: used (its id is no error's)
        {"type": "session.close"},
    ]
    async with aiohttp.ClientSession() as http, http.ws_connect(_url(door), headers=_auth(TOKEN)) as ws:
        assert json.loads((await ws.receive(timeout=10)).data)["type"] == "session.created"
        for event in events:
            await ws.send_str(json.dumps(event))
        got = await _messages(ws)
    errors = [e["error"] for e in got if e["type"] == "error"]
    assert [e["code"] for e in errors] == ["unknown_event", "unknown_event", "invalid_value", "invalid_value"], got
    assert errors[0]["event_id"] == "e" * 64 and "t" * 64 + "'..." in errors[0]["message"]
    assert all(len(e["message"]) < 200 for e in errors), [len(e["message"]) for e in errors]
    assert "not a string" in errors[1]["message"]
    assert all(e["event_id"] is None for e in errors[1:]) and "64 characters" in errors[2]["message"]
    # neither refused update was used: the session starts at the good one
    assert [e["type"] for e in got][-2:] == ["session.updated", "session.closed"], got
    assert [e["type"] for e in got].count("session.updated") == 1, got
