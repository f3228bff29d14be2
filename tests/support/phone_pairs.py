"""Two-party calls' tests' helpers: a Twilio leg that speaks until the server closes it and keeps
the close's code and reason (what a carrier is told when a call is ended), through the messages of
``phone_carriers.FakeTwilio`` (Twilio's published Media Streams messages)."""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass

import aiohttp

from tests.support.phone_carriers import FRAME_S, FakeTwilio


@dataclass
class Closed:
    """How the server ended a leg: the close frame's code and reason, and when (seconds after the
    leg's ``start``); None: it had not closed by the time the leg stopped waiting."""

    code: int | None
    reason: str
    after_s: float | None
    media: int


async def held_until_closed(leg: FakeTwilio, max_s: float) -> Closed:
    """Open ``leg``'s WebSocket, send ``connected`` and ``start``, then µ-law silence every 20 ms
    (as a carrier does) until the server closes the socket or ``max_s`` passes."""
    loop = asyncio.get_running_loop()
    media = 0
    async with aiohttp.ClientSession() as http, http.ws_connect(leg.url, headers=leg.headers, autoclose=False) as ws:
        await ws.send_str(json.dumps(leg.connected()))
        await ws.send_str(json.dumps(leg.start()))
        t0 = loop.time()
        silence = base64.b64encode(b"\xff" * 160).decode()
        chunk = 0

        async def speak() -> None:
            nonlocal chunk
            while not ws.closed:
                chunk += 1
                await asyncio.sleep(max(0.0, t0 + chunk * FRAME_S - loop.time()))
                if not ws.closed:
                    await ws.send_str(json.dumps(leg.media(chunk, chunk * 20, silence)))

        speaking = loop.create_task(speak())
        try:
            async with asyncio.timeout(max_s):
                while True:
                    msg = await ws.receive()
                    if msg.type == aiohttp.WSMsgType.TEXT and json.loads(msg.data).get("event") == "media":
                        media += 1
                    elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                        after = loop.time() - t0
                        code = msg.data if msg.type == aiohttp.WSMsgType.CLOSE else ws.close_code
                        await ws.close()
                        return Closed(code, msg.extra or "", after, media)
        except TimeoutError:
            return Closed(None, "", None, media)
        finally:
            speaking.cancel()
