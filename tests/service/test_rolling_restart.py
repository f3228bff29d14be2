"""A rollout on loopback: 3 server processes play the replicas; 12 real-time SDK streams run while
each server in turn gets SIGTERM and is started again on its port, as a Deployment rollout does.
Every speech region of every stream is translated exactly once. Prints the figures.

The servers run the made-up stable translator (``--test-translator stable``): what is tested is the
rollout's mechanics (the drain, the SDK's resume on another server, the segments' ids and spans
against the VAD's), which the model's words take no part in; each start costs a quarter of one on
the checkpoint, and the streams' decodes nothing."""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from tests.support.server_process import logged_server
from tests.support.speech import vad_segments
from translate_svc.client import AsyncTranslateClient, Segment
from translate_svc.client_cli.decode import load_pcm16k
from translate_svc.wire.pcm import pcm16_to_float

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(100)]

STREAMS = 12
SECONDS = 60
#: the made-up stable translator: a start of ~2 CPU s (~8 on the checkpoint), no decode per segment
STABLE = ("--test-translator", "stable")


async def test_a_rolling_restart_of_three_servers_loses_and_repeats_nothing(
    test_model_dir: Path, shared_audio: Path, tmp_path: Path
) -> None:
    pcm = load_pcm16k(shared_audio / "silero_test.wav")
    clips = [np.roll(pcm, -16000 * 5 * i)[: 16000 * SECONDS] for i in range(STREAMS)]
    servers = {}
    logs = itertools.count()
    contexts = []
    for _ in range(3):
        ctx = logged_server(test_model_dir, tmp_path / f"s{next(logs)}.log", more=STABLE)
        proc, port = ctx.__enter__()
        contexts.append(ctx)
        servers[f"127.0.0.1:{port}"] = proc
    addresses = list(servers)
    #: per stream: its segments, (arrival time, latency ms) of each, and its resumes
    results: dict[int, tuple[list[Segment], list[tuple[float, float]], int]] = {}
    restarts: list[float] = []
    rolled = asyncio.Event()

    async def one(i: int) -> None:
        await asyncio.sleep(i * 0.2)
        segments: list[Segment] = []
        latencies: list[tuple[float, float]] = []
        async with (
            AsyncTranslateClient(addresses[i % 3 :] + addresses[: i % 3], timeout_s=300) as c,
            c.stream(targets=["spa"], speech=False, transcript=False) as s,
        ):
            t0 = time.perf_counter()

            async def send() -> None:
                k = 0
                for k, at in enumerate(range(0, len(clips[i]), 1600)):
                    await asyncio.sleep(max(0.0, t0 + k * 0.1 - time.perf_counter()))
                    await s.send(clips[i][at : at + 1600])
                while not rolled.is_set():  # live until the rollout is over, however slow the machine
                    k += 1
                    await asyncio.sleep(max(0.0, t0 + k * 0.1 - time.perf_counter()))
                    await s.send(np.zeros(1600, clips[i].dtype))
                await s.close()

            sender = asyncio.create_task(send())
            async for ev in s:
                if isinstance(ev, Segment):
                    segments.append(ev)
                    sent = t0 + (ev.end_ms - 1) // 100 * 0.1  # the chunk with the audio before end_ms
                    latencies.append((time.perf_counter(), (time.perf_counter() - sent) * 1000))
            await sender
            results[i] = (segments, latencies, s.resumes)

    async def rollout() -> None:
        await asyncio.sleep(12)
        for n, address in enumerate(addresses):
            restarts.append(time.perf_counter())
            servers[address].send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(servers[address].wait, 30) == 0  # drained, exited cleanly
            port = int(address.rsplit(":", 1)[1])
            ctx = logged_server(test_model_dir, tmp_path / f"s{next(logs)}.log", port=port, more=STABLE)
            servers[address] = (await asyncio.to_thread(ctx.__enter__))[0]
            contexts.append(ctx)
            if n < 2:
                await asyncio.sleep(8)
        rolled.set()

    try:
        await asyncio.gather(rollout(), *(one(i) for i in range(STREAMS)))
    finally:
        for ctx in reversed(contexts):
            ctx.__exit__(None, None, None)
    # for the coverage check: the spans one server cuts from each whole clip (its VAD path, no model)
    reference = [await vad_segments(pcm16_to_float(clip)) for clip in clips]
    assert len(restarts) == 3 and len(results) == STREAMS
    total = resumes = 0
    for i, (segments, _, n_resumes) in results.items():
        assert [s.segment_id for s in segments] == list(range(len(segments)))  # no gap, no repeat
        assert all(s.error is None for s in segments)
        assert all(p.end_ms <= q.start_ms for p, q in itertools.pairwise(segments))  # no span twice
        for r in reference[i]:  # the same speech as on one server
            assert any(s.start_ms < r.end_ms and r.start_ms < s.end_ms for s in segments), (i, r.start_ms)
        assert abs(len(segments) - len(reference[i])) <= 2 * n_resumes + 1
        total += len(segments)
        resumes += n_resumes
    assert resumes >= STREAMS  # 3 restarts x the 4 streams on each server
    # latency of results that arrived within 5 s after a server got SIGTERM vs all others
    near, far = [], []
    for _, arrivals, _ in results.values():
        for at, ms in arrivals:
            (near if any(0 <= at - t < 5 for t in restarts) else far).append(ms)
    print(
        f"\nrolling restart: {STREAMS} streams x {SECONDS} s, 3 servers restarted in turn: {total} segments "
        f"(one server: {sum(len(r) for r in reference)}), {resumes} resumes; latency p50/p95/max "
        f"{np.percentile(far, 50):.0f}/{np.percentile(far, 95):.0f}/{max(far):.0f} ms away from a restart, "
        f"{np.percentile(near, 50):.0f}/{np.percentile(near, 95):.0f}/{max(near):.0f} ms within 5 s after one "
        f"({len(near)} results)"
    )
