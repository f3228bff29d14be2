"""What recording a session costs (issue 61): the tap on the event loop (``SessionRecorder.audio``
per 100 ms chunk, ``result`` per final result with two targets' speech) and the writer thread's
speed (Ogg Opus encoding and AES-256-GCM sealing), for one recording of ``--seconds`` of 16 kHz
input with a 3 s result in two languages every 4 s. No server and no model: the recordings package
alone, in this process.

    python benchmarks/studies/recording_cost.py --seconds 300
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from translate_svc.recordings.service import Recordings
from translate_svc.session.tenants.recording import RecordMode, RecordPolicy
from translate_svc.settings import RecordingsSettings
from translate_svc.types import (
    AudioEncoding,
    AudioFormat,
    SegmentResult,
    Transcript,
    Translation,
    TranslationTask,
    WordTiming,
)

CHUNK_S = 0.1
RESULT_EVERY_S = 4
SPEECH_S = 3


async def run(seconds: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="recording-cost-"))
    (tmp / "keys").write_text(f"bench k1 {base64.b64encode(os.urandom(32)).decode()}\n")
    ready: list[dict[str, Any]] = []
    finished = asyncio.Event()

    def on_ready(manifest: dict[str, Any]) -> None:
        ready.append(manifest)
        finished.set()

    recs = Recordings(RecordingsSettings(dir=tmp / "rec", key_file=tmp / "keys"), on_ready=on_ready)
    await recs.start()
    rng = np.random.default_rng(0)
    chunks = [(rng.standard_normal(int(16000 * CHUNK_S)) * 0.1).astype(np.float32) for _ in range(50)]
    words = tuple(WordTiming(f"w{i}", i * 100, i * 100 + 80) for i in range(20))
    speech = (rng.standard_normal(16000 * SPEECH_S) * 0.1).astype(np.float32)
    n_chunks = int(seconds / CHUNK_S)
    per_result = int(RESULT_EVERY_S / CHUNK_S)
    recorder = recs.open(
        "bench",
        RecordPolicy(RecordMode.AUDIO),
        "0" * 32,
        AudioFormat(AudioEncoding.LINEAR16, 16000, 1),
        TranslationTask("eng", ("spa", "fra")),
    )
    assert recorder is not None
    audio_s = result_s = 0.0
    results = 0
    t0 = time.perf_counter()
    for i in range(n_chunks):
        start = time.perf_counter()
        recorder.audio(chunks[i % len(chunks)])
        audio_s += time.perf_counter() - start
        if i % per_result == per_result - 1:
            r = SegmentResult(
                results,
                results * 4000,
                results * 4000 + 3000,
                Transcript("eng", "some words " * 10, words),
                tuple(Translation(lang, "palabras " * 10, speech, words=words) for lang in ("spa", "fra")),
            )
            start = time.perf_counter()
            recorder.result(r)
            result_s += time.perf_counter() - start
            results += 1
        if i % 10 == 0:
            await asyncio.sleep(0)
    recorder.close()
    await finished.wait()
    wall = time.perf_counter() - t0
    await recs.stop()
    shutil.rmtree(tmp, ignore_errors=True)
    manifest = ready[0]
    print(
        f"tap on the loop: audio() {audio_s / n_chunks * 1e6:.1f} us per {CHUNK_S * 1000:.0f} ms chunk; "
        f"result() {result_s / max(1, results) * 1e6:.1f} us per result (2 targets, {SPEECH_S} s of speech each)"
    )
    print(
        f"writer: {seconds} s of source and 2 x {results * SPEECH_S} s of speech encoded and sealed in {wall:.2f} s "
        f"({seconds / wall:.0f}x real time); complete={manifest['complete']}"
    )
    print({f["name"]: f["bytes"] for f in manifest["files"]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=300)
    asyncio.run(run(parser.parse_args().seconds))


if __name__ == "__main__":
    main()
