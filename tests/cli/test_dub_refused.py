"""A refused ``translate-svc dub`` leaves no job holding its tenant's slot (issue 101): the command
(a subprocess, the installed script) prints its job's id as soon as the job exists, and a job whose
upload or ``complete`` is refused ends (the server fails a part over ``jobs.max_upload_bytes``;
the command cancels a job whose ``complete`` is refused), so three refused runs under ``jobs=2``
leave the tenant free to start its next job. Before: the id was never printed, the refused jobs
stayed ``uploading`` for ``jobs.upload_timeout_s``, and the third run was refused
RESOURCE_EXHAUSTED ("cancel one"). A real server on loopback (no model: no job runs)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
import soundfile as sf

from tests.support.cli import Run, run_cli
from tests.support.fake_runner import FakeRunner
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.stepped_call import NO_MODEL
from translate_svc.client import AsyncTranslateClient, JobState

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(30)]

TOKEN = "dubber-token-8e2f4a6c1b3d"
LIMIT = 64 * 1024


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("dub-refused")
    (tmp / "tokens").write_text(f"{TOKEN} * jobs tenant=dubber jobs=2\n")
    settings = make_settings(NO_MODEL)
    settings.auth.tokens_file = tmp / "tokens"
    settings.jobs.dir = tmp / "jobs"
    settings.jobs.max_upload_bytes = LIMIT
    async with serving(settings, warmup=False, runner_factory=FakeRunner) as live:
        yield live


def _dub(live: LiveServer, video: Path, out: Path) -> Run:
    return run_cli(
        "dub", video, "--to", "spa", "--from", "eng", "-o", out, "--server", f"127.0.0.1:{live.port}",
        "--allow-plaintext-token", env={"TRANSLATE_SVC_TOKEN": TOKEN}, process=True, timeout=120,
    )  # fmt: skip


async def test_three_refused_dubs_print_their_jobs_and_leave_the_tenant_free(live: LiveServer, tmp_path: Path) -> None:
    too_big = tmp_path / "big.mp4"  # its upload is over jobs.max_upload_bytes: refused at its part
    too_big.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(2 * LIMIT))
    not_video = tmp_path / "noise.mp4"  # uploaded whole, then refused at complete: no container
    not_video.write_bytes(bytes(range(256)) * 16)
    ended = []
    async with AsyncTranslateClient(f"127.0.0.1:{live.port}", token=TOKEN, allow_plaintext_token=True) as client:
        for video in (too_big, not_video, too_big):
            run = await asyncio.to_thread(_dub, live, video, tmp_path / "out.mp4")
            assert run.code != 0, run.out
            made = re.findall(r"^job (job_[0-9a-f]{24})$", run.out, re.MULTILINE)
            assert len(made) == 1, (run.out, run.err)  # said once, as soon as it existed
            job = await client.get_job(made[0])
            assert job.state in (JobState.FAILED, JobState.CANCELLED), (job, run.err)
            ended.append(job)
        assert "jobs.max_upload_bytes" in ended[0].error
        assert ended[1].state is JobState.CANCELLED or ended[1].error
        # the tenant's two slots are free: its next job is taken
        wav = tmp_path / "next.wav"
        sf.write(wav, np.zeros(16000, np.int16), 16000, subtype="PCM_16")
        nxt = await client.submit_job(wav, targets=["spa"], source="eng")
        assert nxt.state in (JobState.QUEUED, JobState.RUNNING, JobState.DONE), nxt
