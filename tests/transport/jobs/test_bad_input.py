"""Issue 87 J9: bad input to the jobs routes is a 400 saying what to fix, never a 500 with a
traceback in the log. Before, a create whose JSON nested deeper than Python's recursion limit
(within the 64 KiB a create may be) and a FLAC file whose header states no length (libsndfile
then fails to seek in it: ``Internal psf_fseek() failed``) each gave 500, the traceback logged.

A real server on loopback (the test checkpoint), the jobs API over aiohttp; the FLAC is written by
soundfile, its STREAMINFO's total-samples field then set to 0 ("unknown", as the FLAC format allows)."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import numpy as np
import pytest
import pytest_asyncio
import soundfile as sf

from tests.support.attacks.jobs import jobs_url, status_of, token_line
from tests.support.live_server import LiveServer, make_settings, serving

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(20)]

TOKEN = "bad-input-token-4e6a2c8b"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("bad")
    tokens = tmp / "tokens"
    tokens.write_text(token_line(TOKEN, "odd"))
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    settings.auth.tokens_file = tokens
    settings.jobs.dir = tmp / "jobs"
    async with serving(settings) as live:
        yield live


def flac_of_unknown_length() -> bytes:
    """A second of silence as FLAC, its STREAMINFO saying its length is unknown (0 samples)."""
    out = io.BytesIO()
    sf.write(out, np.zeros(16000, np.float32), 16000, format="FLAC")
    data = bytearray(out.getvalue())
    # 'fLaC', the block's 4-byte header, then STREAMINFO: its bytes 10-17 end in the 36-bit total
    at = 8 + 10
    fields = int.from_bytes(data[at : at + 8], "big") & ~((1 << 36) - 1)
    data[at : at + 8] = fields.to_bytes(8, "big")
    return bytes(data)


async def test_deep_json_and_a_flac_of_unknown_length_are_400_saying_why(
    live: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    base = jobs_url(live)
    caplog.set_level(logging.ERROR)
    async with aiohttp.ClientSession() as http:
        deep = b"[" * 30_000 + b"]" * 30_000
        created, deep_error = await status_of(http, "POST", base, TOKEN, data=deep)
        status, job = await status_of(
            http, "POST", base, TOKEN, json={"source_language": "eng", "target_languages": ["spa"]}
        )
        assert status == 201, job
        status, got = await status_of(http, "PUT", f"{base}/{job['id']}/audio", TOKEN, data=flac_of_unknown_length())
        assert status == 200, got
        completed, flac_error = await status_of(http, "POST", f"{base}/{job['id']}/complete", TOKEN)
    tracebacks = [r for r in caplog.records if r.exc_info]
    print(f"\nJ9: deep JSON: {created}; a FLAC of unknown length: {completed}; tracebacks logged: {len(tracebacks)}")
    assert created == 400 and "nests too deep" in str(deep_error), deep_error
    assert completed == 400 and "could not be read through" in str(flac_error), flac_error
    assert not tracebacks, [r.getMessage() for r in tracebacks]
