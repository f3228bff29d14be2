"""A job's audio is billed once however its runs end (issue 100, item 5): ``translate-svc serve``
killed with SIGKILL mid-job, or stopped with SIGTERM (its job's run ends and resumes at the next
start), then started again on the same ``jobs.dir`` and ``webhooks.data_dir``; once the job is
done, ``translate-svc usage`` sums its runs' usage records to the job's audio. Before, each run
charged from its own resume point: a killed run's record ended at its last checkpoint (the audio
it fed after it was never charged: 280.5 of 300 s), a stopped run's at what it had fed (past its
last finished segment, where the next run began charging again). Real processes, the test
checkpoint, jfk.flac repeated."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest
import soundfile as sf
from typer.testing import CliRunner

from tests.support.jobs import base, long_clip
from tests.support.server_process import ServerProcess
from tests.support.waiting import eventually
from translate_svc import cli

pytestmark = [pytest.mark.integration, pytest.mark.slow(90)]

#: the heartbeat (and checkpoint) period: a killed run's record ends up to this before its kill
LEASE_S = 0.5
#: the first run is stopped once this much of the job is done
STOP_AFTER_MS = 12_000


def start(model: Path, tmp_path: Path, started: list[ServerProcess]) -> ServerProcess:
    env = {
        "TRANSLATE_SVC_JOBS__DIR": str(tmp_path / "jobs"),
        "TRANSLATE_SVC_WEBHOOKS__DATA_DIR": str(tmp_path / "data"),
        "TRANSLATE_SVC_WEBHOOKS__LEASE_S": str(LEASE_S),
    }
    server = ServerProcess(["--model", str(model), "--host", "127.0.0.1", "--port", "0", "--http-port", "0"], env=env)
    started.append(server)
    return server


def usage(data_dir: Path) -> dict[str, float]:
    """``translate-svc usage``'s one tenant line."""
    out = CliRunner().invoke(cli.app, ["usage", "--data-dir", str(data_dir), "--json"])
    assert out.exit_code == 0, out.output
    (report,) = [json.loads(line) for line in out.output.splitlines()]
    return dict(report)


@pytest.mark.parametrize("stop", ["SIGKILL", "SIGTERM"])
async def test_a_jobs_runs_together_bill_its_audio_once(
    stop: str, test_model_dir: Path, tmp_path: Path, shared_audio: Path, servers: list[ServerProcess]
) -> None:
    path = long_clip(shared_audio, tmp_path / "long.wav", repeats=4)
    info = sf.info(str(path))
    seconds = info.frames / info.samplerate
    clip = path.read_bytes()
    first = start(test_model_dir, tmp_path, servers)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        async with http.post(base(first), json={"source_language": "eng", "target_languages": ["spa"]}) as r:
            job = await r.json()
        async with http.put(f"{base(first)}/{job['id']}/audio?offset=0", data=clip) as r:
            assert r.status == 200, await r.text()
        async with http.post(f"{base(first)}/{job['id']}/complete") as r:
            assert r.status == 202, await r.text()

        async def some_done() -> bool:
            async with http.get(f"{base(first)}/{job['id']}") as r:
                status = await r.json()
            return bool(status["done_ms"] >= STOP_AFTER_MS)

        await eventually(some_done, "the job's first seconds finished", deadline_s=300, poll_s=0.2)
        if stop == "SIGKILL":
            first.proc.kill()  # no drain, no goodbye: its session ends from its last checkpoint
            first.proc.wait()
        else:
            first.stop()  # drains: the job's run ends, to be resumed at the next start
        second = start(test_model_dir, tmp_path, servers)
        while True:
            async with http.get(f"{base(second)}/{job['id']}?wait=60") as r:
                done = await r.json()
            if done["state"] not in ("queued", "running"):
                break
        assert done["state"] == "done", done["error"]
    second.stop()  # every session ended: the killed one as lost by the second's sweep, at the latest
    report = usage(tmp_path / "data")
    assert report["sessions"] >= 2, report  # the job ran twice at least
    assert report["audio_in_s"] == pytest.approx(seconds, abs=0.005), (report, seconds)
