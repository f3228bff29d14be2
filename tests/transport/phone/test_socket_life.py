"""Issue 58: the phone door's WebSocket lives as every socket of the HTTP port does
(``http.websocket``), where before it was a copy that had drifted:

- a call refused before the upgrade is answered by the port's one refusal table: 429 with
  ``Retry-After`` at a cap, 503 with ``Retry-After`` while the server drains, 500 for the server's
  own fault (the copy sent no ``Retry-After``, and answered every refusal that was not a drain 429);
- a call's socket, once closed, is not kept alive by its heartbeat timer: aiohttp re-arms the
  timer when the carrier's close frame arrives during the close, and the timer then held the
  closed socket (its response, handler and buffers: ~300 KB) for the heartbeat's length (30 s at
  the defaults; issue 53 fixed it for the OpenAI door only).

A real server on loopback; the carrier is a Twilio Media Stream written from Twilio's published
messages (``phone_carriers.FakeTwilio``'s format: "Media Streams - WebSocket Messages"), over
aiohttp's WebSocket client. Twilio retries a refused stream per its own rules; what it is sent is
the status and the header (RFC 9110 10.2.3: ``Retry-After`` with 429 and 503).
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from tests.support.live_server import LiveServer, serving
from tests.support.phone_carriers import FakeTwilio, calls_ended, phone_settings, phone_url
from translate_svc.errors import ServiceError

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(20)]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def phone(test_model_dir: Path) -> AsyncIterator[LiveServer]:
    settings = phone_settings(test_model_dir)
    settings.limits.max_streams = 1
    async with serving(settings) as srv:
        yield srv


async def refused(url: str) -> aiohttp.WSServerHandshakeError:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refusal:
            await http.ws_connect(url)
    return refusal.value


def server_sockets() -> int:
    """The server's WebSocket responses alive in this process (the server runs here)."""
    gc.collect()
    # by each object's own type: ``isinstance`` reads ``__class__``, which some objects (torch's
    # deprecated ``reduce_op``) answer with a warning
    return sum(issubclass(type(o), web.WebSocketResponse) for o in gc.get_objects())


async def test_a_call_over_the_stream_cap_is_refused_429_with_retry_after(phone: LiveServer) -> None:
    url = phone_url(phone.server, "twilio")
    async with aiohttp.ClientSession() as http, http.ws_connect(url):  # holds the one stream slot
        refusal = await refused(url)
    assert refusal.status == 429
    assert refusal.headers is not None and int(refusal.headers["Retry-After"]) >= 1
    await calls_ended(phone.server)


async def test_an_internal_error_at_admission_is_answered_500_not_429(
    phone: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object, **kwargs: object) -> object:
        raise ServiceError("the node's counters could not be read")  # INTERNAL: the server's fault

    monkeypatch.setattr(phone.server.app.sessions, "admit_stream", broken)
    refusal = await refused(phone_url(phone.server, "twilio"))
    assert refusal.status == 500


async def test_a_closed_call_socket_is_not_held_by_its_heartbeat(phone: LiveServer) -> None:
    twilio = FakeTwilio(phone_url(phone.server, "twilio"))
    silence = base64.b64encode(b"\xff" * 160).decode()  # 20 ms of µ-law silence
    before = server_sockets()
    async with aiohttp.ClientSession() as http, http.ws_connect(twilio.url) as ws:
        await ws.send_str(json.dumps(twilio.connected()))
        await ws.send_str(json.dumps(twilio.start()))
        for k in range(10):
            await ws.send_str(json.dumps(twilio.media(k + 1, 20 * k, silence)))
        await ws.send_str(json.dumps(twilio.stop()))  # the caller hung up: the server closes
        async for _ in ws:  # what is left, then the server's close (aiohttp answers it)
            pass
        assert ws.close_code == 1000
    await calls_ended(phone.server)
    await asyncio.sleep(0.5)  # the connection's end, as the server's loop sees it
    assert server_sockets() == before, "the closed call's socket is still alive (its heartbeat timer holds it)"


async def test_a_draining_server_refuses_a_call_503_with_retry_after(test_model_dir: Path) -> None:
    async with serving(phone_settings(test_model_dir)) as live:
        live.server.app.sessions.drain(30.0)  # what the host does on SIGTERM
        refusal = await refused(phone_url(live.server, "twilio"))
    assert refusal.status == 503
    assert refusal.headers is not None and refusal.headers["Retry-After"] == "1"
