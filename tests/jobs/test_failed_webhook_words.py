"""Issue 87 J10: a ``job.failed`` webhook carries no caller text. Before, its ``error`` was the
job's whole error message, which quotes what the caller sent (a glossary id, up to ~20
characters of it) to the operator's receiver. Now it says why in the server's words only (``reason``
and a fixed ``error`` from ``jobs/worker.py``'s ``FAILURES``); the job's owner reads the whole
message from the job's status.

A real server on loopback (the test checkpoint, stored glossaries on), a webhook receiver on
loopback verifying with ``standardwebhooks``; the job names a glossary its tenant does not have."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from tests.support.attacks.jobs import jobs_url, status_of, token_line
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.webhook_receiver import Receiver, new_secret, receiving

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(30)]

TOKEN = "webhook-words-token-0f5e8d2a"
#: what the caller sends, which the operator's receiver must not see
CALLER_TEXT = "zqcallerwords4471"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(
    test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[LiveServer, Receiver]]:
    tmp = tmp_path_factory.mktemp("words")
    tokens = tmp / "tokens"
    tokens.write_text(token_line(TOKEN, "words", "glossaries"))
    async with receiving(new_secret()) as receiver:
        settings = make_settings(test_model_dir)
        settings.server.http_port = 0
        settings.auth.tokens_file = tokens
        settings.jobs.dir = tmp / "jobs"
        settings.glossaries.enabled = True
        settings.glossaries.data_dir = tmp / "glossaries"
        settings.webhooks = receiver.webhooks(tmp / "events", ["job.failed"])
        async with serving(settings) as live:
            yield live, receiver


async def test_a_failed_jobs_webhook_says_why_in_the_servers_words(
    served: tuple[LiveServer, Receiver], shared_audio: Path
) -> None:
    live, receiver = served
    base = jobs_url(live)
    async with aiohttp.ClientSession() as http:
        body = {"source_language": "eng", "target_languages": ["spa"], "glossaries": [CALLER_TEXT]}
        status, job = await status_of(http, "POST", base, TOKEN, json=body)
        assert status == 201, job
        status, got = await status_of(
            http, "PUT", f"{base}/{job['id']}/audio", TOKEN, data=(shared_audio / "jfk.flac").read_bytes()
        )
        assert status == 200, got
        status, got = await status_of(http, "POST", f"{base}/{job['id']}/complete", TOKEN)
        assert status == 202, got
        while (now := (await status_of(http, "GET", f"{base}/{job['id']}?wait=30", TOKEN))[1])["state"] not in (
            "done",
            "failed",
        ):
            pass
    assert now["state"] == "failed" and CALLER_TEXT in now["error"], now  # the owner sees why, whole
    await receiver.wait_for(lambda r: any(e["data"]["job_id"] == job["id"] for e in r.events("job.failed")))
    event = next(e for e in receiver.events("job.failed") if e["data"]["job_id"] == job["id"])
    print(f"\nJ10: job.failed's data: {json.dumps(event['data'])[:300]}")
    assert CALLER_TEXT[:8] not in json.dumps(event), event
    assert event["data"]["reason"] == "not_found" and event["data"]["error"], event
