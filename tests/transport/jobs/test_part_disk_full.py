"""A job's part that the disk has no room for: refused with 507 Insufficient Storage (gRPC:
RESOURCE_EXHAUSTED) saying so, nothing of it kept, no traceback (``errors.StorageFull``); the
review found a 500 with a traceback, and an audio file left longer than the upload it records.

The disk fills for real: ``translate-svc serve`` runs in a mount namespace of its own (``unshare
-rm``: a user namespace, so no privilege is needed where the kernel allows them) in which a 1 MiB
tmpfs is mounted over the job folders (``jobs.dir/jobs``; the SQLite store beside them stays on
the real disk), so the kernel answers a write past it with ENOSPC. Where ``unshare -rm`` is not
allowed the test is skipped, saying so: a write made to fail in the server's own code would prove
the except clause, not the server under a full disk. What the server kept is read through
``/proc/PID/root`` (its view of the mounts).

One upload: a 256 KiB part (kept); a 600 KiB part, received whole but whose copy into the audio
fails midway (the audio is cut back to 256 KiB, the upload still at 256 KiB); a 1.5 MiB part whose
receiving fails (its part file removed); then a 300 KiB part fits again (nothing leaked). Over
gRPC, a 1.5 MiB part: RESOURCE_EXHAUSTED with the same words."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import grpc
import pytest

from tests.support.server_process import ServerProcess
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(20)]

KIB = 1024
#: what the job folders' tmpfs holds
TMPFS = "1m"
#: ``sh -c``: mount the tmpfs over its first argument, then become the rest (the server: same pid)
MOUNT = "mount -t tmpfs -o size=" + TMPFS + ' none "$0" && exec "$@"'
BODY = {"source_language": "eng", "target_languages": ["spa"]}


def _namespaces_allowed() -> str | None:
    """Why ``unshare -rm`` cannot mount a tmpfs here (None: it can)."""
    if shutil.which("unshare") is None:
        return "util-linux's unshare is not installed"
    with tempfile.TemporaryDirectory() as where:
        r = subprocess.run(
            ["unshare", "-rm", "sh", "-c", 'mount -t tmpfs -o size=64k none "$0"', where],
            capture_output=True,
            text=True,
            timeout=30,
        )
    return None if r.returncode == 0 else f"unshare -rm cannot mount a tmpfs here: {(r.stdout + r.stderr)[-200:]}"


@pytest.fixture(scope="module")
def server(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    why = _namespaces_allowed()
    if why is not None:
        pytest.skip(f"{why}: a full disk needs a small filesystem of the server's own")
    jobs_dir = tmp_path_factory.mktemp("disk-full") / "jobs"
    (jobs_dir / "jobs").mkdir(parents=True)
    env = {"TRANSLATE_SVC_JOBS__DIR": str(jobs_dir)}
    args = ["--model", str(test_model_dir), "--host", "127.0.0.1", "--port", "0", "--http-port", "0"]
    args += ["--test-translator", "stable"]
    started = ServerProcess(args, env=env, prefix=["unshare", "-rm", "sh", "-c", MOUNT, str(jobs_dir / "jobs")])
    started.jobs_dir = jobs_dir  # type: ignore[attr-defined]
    try:
        yield started
    finally:
        started.stop()


def seen(server: ServerProcess, job_id: str) -> Path:
    """The job's folder as the server sees it (inside its mount namespace)."""
    return Path(f"/proc/{server.proc.pid}/root") / str(server.jobs_dir).lstrip("/") / "jobs" / job_id  # type: ignore[attr-defined]


async def test_a_part_the_disk_cannot_hold_is_507_and_nothing_of_it_is_kept(server: ServerProcess) -> None:
    async with aiohttp.ClientSession() as http:
        await _upload(server, http)


async def _upload(server: ServerProcess, http: aiohttp.ClientSession) -> None:
    base = f"http://127.0.0.1:{server.info.http_port}/v1/jobs"
    async with http.post(base, json=BODY) as r:
        job = await r.json()
        assert r.status == 201, job
    url, folder = f"{base}/{job['id']}/audio", seen(server, job["id"])

    async def put(size: int, offset: int) -> tuple[int, dict[str, object]]:
        async with http.put(url, params={"offset": str(offset)}, data=b"\x01" * size) as r:
            return r.status, await r.json()

    assert await put(256 * KIB, 0) == (200, {"id": job["id"], "received_bytes": 256 * KIB})
    for size in (600 * KIB, 1536 * KIB):  # the copy into the audio fails; then the receiving does
        status, body = await put(size, 256 * KIB)
        assert status == 507, body
        error = body["error"]
        assert error["code"] == "insufficient_storage" and "disk is full" in error["message"], error  # type: ignore[index]
        assert "send it again later" in error["message"], error  # type: ignore[index]
        assert (folder / "audio").stat().st_size == 256 * KIB  # what was written of it undone
        assert sorted(p.name for p in folder.iterdir()) == ["audio"], list(folder.iterdir())  # no part left
        async with http.get(f"{base}/{job['id']}") as r:
            assert (await r.json())["received_bytes"] == 256 * KIB
    assert await put(300 * KIB, 256 * KIB) == (200, {"id": job["id"], "received_bytes": 556 * KIB})
    assert (folder / "audio").stat().st_size == 556 * KIB
    log = "".join(server.lines)
    assert "Traceback" not in log, log[-3000:]


async def test_grpc_refuses_such_a_part_with_resource_exhausted(server: ServerProcess) -> None:
    async with grpc.aio.insecure_channel(server.address) as ch:
        stub = pb_grpc.JobsStub(ch)
        request = pb.CreateJobRequest(
            format=pb.AudioFormat(encoding=pb.CONTAINER), source_language="eng", target_languages=["spa"]
        )
        job = await stub.CreateJob(request, timeout=30)

        async def parts() -> AsyncIterator[pb.UploadJobAudioRequest]:
            yield pb.UploadJobAudioRequest(job_id=job.job_id, offset=0, data=b"\x01" * (1536 * KIB))

        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.UploadJobAudio(parts(), timeout=60)
        assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "disk is full" in (refused.value.details() or "")
        got = await stub.GetJob(pb.GetJobRequest(job_id=job.job_id), timeout=30)
        assert got.received_bytes == 0
    assert sorted(p.name for p in seen(server, job.job_id).iterdir()) == ["audio"]
    assert "Traceback" not in "".join(server.lines)
