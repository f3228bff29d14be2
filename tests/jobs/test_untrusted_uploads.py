"""Uploads that state more than they hold are refused without the server holding what they state,
and a refused ``complete`` fails its job and frees its slot (docs/security.md, "Hardening 7:
untrusted media", K2 and K5):

- K2: a valid MP4 of 19 kB whose video track states 20 million (then 40 million) one-byte samples
  (``hostile_media.mp4_stating_samples``). Before, ``complete`` answered 202 and the server's RSS
  grew 703 MB (1,402 MB): FFmpeg's mov demuxer indexes every stated sample at open, in the server's
  process. Now the sample tables are checked against the file's size first, in a media process:
  400 naming what the file states, and the server grows by at most 50 MB.
- K5: an MP4 whose video stream's codec FFmpeg does not know (``codec_context`` None). Before: 500
  with a traceback. Now 400 naming what to send.
- Each refusal fails the job (``failed``, its error the refusal's message) and frees its slot: the
  tenant may hold one job (``jobs=1``), and makes the next at once. Before, the refused job stayed
  ``uploading`` for an hour, holding the slot: the next create was 429.

A real ``translate-svc serve`` (the test checkpoint, jobs on; its RSS read from /proc), the jobs
API over aiohttp."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import hostile_media, videos
from tests.support.jobs import base, fresh_connections
from tests.support.proc import memory_kb, reset_peak
from tests.support.server_process import ServerProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow(40)]

TOKEN = "untrusted-uploads-token-3d9a"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
#: what the server's own process may grow by for a refused upload (K2: +703 MB and +1,402 MB before)
BOUND_MB = 50


@pytest.fixture(scope="module")
def server(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("untrusted")
    tokens = tmp / "tokens"
    tokens.write_text(f"{TOKEN} * jobs tenant=uploader jobs=1\n")
    started = ServerProcess(
        [
            *("--model", str(test_model_dir), "--host", "127.0.0.1", "--port", "0", "--http-port", "0"),
            *("--tokens-file", str(tokens)),
        ],
        env={"TRANSLATE_SVC_JOBS__DIR": str(tmp / "jobs")},
    )
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def small_mp4(tmp_path_factory: pytest.TempPathFactory, shared_audio: Path) -> Path:
    return videos.write_video(tmp_path_factory.mktemp("mp4") / "small.mp4", shared_audio / "jfk.flac", seconds=1)


async def refused_upload(server: ServerProcess, data: bytes) -> tuple[int, str, dict[str, Any]]:
    """A job (the tenant's one) with ``data`` uploaded and completed: the complete's status and
    message, and the job as it stands after."""
    async with fresh_connections() as http:
        async with http.post(
            base(server), json={"source_language": "eng", "target_languages": ["spa"]}, headers=HEADERS
        ) as r:
            job = await r.json()
            assert r.status == 201, job  # the slot of the job refused before is free
        async with http.put(f"{base(server)}/{job['id']}/audio", data=data, headers=HEADERS) as r:
            assert r.status == 200, await r.text()
        async with http.post(f"{base(server)}/{job['id']}/complete", headers=HEADERS) as r:
            status, doc = r.status, await r.json()
        async with http.get(f"{base(server)}/{job['id']}", headers=HEADERS) as r:
            after = await r.json()
    return status, str(doc["error"]["message"]) if status >= 400 else "", after


@pytest.mark.parametrize("samples", [20_000_000, 40_000_000])
def test_an_mp4_stating_millions_of_samples_is_refused_without_the_server_holding_them(
    server: ServerProcess, small_mp4: Path, tmp_path: Path, samples: int
) -> None:
    data = hostile_media.mp4_stating_samples(tmp_path / "stating.mp4", small_mp4, samples).read_bytes()
    pid = server.proc.pid
    reset_peak(pid)
    before = memory_kb(pid)["VmRSS"]
    status, message, job = asyncio.run(refused_upload(server, data))
    grown_mb = (memory_kb(pid)["VmHWM"] - before) / 1024
    print(
        f"\nK2: an MP4 of {len(data)} bytes stating {samples} samples: {status} {message!r}; server +{grown_mb:.1f} MB"
    )
    assert status == 400, message
    assert f"states at least {samples} samples" in message and f"its {len(data)} bytes" in message, message
    assert grown_mb <= BOUND_MB, f"the server grew {grown_mb:.0f} MB"
    assert job["state"] == "failed" and job["error"] == message, job


def test_a_video_codec_nobody_knows_is_400_naming_what_to_send(
    server: ServerProcess, small_mp4: Path, tmp_path: Path
) -> None:
    data = hostile_media.mp4_with_unknown_video(tmp_path / "unknown.mp4", small_mp4).read_bytes()
    status, message, job = asyncio.run(refused_upload(server, data))
    print(f"\nK5: an MP4 whose video codec no one knows: {status} {message!r}")
    assert status == 400, message
    assert "codec this server does not know" in message and "H.264" in message, message
    assert job["state"] == "failed" and job["error"] == message, job
    # and a good video after it is taken: its slot freed, its probe in a fresh process
    status, message, job = asyncio.run(refused_upload(server, small_mp4.read_bytes()))
    assert status == 202 and job["state"] in ("queued", "running", "done"), (status, message)
    # and it runs to its end: the tenant's one slot is free again, and nothing of its work is left
    # in the server for a test after this one to measure (a cancel leaves its decode running)
    assert asyncio.run(ended(server, job["id"])) == "done"


async def ended(server: ServerProcess, job_id: str) -> str:
    """A job's state once it has ended (at most two minutes: a second of video)."""
    async with fresh_connections() as http, asyncio.timeout(120):
        while True:
            async with http.get(f"{base(server)}/{job_id}", headers=HEADERS) as r:
                state = str((await r.json())["state"])
            if state not in ("queued", "running"):
                return state
            await asyncio.sleep(0.2)
