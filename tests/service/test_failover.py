"""Three real server processes: client-SDK streams of silero_test.wav at real time survive SIGTERM
(drain, then resume) and SIGKILL (crash, then resume) of the server they are on. Every speech region
is translated exactly once: no gap, no duplicate span, the same speech as on one server."""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from tests.support.server_process import logged_server
from translate_svc.client import AsyncTranslateClient, Segment
from translate_svc.client_cli.decode import load_pcm16k

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(50)]

KILL_AT_S = 10.0  # audio seconds into the stream when its server is stopped
#: audio per stream: the speech before the stop and as much again after it (real time: the suite's
#: clock, so no longer than the check needs)
STREAM_S = 24


async def stream_through(addresses: list[str], pcm: np.ndarray, stop: object) -> tuple[list[Segment], int, str]:
    """Stream ``pcm`` at real time in 100 ms chunks; at KILL_AT_S call ``stop(address)``."""
    segments: list[Segment] = []
    async with (
        AsyncTranslateClient(addresses, timeout_s=300) as c,
        c.stream(targets=["spa"], speech=False, transcript=False) as s,
    ):

        async def send() -> None:
            t0 = time.perf_counter()
            step = 1600
            for i, at in enumerate(range(0, len(pcm), step)):
                await asyncio.sleep(max(0.0, t0 + i * 0.1 - time.perf_counter()))
                if i == int(KILL_AT_S * 10):
                    assert s.info is not None
                    stop(s.info.address)  # type: ignore[operator]
                await s.send(pcm[at : at + step])
            await s.close()

        sender = asyncio.create_task(send())
        async for ev in s:
            if isinstance(ev, Segment):
                segments.append(ev)
        await sender
        assert s.info is not None
        return segments, s.resumes, s.info.address


async def test_real_time_streams_survive_their_servers_stopping(
    test_model_dir: Path, shared_audio: Path, tmp_path: Path
) -> None:
    """Two streams at once, each on its own server: one server gets SIGTERM (drain), the other
    SIGKILL (crash); both streams resume on the third server."""
    pcm = load_pcm16k(shared_audio / "silero_test.wav")[: 16000 * STREAM_S]
    with (
        logged_server(test_model_dir, tmp_path / "term.log") as (term, port_term),
        logged_server(test_model_dir, tmp_path / "kill.log") as (kill, port_kill),
        logged_server(test_model_dir, tmp_path / "spare.log") as (spare, port_spare),
    ):
        procs = {f"127.0.0.1:{port_term}": term, f"127.0.0.1:{port_kill}": kill, f"127.0.0.1:{port_spare}": spare}
        at_term, at_kill, at_spare = procs
        how = {at_term: signal.SIGTERM, at_kill: signal.SIGKILL}
        stopped: list[str] = []

        def stop(address: str) -> None:
            stopped.append(address)
            procs[address].send_signal(how[address])

        runs = await asyncio.gather(
            stream_through([at_term, at_spare], pcm, stop), stream_through([at_kill, at_spare], pcm, stop)
        )
        # the same audio on one server (the survivor), in one call
        async with AsyncTranslateClient([at_spare]) as c:
            reference = (await c.translate(pcm, sample_rate=16000, targets=["spa"], speech=False)).segments
        assert term.wait(30) == 0  # drained and exited cleanly
    assert sorted(stopped) == sorted([at_term, at_kill])
    for name, (segments, resumes, last) in zip(("SIGTERM", "SIGKILL"), runs, strict=True):
        assert last == at_spare and resumes >= 1, name
        ids = [s.segment_id for s in segments]
        assert ids == list(range(len(segments))), name  # no gap, no repeat
        assert all(s.error is None for s in segments), name
        assert all(p.end_ms <= q.start_ms for p, q in itertools.pairwise(segments)), name  # no span twice
        assert any(s.start_ms >= KILL_AT_S * 1000 for s in segments), name  # translated after the switch too
        for r in reference:  # the same speech as on one server
            assert any(s.start_ms < r.end_ms and r.start_ms < s.end_ms for s in segments), (name, r.start_ms)
        assert abs(len(segments) - len(reference)) <= 2, name
        print(f"\n{name}: {len(segments)} segments (one server: {len(reference)}), {resumes} resume(s)")
