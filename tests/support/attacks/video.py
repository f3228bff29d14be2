"""Issue 90: what a video job can make the server hold, measured on a real ``translate-svc serve``
process (the test checkpoint, jobs on, its memory read from /proc).

- ``frame``: jfk.flac's speech under one 8192x8192 H.264 frame (MP4 and MKV): a decoder that opened
  the video would allocate hundreds of MB; copied, it is a packet.
- ``packet``: jfk.flac's speech under a video stream holding one packet of ``--packet-mb`` MB of
  random bytes (MP4 and MKV): FFmpeg's demuxers read a packet whole, so whatever reads it holds it.

For each: the job (upload, ``complete``, its run) and then its dubbed video (``mix=duck`` with the
original) are timed, and the server's peak RSS growth over each is read (``VmHWM``, reset before).

    python -m tests.support.attacks.video --packet-mb 256 --json out/attacks_video.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np

from tests.support import videos
from tests.support.jobs import base
from tests.support.paths import SHARED_AUDIO, TEST_MODEL
from tests.support.proc import memory_kb, reset_peak
from tests.support.server_process import ServerProcess


def with_a_huge_packet(out: Path, speech: Path, mb: int) -> Path:
    """A short video (``write_video``'s) with one more video packet of ``mb`` MB of random bytes
    after its last frame (its stream's codec says H.264; nothing decodes it)."""
    small = videos.write_video(out.with_name("small" + out.suffix), speech, seconds=11)
    with av.open(str(small)) as src, av.open(str(out), "w", format=src.format.name.split(",")[0]) as dst:
        copies = {s.index: dst.add_stream_from_template(s) for s in (src.streams.video[0], src.streams.audio[0])}
        last = None
        for packet in src.demux(*[src.streams[i] for i in copies]):
            if not packet.size:
                continue
            if packet.stream.type == "video":
                last = packet.pts
            packet.stream = copies[packet.stream.index]
            dst.mux(packet)
        huge = av.Packet(np.random.default_rng(0).integers(0, 256, mb << 20, np.uint8).tobytes())
        huge.stream = copies[src.streams.video[0].index]
        huge.time_base = src.streams.video[0].time_base
        huge.pts = huge.dts = (last or 0) + round(Fraction(1, 10) / huge.time_base)
        dst.mux(huge)
    return out


async def one(server: ServerProcess, path: Path) -> dict[str, Any]:
    pid = server.proc.pid
    data = await asyncio.to_thread(path.read_bytes)
    out: dict[str, Any] = {"file_mb": round(len(data) / 2**20, 1)}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as http:
        reset_peak(pid)
        before, t = memory_kb(pid)["VmRSS"], time.perf_counter()
        async with http.post(base(server), json={"source_language": "eng", "target_languages": ["spa"]}) as r:
            job = await r.json()
        part = 16 << 20
        for at in range(0, len(data), part):
            async with http.put(f"{base(server)}/{job['id']}/audio", data=data[at : at + part]) as r:
                assert r.status == 200, await r.text()
        del data
        async with http.post(f"{base(server)}/{job['id']}/complete") as r:
            out["complete"] = r.status
            if r.status != 202:
                out["refused"] = (await r.json())["error"]["message"]
                return out
        while job["state"] not in ("done", "failed", "cancelled"):
            async with http.get(f"{base(server)}/{job['id']}?wait=60") as r:
                job = await r.json()
        out["job"] = {
            "state": job["state"],
            "wall_s": round(time.perf_counter() - t, 1),
            "peak_growth_mb": round((memory_kb(pid)["VmHWM"] - before) / 1024, 1),
        }
        reset_peak(pid)
        before, t = memory_kb(pid)["VmRSS"], time.perf_counter()
        async with http.get(f"{base(server)}/{job['id']}/video?mix=duck&original=true") as r:
            size = 0
            async for chunk in r.content.iter_chunked(1 << 20):
                size += len(chunk)
            out["video"] = {
                "status": r.status,
                "bytes": size,
                "wall_s": round(time.perf_counter() - t, 1),
                "peak_growth_mb": round((memory_kb(pid)["VmHWM"] - before) / 1024, 1),
            }
        async with http.delete(f"{base(server)}/{job['id']}") as r:
            assert r.status == 204
    return out


async def main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="attack-video-") as tmp:
        work = Path(tmp)
        env = {"TRANSLATE_SVC_JOBS__DIR": str(work / "jobs"), "TRANSLATE_SVC_JOBS__QUIET_WAIT_S": "0"}
        server = ServerProcess(
            ["--model", str(args.model), "--host", "127.0.0.1", "--port", "0", "--http-port", "0"], env=env
        )
        result: dict[str, Any] = {}
        try:
            for suffix in ("mp4", "mkv"):
                speech = SHARED_AUDIO / "jfk.flac"
                frame = await asyncio.to_thread(videos.write_huge_frame_video, work / f"frame.{suffix}", speech)
                result[f"frame_{suffix}"] = await one(server, frame)
                packet = await asyncio.to_thread(with_a_huge_packet, work / f"packet.{suffix}", speech, args.packet_mb)
                result[f"packet_{suffix}"] = await one(server, packet)
        finally:
            server.stop()
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=TEST_MODEL)
    parser.add_argument("--packet-mb", type=int, default=256)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    got = asyncio.run(main(args)) | {"packet_mb": args.packet_mb, "load_1min": os.getloadavg()[0]}
    text = json.dumps(got, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text)
