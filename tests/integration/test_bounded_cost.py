"""What a caller can make the server hold (issue 23), measured on a real ``translate-svc serve``
process (its memory is read from /proc, apart from the test's own).

- A refused call costs little: a 60 MiB Translate with an unknown token is refused before its
  message is read, so twelve at once leave the server's peak memory almost where it was.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.integration.test_cli import ServerProcess
from translate_svc.api.v1 import translate_pb2 as pb

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(20)]

TOKEN = "bounded-cost-token-4e1a"
MB = 1024 * 1024


@pytest.fixture(scope="module")
def guarded(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tokens = tmp_path_factory.mktemp("tokens") / "tokens"
    tokens.write_text(f"{TOKEN}\n")
    server = ServerProcess(
        ["--model", str(test_model_dir), "--host", "127.0.0.1", "--port", "0", "--tokens-file", str(tokens)]
    )
    try:
        yield server
    finally:
        server.stop()


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (the peak since the last reset) of ``pid``, in kB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux; needs to own the process)


async def test_twelve_refused_60_mib_calls_leave_the_servers_memory_alone(guarded: ServerProcess) -> None:
    pid = guarded.proc.pid
    request = pb.TranslateRequest(
        audio=pb.AudioInput(content=bytes(60 * MB), format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000)),
        target_languages=["spa"],
    ).SerializeToString()
    reset_peak(pid)
    before = memory_kb(pid)["VmRSS"]
    async with grpc.aio.insecure_channel(guarded.address) as ch:
        translate = ch.unary_unary("/translate_svc.api.v1.Translator/Translate")
        metadata = (("authorization", "Bearer not-a-token-of-this-server"),)
        calls = [translate(request, metadata=metadata, timeout=60) for _ in range(12)]
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
    codes = [o.code() if isinstance(o, grpc.aio.AioRpcError) else o for o in outcomes]
    assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 12, codes
    grown_mb = (memory_kb(pid)["VmHWM"] - before) / 1024
    print(f"server peak RSS grew {grown_mb:.1f} MB for 12 refused 60 MiB calls")
    assert grown_mb <= 256, f"the server's peak memory grew {grown_mb:.0f} MB"
