"""A client that leaves ``/mcp`` while its answer is on the way (issue 62): the call runs to its
end (its access line), the write that finds the connection closed is one rate-limited INFO line of
the port's refusal log, and nothing of it is an ERROR with a traceback (the SDK's own logging of
it was ~2 KB a time, as often as any token holder cares to hang up). The test checkpoint makes the
clip slow enough to leave during it."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from tests.support.live_server import LiveServer, serving
from tests.support.mcp_door import checkpoint_settings, mcp_url

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(20)]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def live(test_model_dir: Path) -> AsyncIterator[LiveServer]:
    async with serving(checkpoint_settings(test_model_dir)) as server:
        yield server


class Records(logging.Handler):
    """Every record at INFO and above, and an event when the refusal log says a client left."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []
        self.left = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        if record.name == "translate_svc.transport.refusal_log" and "left while it was sent" in record.getMessage():
            self.left.set()


@pytest.fixture
def records() -> Iterator[Records]:
    handler = Records()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def test_a_client_that_leaves_mid_answer_is_one_info_line(
    live: LiveServer, shared_audio: Path, records: Records
) -> None:
    clip = base64.b64encode((shared_audio / "silero_test.wav").read_bytes()).decode()
    arguments = {"audio_base64": clip, "source_language": "eng", "target_languages": ["spa"], "speech": True}
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "translate_audio", "arguments": arguments},
    }
    headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"}
    async with aiohttp.ClientSession() as http:
        with pytest.raises(TimeoutError):  # the client leaves while the clip is translated
            async with http.post(
                mcp_url(live), json=body, headers=headers, timeout=aiohttp.ClientTimeout(total=0.5)
            ) as r:
                assert r.status == 200  # an event stream: the answer comes on it
                await r.read()
    await asyncio.wait_for(records.left.wait(), 60)
    assert any("method=mcp.translate_audio" in r.getMessage() for r in records.records)  # the call ran to its end
    errors = [r for r in records.records if r.levelno >= logging.ERROR or r.exc_info]
    assert errors == [], [r.getMessage() for r in errors]
