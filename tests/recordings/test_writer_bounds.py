"""A recording's writer is bounded and off the call's path (issue 61): what waits for the writer
thread is bounded in bytes, a piece past the bound ends the recording marked incomplete
(``queue_full``) and the session's tap neither blocks nor raises; the ``recording.ready`` hook gets
each finished recording's manifest (without its key), complete or not."""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from translate_svc.recordings.service import Recordings
from translate_svc.session.tenants.recording import RecordMode, RecordPolicy
from translate_svc.settings import RecordingsSettings
from translate_svc.types import AudioEncoding, AudioFormat, SegmentResult, Transcript, Translation, TranslationTask

pytestmark = [pytest.mark.unit, pytest.mark.asyncio(loop_scope="session")]

FMT = AudioFormat(AudioEncoding.LINEAR16, 16_000, 1)
TASK = TranslationTask("eng", ("spa",))
BOUND = 64 * 1024


def recordings(tmp: Path, ready: list[dict[str, Any]]) -> Recordings:
    keys = tmp / "keys"
    keys.write_text(f"acme k1 {base64.b64encode(os.urandom(32)).decode()}\n")
    settings = RecordingsSettings(dir=tmp / "rec", key_file=keys, queue_max_bytes=BOUND)
    return Recordings(settings, on_ready=ready.append)


def result(i: int) -> SegmentResult:
    speech = np.zeros(1600, np.float32)
    return SegmentResult(
        i, i * 1000, i * 1000 + 800, Transcript("eng", f"words {i}"), (Translation("spa", f"palabras {i}", speech),)
    )


async def ready_one(ready: list[dict[str, Any]]) -> dict[str, Any]:
    for _ in range(2000):
        if ready:
            return ready.pop()
        await asyncio.sleep(0.005)
    raise AssertionError("no recording.ready within 10 s")


async def test_a_piece_past_the_queue_bound_ends_the_recording_not_the_call(tmp_path: Path) -> None:
    ready: list[dict[str, Any]] = []
    recs = recordings(tmp_path, ready)
    await recs.start()
    try:
        r = recs.open("acme", RecordPolicy(RecordMode.AUDIO), "a" * 32, FMT, TASK)
        assert r is not None
        r.audio(np.zeros(1600, np.float32))
        r.result(result(0))
        r.audio(np.zeros(BOUND // 4 + 1, np.float32))  # more than the whole queue may hold: returns at once
        r.result(result(1))  # dropped: the recording has ended
        r.close()
        manifest = await ready_one(ready)
        assert manifest["complete"] is False and manifest["incomplete_reason"] == "queue_full"
        assert "key" not in manifest and manifest["id"] == "a" * 32
        assert recs.live == set()
    finally:
        await recs.stop()


async def test_the_ready_hook_gets_a_complete_recordings_manifest(tmp_path: Path) -> None:
    ready: list[dict[str, Any]] = []
    recs = recordings(tmp_path, ready)
    await recs.start()
    try:
        r = recs.open("acme", RecordPolicy(RecordMode.AUDIO, 7), "b" * 32, FMT, TASK)
        assert r is not None
        for i in range(3):
            r.audio(np.zeros(1600, np.float32))
            r.result(result(i))
        r.close()
        manifest = await ready_one(ready)
        assert manifest["complete"] is True and manifest["retention_days"] == 7
        names = sorted(f["name"] for f in manifest["files"])
        assert names == ["segments.jsonl", "source.ogg", "speech.spa.ogg"]
        assert all(f["complete"] and len(f["sha256"]) == 64 for f in manifest["files"])
        # a tenant without a key is not recorded (logged and counted), and says so by returning None
        assert recs.open("nokey", RecordPolicy(RecordMode.TEXT), "c" * 32, FMT, TASK) is None
    finally:
        await recs.stop()
