"""A disk that fills under a recording ends the recording, never the call (issue 61).

The server runs in a subprocess under a lowered RLIMIT_FSIZE (as ``prlimit --fsize``; any user may
lower it for a process it starts): the kernel then refuses a write past that size with EFBIG, as a full
disk refuses one with ENOSPC and a quota with EDQUOT; the recordings' writer treats the three
alike (``disk_full``). A small tmpfs or a loop-mounted filesystem would need root. The limit is
above every file the server writes besides the recording's audio (the ready file, the manifest,
the segments' JSON lines, all under 64 KiB, one sealed chunk) and below the source's Ogg Opus file
of a 33 s call (its first sealed chunk is written at about 16 s of audio, mid-call)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest

from tests.support import recordings as rec
from tests.support.raw import channel
from tests.support.server_process import ServerProcess
from tests.support.waiting import eventually
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc
from translate_svc.client_cli.decode import load_pcm16k

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(60)]

#: the largest file the server may write: under one sealed chunk (64 KiB)
LIMIT_BYTES = 24 * 1024
#: what ``prlimit --fsize=N --`` does, without needing util-linux: lower RLIMIT_FSIZE, then exec
#: the rest of the command line (Python ignores SIGXFSZ, so a write past it fails with EFBIG)
FSIZE_SHIM = (
    "import os, resource, sys; n = int(sys.argv[1]); resource.setrlimit(resource.RLIMIT_FSIZE, (n, n)); "
    "os.execv(sys.argv[2], sys.argv[2:])"
)


async def test_a_full_disk_ends_the_recording_marked_incomplete_and_leaves_the_call(
    test_model_dir: Path, shared_audio: Path, tmp_path: Path
) -> None:
    s = rec.setup(tmp_path)
    env = {
        "TRANSLATE_SVC_AUTH__TOKENS_FILE": str(s.tokens),
        "TRANSLATE_SVC_RECORDINGS__DIR": str(s.directory),
        "TRANSLATE_SVC_RECORDINGS__KEY_FILE": str(s.keys.path),
    }
    args = ["--model", str(test_model_dir), "--host", "127.0.0.1", "--port", "0"]
    server = ServerProcess(args, env=env, prefix=[sys.executable, "-c", FSIZE_SHIM, str(LIMIT_BYTES)])
    try:
        once = load_pcm16k(shared_audio / "jfk.flac")
        pcm = np.concatenate([once, once, once])  # 33 s: its source file passes the limit at about 16 s
        ch = channel(server.address)
        try:
            got = await rec.stream(pb_grpc.TranslatorStub(ch), pcm, rec.ACME, ["spa"])
        except grpc.aio.AioRpcError as e:
            pytest.fail(f"the call failed: {e.code()} {e.details()}\n" + "".join(server.lines[-30:]))
        finally:
            await ch.close()
        # the call is untouched: every segment, each OK, and its end
        assert got.ended is not None and got.ended.segments_total == len(got.segments) >= 3
        assert all(seg.status.code == 0 for seg in got.segments)
        manifest_path = s.directory / "acme" / got.session_id / "manifest.json"

        async def final() -> bool:
            return manifest_path.exists() and json.loads(manifest_path.read_text())["ended_at"] is not None

        await eventually(final, "the recording's final manifest", deadline_s=30)
        manifest = json.loads(manifest_path.read_text())
        assert manifest["complete"] is False and manifest["incomplete_reason"] == "disk_full"
        files = {f["name"]: f for f in manifest["files"]}
        assert files["source.ogg"]["complete"] is False and files["source.ogg"]["sha256"] is None
        assert not any(f["complete"] for f in files.values())  # each cut where the recording ended

        def call_line(lines: list[str]) -> int | None:
            return next(
                (i for i, line in enumerate(lines) if "method=StreamingTranslate" in line and "tenant=acme" in line),
                None,
            )

        async def logged() -> bool:
            return call_line(list(server.lines)) is not None

        # the call's access line is written when its handler returns, which may be after the client
        # has read the stream's end: wait for it rather than read the lines as they stand
        await eventually(logged, "the call's access line", deadline_s=30)
        lines = list(server.lines)
        failed = next(i for i, line in enumerate(lines) if "ended early (disk_full)" in line)
        call = call_line(lines)
        assert call is not None
        assert failed < call and "code=OK" in lines[call]  # the disk filled mid-call; the call ended OK
    finally:
        server.stop()
