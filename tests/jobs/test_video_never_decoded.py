"""A video job's video is never decoded (issue 90, docs/security.md "Issue 90: video containers"):
an MP4 and an MKV holding jfk.flac's speech under one 8192x8192 H.264 frame are translated and
dubbed (probe, the job's run, the remux with the voice-over mix) while the server's peak memory
grows by a few tens of MB; FFmpeg may open only audio decoders in a video file, so the frame,
which a decoder would turn into hundreds of MB, stays a packet that is copied as it is. Before,
the upload was refused (400: not an audio file); without the codec whitelist, the same run grew
the server by the frame's decoding (docs/security.md has both figures).

A real ``translate-svc serve`` process (its memory read from /proc, apart from the test's own)
with the test checkpoint and jobs on; the jobs API over aiohttp."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.support import videos
from tests.support.jobs import base
from tests.support.proc import memory_kb, reset_peak
from tests.support.server_process import ServerProcess

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(40)]

#: what the server may grow by: the speech's job and its dubbed video, never the frame's decoding
BOUND_MB = 96


@pytest.fixture(scope="module")
def server(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    jobs_dir = tmp_path_factory.mktemp("huge") / "jobs"
    env = {"TRANSLATE_SVC_JOBS__DIR": str(jobs_dir), "TRANSLATE_SVC_JOBS__QUIET_WAIT_S": "0"}
    started = ServerProcess(
        ["--model", str(test_model_dir), "--host", "127.0.0.1", "--port", "0", "--http-port", "0"], env=env
    )
    try:
        yield started
    finally:
        started.stop()


@pytest.mark.parametrize("suffix", ["mp4", "mkv"])
async def test_a_huge_video_frame_is_copied_never_decoded(
    server: ServerProcess, shared_audio: Path, tmp_path: Path, suffix: str
) -> None:
    source = await asyncio.to_thread(
        videos.write_huge_frame_video, tmp_path / f"huge.{suffix}", shared_audio / "jfk.flac"
    )
    pid = server.proc.pid
    reset_peak(pid)
    before = memory_kb(pid)["VmRSS"]
    async with aiohttp.ClientSession() as http:
        async with http.post(base(server), json={"source_language": "eng", "target_languages": ["spa"]}) as r:
            job = await r.json()
            assert r.status == 201, job
        async with http.put(f"{base(server)}/{job['id']}/audio", data=source.read_bytes()) as r:
            assert r.status == 200, await r.text()
        async with http.post(f"{base(server)}/{job['id']}/complete") as r:
            assert r.status == 202, await r.text()
        while job["state"] not in ("done", "failed", "cancelled"):
            async with http.get(f"{base(server)}/{job['id']}?wait=60") as r:
                job = await r.json()
        assert job["state"] == "done", job["error"]
        async with http.get(f"{base(server)}/{job['id']}/video?mix=duck&original=true") as r:
            assert r.status == 200, await r.text()
            (tmp_path / f"out.{suffix}").write_bytes(await r.read())
    grown_mb = (memory_kb(pid)["VmHWM"] - before) / 1024
    print(f"server peak RSS grew {grown_mb:.1f} MB for a {suffix} job with an 8192x8192 H.264 frame")
    assert videos.video_packets(tmp_path / f"out.{suffix}") == videos.video_packets(source)
    assert grown_mb <= BOUND_MB, f"the server's peak memory grew {grown_mb:.0f} MB"
