"""Issue 87 J5: a job's audio is deleted once the job ends. Before, a cancelled job kept its audio
for its results' retention (7 days by default), so a create-upload-cancel cycle left 64 MiB on the
node each time, outside every cap (a cancelled job is not "open", so ``jobs=`` never counted it);
a finished job kept its audio too. Now the audio goes when the job is done, failed or cancelled;
its results and dubbed tracks are kept as before (a job killed mid-run keeps its audio: it is
still running, and resumes: tests/jobs/test_restart.py).

A real server on loopback (the test checkpoint), the jobs API over aiohttp; what is left under
``jobs.dir`` is read from the disk."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from tests.support.attacks.jobs import jobs_url, status_of, token_line, uploaded_job
from tests.support.live_server import LiveServer, make_settings, serving

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(30)]

TOKEN = "audio-kept-token-6f1c0b9e"
CYCLES = 8
UPLOAD = 8 * 1024 * 1024


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("kept")
    tokens = tmp / "tokens"
    tokens.write_text(token_line(TOKEN, "cycler", "jobs=50"))
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    settings.auth.tokens_file = tokens
    settings.jobs.dir = tmp / "jobs"
    async with serving(settings) as live:
        yield live


def kept_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and p.name != "jobs.sqlite3-wal")


def jobs_dir(live: LiveServer) -> Path:
    root = live.server.app.settings.jobs.dir
    assert root is not None
    return Path(root) / "jobs"


async def test_create_upload_cancel_cycles_leave_no_audio(live: LiveServer) -> None:
    base = jobs_url(live)
    before = kept_bytes(jobs_dir(live))
    async with aiohttp.ClientSession() as http:
        for _ in range(CYCLES):
            status, job = await status_of(http, "POST", base, TOKEN, json={"target_languages": ["spa"]})
            assert status == 201, job
            for _ in range(UPLOAD // (4 << 20)):
                status, got = await status_of(http, "PUT", f"{base}/{job['id']}/audio", TOKEN, data=os.urandom(4 << 20))
                assert status == 200, got
            status, got = await status_of(http, "POST", f"{base}/{job['id']}/cancel", TOKEN)
            assert status == 200 and got["state"] == "cancelled", got
    left = kept_bytes(jobs_dir(live)) - before
    print(
        f"\nJ5 cycles: {CYCLES} create-upload-cancel cycles of {UPLOAD >> 20} MiB left {left / 2**20:.1f} MiB of audio"
    )
    assert left < UPLOAD // 8, left


async def test_a_finished_job_keeps_its_results_and_tracks_not_its_audio(live: LiveServer, shared_audio: Path) -> None:
    base = jobs_url(live)
    async with aiohttp.ClientSession() as http:
        job = await uploaded_job(http, base, TOKEN, (shared_audio / "jfk.flac").read_bytes())
        while (now := (await status_of(http, "GET", f"{base}/{job['id']}?wait=30", TOKEN))[1])["state"] not in (
            "done",
            "failed",
        ):
            pass
        assert now["state"] == "done", now
        results = await status_of(http, "GET", f"{base}/{job['id']}/results", TOKEN)
        dubbed = await status_of(http, "GET", f"{base}/{job['id']}/dubbed/spa", TOKEN)
    folder = jobs_dir(live) / job["id"]
    assert results[0] == 200 and len(results[1]["segments"]) == now["segments"] > 0
    assert dubbed[0] == 200 and len(dubbed[1]) > 44
    assert not (folder / "audio").exists(), sorted(p.name for p in folder.iterdir())
    assert (folder / "spa.pcm").exists()
