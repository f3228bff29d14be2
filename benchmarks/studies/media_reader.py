"""How a running job reads its upload's audio, three ways (docs/decisions.md, "A job's upload read
in a media process of its own"). Run from the repository root::

    python -m benchmarks.studies.media_reader --minutes 10 --rounds 3

A 10-minute MP4 (AAC, 44.1 kHz stereo) and WebM (Opus, 48 kHz stereo) of jfk.flac's speech under
small frames (``tests/support/videos.py``), each read through as a job reads it (30 s blocks, mono
float32):

- ``in_process``: ``jobs/reader.AudioBlocks`` in this process (what the server did before);
- ``streamed``: ``jobs/media.JobMedia.reader``: a sandbox process decodes, each block comes over
  its pipe (what the server does now);
- ``decoded_once``: the probe decodes the whole audio once to a raw float32 file (in a sandbox
  process), then the job reads that file as raw samples in this process (the alternative).

For each: wall seconds, this process's CPU seconds, the children's CPU seconds, and (``decoded_once``)
the raw file's size. Best of ``--rounds``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support import videos
from tests.support.paths import SHARED_AUDIO
from translate_svc.jobs.media import JobMedia
from translate_svc.jobs.reader import AudioBlocks
from translate_svc.settings.media import MediaSettings
from translate_svc.types import AudioEncoding, AudioFormat

CONTAINER = AudioFormat(AudioEncoding.CONTAINER, 0, 1)
BLOCK_S = 30


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def decode_to_raw(path: Path, out: Path) -> tuple[int, int]:
    """The upload's audio decoded once to ``out`` (float32 mono): its rate and frames."""
    blocks = AudioBlocks(path, CONTAINER)
    n = 0
    with open(out, "wb") as f:
        while len(x := blocks.read(blocks.rate * BLOCK_S)):
            f.write(x.astype("<f4").tobytes())
            n += len(x)
    blocks.close()
    return blocks.rate, n


def in_process(path: Path) -> int:
    blocks = AudioBlocks(path, CONTAINER)
    n = 0
    while len(x := blocks.read(blocks.rate * BLOCK_S)):
        n += len(x)
    blocks.close()
    return n


async def streamed(path: Path, size: int) -> int:
    media = JobMedia(MediaSettings())
    n = 0
    try:
        async with media.reader("study", path, CONTAINER, size, 0) as blocks:
            while len(x := await blocks.read(blocks.rate * BLOCK_S)):
                n += len(x)
    finally:
        await media.close()
    return n


async def decoded_once(path: Path, raw: Path) -> int:
    media = JobMedia(MediaSettings())
    try:
        # by its module's name, not ``__main__``'s: the sandbox process imports it
        named = importlib.import_module("benchmarks.studies.media_reader").decode_to_raw
        rate, _ = await media.sandbox.run("study", 600, named, path, raw)
    finally:
        await media.close()
    fmt = AudioFormat(AudioEncoding.FLOAT32, rate, 1)
    blocks = AudioBlocks(raw, fmt)
    n = 0
    while len(x := blocks.read(rate * BLOCK_S)):
        n += len(x)
    blocks.close()
    return n


def timed(fn: Any) -> dict[str, float]:
    cpu, kids, wall = time.process_time(), _children_cpu(), time.perf_counter()
    frames = fn()
    return {
        "wall_s": round(time.perf_counter() - wall, 3),
        "cpu_s": round(time.process_time() - cpu, 3),
        "children_cpu_s": round(_children_cpu() - kids, 3),
        "frames": frames,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.studies.media_reader")
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    opts = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="media-reader-"))
    out: dict[str, Any] = {}
    for kind in ("mp4", "webm"):
        path = videos.write_video(folder / f"clip.{kind}", SHARED_AUDIO / "jfk.flac", seconds=opts.minutes * 60)
        raw = folder / f"clip.{kind}.f32"
        ways = {
            "in_process": lambda p=path: in_process(p),
            "streamed": lambda p=path: asyncio.run(streamed(p, p.stat().st_size)),
            "decoded_once": lambda p=path, r=raw: asyncio.run(decoded_once(p, r)),
        }
        got: dict[str, Any] = {"file_mb": round(path.stat().st_size / 1e6, 1)}
        for name, way in ways.items():
            runs = [timed(way) for _ in range(opts.rounds)]
            got[name] = min(runs, key=lambda r: r["wall_s"])
        got["decoded_once"]["raw_file_mb"] = round(raw.stat().st_size / 1e6, 1)
        assert len({got[w]["frames"] for w in ways}) == 1, got
        out[kind] = got
        print(kind, json.dumps(got), flush=True)
    if opts.json is not None:
        opts.json.parent.mkdir(parents=True, exist_ok=True)
        opts.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
