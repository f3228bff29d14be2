"""Issue 57 (medium): a room's backlog kept 30 s of the engine's whole output, speech included (48 kHz,
every language), with no count or byte bound, although it is replayed as text only: one fast
speaker added 1.1 GB. Now it keeps text only, bounded by entries and bytes per room and per tenant
(``rooms.backlog_max_*``).

On a real ``translate-svc serve`` process (the stable test translator: every segment has words and
speech), its memory read from /proc: one speaker sends 20 minutes of speech into a room as fast as
the server takes it, four targets with 48 kHz speech, nobody listening.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.attacks.rooms import fast_speaker
from tests.support.proc import memory_kb, reset_peak
from tests.support.server_process import ServerProcess

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(40)]

#: the server's peak growth allowed: the backlog's bounds (512 KiB a room, 4 MiB a tenant,
#: estimated) and what the speaker's stream holds anyway (+10 MB with the backlog off, measured)
GROWTH_MB = 64


@pytest.fixture(scope="module")
def served(test_model_dir: Path) -> Iterator[ServerProcess]:
    args = ["--model", str(test_model_dir), "--host", "127.0.0.1", "--port", "0"]
    server = ServerProcess(args, env={"TRANSLATE_SVC_MODEL__TEST_TRANSLATOR": "stable"})
    try:
        yield server
    finally:
        server.stop()


async def test_a_fast_speaker_into_a_room_grows_the_server_by_the_backlogs_bounds_only(
    served: ServerProcess, shared_audio: Path
) -> None:
    pid = served.proc.pid
    reset_peak(pid)
    before = memory_kb(pid)["VmRSS"]
    got = await fast_speaker(served.address, "", audio_s=1200.0)
    grown_mb = (memory_kb(pid)["VmHWM"] - before) / 1024
    print(f"fast speaker: {got}; server peak RSS +{grown_mb:.1f} MB")
    assert got["status"] == "OK" and got["segments"] >= 100, got
    assert grown_mb <= GROWTH_MB, f"the server's peak memory grew {grown_mb:.0f} MB (the room's backlog)"
