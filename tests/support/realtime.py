"""The OpenAI-compatible door's realtime sessions as the token tests open them, with the real
``openai`` SDK: a client of a live server's HTTP port with a key, and a session opened and closed
at once (what its events say is whether the key opened it)."""

from __future__ import annotations

import asyncio

from openai import AsyncOpenAI

from tests.support.live_server import LiveServer

MODEL = "gpt-realtime-translate"  # the model a session asks for, as the OpenAI tests name it


def openai_client(live: LiveServer, key: str) -> AsyncOpenAI:
    """The SDK's client of ``live``'s HTTP port with ``key`` (a token or a client secret), no retries."""
    assert live.server.http is not None
    return AsyncOpenAI(base_url=f"http://127.0.0.1:{live.server.http.port}/v1", api_key=key, max_retries=0)


async def session_events(live: LiveServer, key: str) -> list[str]:
    """Open a session with ``key``, close it at once: the events' types."""
    got: list[str] = []
    async with openai_client(live, key).realtime.translations.connect(model=MODEL) as conn:
        assert (await conn.recv()).type == "session.created"
        await conn.send({"type": "session.update", "session": {"audio": {"output": {"language": "es"}}}})  # type: ignore[arg-type]
        await conn.send({"type": "session.close"})  # type: ignore[arg-type]
        async with asyncio.timeout(30):
            async for ev in conn:
                got.append(ev.type)
    return got
