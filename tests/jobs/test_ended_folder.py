"""A job that ends has dropped its audio before it says so (``JobWorker._end``): a client that sees
it failed (or done) finds its folder without the audio. The suite under load found an ``audio``
file left in a failed job's folder (``tests/jobs/test_fetch_restart.py``): the job was marked
failed first and its audio deleted after, so a status read in between saw both.

A real server on loopback (the fake runner as its model, stored glossaries on), the jobs API over
aiohttp; the job names a glossary its tenant does not have, so it fails once it runs. The store's
``drop_audio`` is held at its start until the test has read the job's status over HTTP: while the
audio is being dropped, the job must not yet say it ended (before the fix it said ``failed`` with
its audio still there). No timing: the hold is released by the test."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from tests.support.fake_runner import FakeRunner
from tests.support.live_server import make_settings, serving
from tests.support.stepped_call import NO_MODEL

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="function")]

#: a safety net so that a broken test fails instead of hanging; never a measured bound
WAIT_S = 60.0


async def test_a_failed_job_drops_its_audio_before_it_says_it_failed(
    shared_audio: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(NO_MODEL)
    settings.server.http_port = 0
    settings.jobs.dir = tmp_path / "jobs"
    settings.jobs.quiet_wait_s = 0
    settings.glossaries.enabled = True
    settings.glossaries.data_dir = tmp_path / "glossaries"
    async with (
        serving(settings, warmup=False, runner_factory=FakeRunner) as live,
        aiohttp.ClientSession() as http,
    ):
        store = live.server.app.jobs.store
        dropping, go = asyncio.Event(), asyncio.Event()
        drop = store.drop_audio

        async def held_drop(job_id: str) -> None:
            dropping.set()
            await go.wait()
            await drop(job_id)

        monkeypatch.setattr(store, "drop_audio", held_drop)
        base = f"http://127.0.0.1:{live.server.ports()['http_port']}/v1/jobs"
        body = {"source_language": "eng", "target_languages": ["spa"], "glossaries": ["no-such-glossary"]}
        async with http.post(base, json=body) as r:
            job = await r.json()
            assert r.status == 201, job
        async with http.put(f"{base}/{job['id']}/audio", data=(shared_audio / "jfk.flac").read_bytes()) as r:
            assert r.status == 200, await r.text()
        async with http.post(f"{base}/{job['id']}/complete") as r:
            assert r.status == 202, await r.text()
        folder = tmp_path / "jobs" / "jobs" / job["id"]
        async with asyncio.timeout(WAIT_S):
            await dropping.wait()  # the job's run failed: its audio is being dropped
            async with http.get(f"{base}/{job['id']}") as r:
                meanwhile = await r.json()
            assert (folder / "audio").exists()  # (held: not dropped yet)
            assert meanwhile["state"] == "running", meanwhile  # it does not say it failed yet
            go.set()
            while (now := await (await http.get(f"{base}/{job['id']}?wait=30")).json())["state"] == "running":
                pass
        assert now["state"] == "failed" and "no-such-glossary" in now["error"], now
        assert sorted(p.name for p in folder.iterdir()) == [], sorted(p.name for p in folder.iterdir())
