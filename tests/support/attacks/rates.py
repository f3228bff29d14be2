"""Issue 101 K3: listener-chosen speaking rates multiply a room speaker's model cost. Measured on a
real ``translate-svc serve`` process (the test checkpoint, a tokens file with a speaker's token
and a listen-only token of tenant ``acme`` and another tenant ``other``) and, with ``--before
TREE``, on another checkout too (e.g. the base commit's: ``git archive ce5a4e1 | tar -x -C
/tmp/base101``), in one run.

- ``rates``: four listen-only listeners of one room (gRPC ``Listen``, one connection each) ask for
  Spanish at 0.5, 0.500001, 0.500002 and 0.500003, and one speaker streams jfk.flac twice over
  (22 s) into the room in real time (its own config: ASR only; the room adds Spanish);
- ``control``: the same, its four listeners at the speaker's rate (no ``speed``).

Meanwhile tenant ``other`` streams jfk.flac in real time over gRPC (text only). Reported per run:
how late the speaker's own results and the other tenant's come (arrival minus when the audio of the
segment's end was sent: median / worst, seconds), the server's CPU per 20 s, the segments each
listener heard and the speaking rates they came at, and the listeners refused (and why).

    python -m tests.support.attacks.rates --before /tmp/base101 --json out/attacks_rates.json
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import grpc
import numpy as np

from tests.support.attacks.bystander import realtime_lateness, speech, summary
from tests.support.attacks.checkouts import add_trees, before_after
from tests.support.attacks.client import OWN, metadata
from tests.support.attacks.unread import Served, served
from tests.support.json_result import print_and_save
from tests.support.proc import cpu_s
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

ATTACKS = ("rates", "control")
SPEAKER = "attacks-rates-speaker-2d81c7"  # tenant acme: publishes into its rooms
LISTENER = "attacks-rates-listener-b64e09"  # tenant acme: listen-only, any room
OTHER = "attacks-rates-other-7f3a55"  # tenant other: the stream watched
TOKENS = f"{SPEAKER} stream publish=* tenant=acme\n{LISTENER} listen=* tenant=acme\n{OTHER} * tenant=other\n"
NEAR = (0.5, 0.500001, 0.500002, 0.500003)
ROOM = "hall"
CHUNK_MS = 100


async def listener(port: int, speed: float | None, stop: asyncio.Event, out: dict[str, Any]) -> None:
    """One listen-only listener at ``speed`` until ``stop``: its segments, their rates, its refusal."""
    request = pb.ListenRequest(room=ROOM, language="spa")
    if speed is not None:
        request.speed = speed
    rates: Counter[str] = Counter()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=OWN) as ch:
        call = pb_grpc.TranslatorStub(ch).Listen(request, metadata=metadata(LISTENER))
        reading = asyncio.ensure_future(_read(call, rates, out))
        await asyncio.wait({reading, asyncio.ensure_future(stop.wait())}, return_when="FIRST_COMPLETED")
        call.cancel()
        await asyncio.gather(reading, return_exceptions=True)
    out["rates"] = dict(rates)


async def _read(call: Any, rates: Counter[str], out: dict[str, Any]) -> None:
    try:
        async for ev in call:
            if ev.WhichOneof("event") == "segment" and ev.segment.translations:
                t = ev.segment.translations[0]
                rates[f"{t.speech_rate:.6g}" if t.audio.num_samples else "no speech"] += 1
    except grpc.aio.AioRpcError as e:
        if e.code() != grpc.StatusCode.CANCELLED:
            out["refused"] = f"{e.code().name}: {e.details()}"


async def speaker_lateness(port: int, pcm: np.ndarray) -> list[float]:
    """The room's speaker streams ``pcm`` in real time: how late each of its own results came."""
    step = 16 * CHUNK_MS
    sent_at: list[float] = []

    async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
        cfg = pb.StreamingConfig(
            format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000),
            source_language="eng",
            room=pb.RoomSpeaking(name=ROOM),
        )
        yield pb.StreamingTranslateRequest(config=cfg)
        t0 = time.perf_counter()
        for k, i in enumerate(range(0, len(pcm), step)):
            await asyncio.sleep(max(0.0, t0 + (k + 1) * CHUNK_MS / 1000 - time.perf_counter()))
            sent_at.append(time.perf_counter())
            yield pb.StreamingTranslateRequest(audio=pcm[i : i + step].astype("<i2").tobytes())

    late: list[float] = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=OWN) as ch:
        call = pb_grpc.TranslatorStub(ch).StreamingTranslate(requests(), metadata=metadata(SPEAKER), timeout=300)
        async for r in call:
            if r.HasField("segment"):
                chunk = min(len(sent_at) - 1, max(0, -(-r.segment.end_ms // CHUNK_MS) - 1))
                late.append(time.perf_counter() - sent_at[chunk])
    return late


async def run(srv: Served, speeds: tuple[float | None, ...], *, warm_s: float = 2.0) -> dict[str, Any]:
    """Listeners at ``speeds``, then the speaker and the other tenant in real time: the figures."""
    pcm = speech()
    stop = asyncio.Event()
    heard: list[dict[str, Any]] = [{} for _ in speeds]
    listening = [asyncio.create_task(listener(srv.port, s, stop, out)) for s, out in zip(speeds, heard, strict=True)]
    await asyncio.sleep(warm_s)  # the listeners are in the room
    cpu0, t0 = cpu_s(srv.pid), time.perf_counter()
    own, other = await asyncio.gather(
        speaker_lateness(srv.port, np.tile(pcm, 2)),
        realtime_lateness(f"127.0.0.1:{srv.port}", OTHER, pcm, timeout_s=300),
    )
    wall = time.perf_counter() - t0
    cpu = cpu_s(srv.pid) - cpu0
    await asyncio.sleep(warm_s + 3.0)  # the last renditions reach the listeners (rooms.rendition_wait_s)
    stop.set()
    await asyncio.gather(*listening, return_exceptions=True)
    return {
        "speaker_late_s": summary(own),
        "other_tenant_late_s": summary(other),
        "server_cpu_s_per_20s": round(cpu / wall * 20, 2),
        "listeners_heard": [h.get("rates", {}) for h in heard],
        "listeners_refused": [h["refused"] for h in heard if "refused" in h][:2],
    }


async def run_tree(tree: Any, opts: argparse.Namespace) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for attack in opts.only:
        with served(tree, TOKENS) as srv:
            out[attack] = await run(srv, NEAR if attack == "rates" else (None,) * len(NEAR))
    return out


async def main(opts: argparse.Namespace) -> dict[str, Any]:
    results = await before_after(opts, run_tree)
    return {"date": time.strftime("%Y-%m-%d"), "results": results}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_trees(ap, ATTACKS)
    opts = ap.parse_args()
    result = asyncio.run(main(opts))
    print_and_save(result, opts.json)
    sys.exit(0)
