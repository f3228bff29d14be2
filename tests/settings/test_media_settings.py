"""The media processes' settings (``Settings.media``): checked at start, and their least memory
(``MIN_MEMORY_MB``) enough for a process that imports PyAV, numpy and libsndfile to probe, read and
count a video; the default for the bounds docs/security.md gives ("Hardening 7")."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pydantic
import pytest

from tests.support import hostile_media, videos
from translate_svc.errors import InvalidInput
from translate_svc.jobs.media import JobMedia
from translate_svc.settings import Settings
from translate_svc.settings.media import MIN_MEMORY_MB, MediaSettings
from translate_svc.types import AudioEncoding, AudioFormat

pytestmark = pytest.mark.unit


def test_bounds_that_cannot_hold_are_refused_at_start() -> None:
    with pytest.raises(pydantic.ValidationError, match="max_processes_per_tenant"):
        Settings(media=MediaSettings(max_processes=1, max_processes_per_tenant=2))
    with pytest.raises(pydantic.ValidationError, match="memory_mb"):
        MediaSettings(memory_mb=MIN_MEMORY_MB - 1)


def test_a_process_at_the_least_memory_probes_and_reads_a_video(shared_audio: Path, tmp_path: Path) -> None:
    clip = videos.write_video(tmp_path / "clip.webm", shared_audio / "jfk.flac", seconds=3)
    silent = hostile_media.lengthless_opus_mkv(tmp_path / "silent.mkv", 0.01)
    fmt = AudioFormat(AudioEncoding.CONTAINER, 0, 1)

    async def run() -> tuple[int, int, int]:
        media = JobMedia(MediaSettings(memory_mb=MIN_MEMORY_MB))
        try:
            probed = await media.probe("t", clip, fmt, clip.stat().st_size, 3600, 3600)
            counted = await media.probe("t", silent, fmt, silent.stat().st_size, 3600, 3600)
            async with media.reader("t", clip, fmt, clip.stat().st_size, 0) as blocks:
                frames = len(await blocks.read(blocks.rate * 30))
        finally:
            await media.close()
        return probed.duration_ms, counted.duration_ms, frames

    probed, counted, frames = asyncio.run(run())
    assert probed == 3000 and frames == 3 * 48000
    assert 35_000 < counted <= 36_000  # 36 s of 20 ms DTX frames, less the Opus pre-skip


def test_a_file_past_its_cpu_budget_is_refused_saying_what_it_states(tmp_path: Path) -> None:
    hours = hostile_media.lengthless_opus_mkv(tmp_path / "hours.mkv", 2.0)  # 2.5 MB, about 7 s to count
    fmt = AudioFormat(AudioEncoding.CONTAINER, 0, 1)

    async def run() -> str:
        media = JobMedia(MediaSettings(cpu_s=2, cpu_s_per_mb=0))
        try:
            await media.probe("t", hours, fmt, hours.stat().st_size, 6 * 3600, 12 * 3600)
        except InvalidInput as e:
            return e.message
        finally:
            await media.close()
        return "taken"

    said = asyncio.run(run())
    assert said.startswith(f"this file states more audio than its {hours.stat().st_size} bytes can hold"), said
    assert "more than 2 s of CPU" in said and "media.cpu_s" in said, said


def test_the_media_processes_run_ten_below_the_server_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    """The product's default (the suite's servers run them at 0: tests/conftest.py): an upload's
    decoder counts less to the scheduler than live work; the environment sets it."""
    monkeypatch.delenv("TRANSLATE_SVC_MEDIA__NICENESS", raising=False)
    assert Settings().media.niceness == 10
    assert JobMedia(Settings().media).sandbox.limits.niceness == 10
    monkeypatch.setenv("TRANSLATE_SVC_MEDIA__NICENESS", "3")
    assert JobMedia(Settings().media).sandbox.limits.niceness == 3
