"""A job's files, whichever store keeps its state (``store.py``: SQLite on one node;
``redis_store.py``: Redis across pods, the files then on a volume every pod mounts): a folder per
job under ``jobs.dir`` (``jobs/<id>/``) holding its audio (``audio``, deleted once the job ends),
an upload's part while it comes (``part.<hex>``), its targets' speech (``<target>.pcm``:
PCM16 mono at the track's rate, each finished segment's speech after the one before, in segment
order, each as long as its result's ``audio_samples``) and, once it was read to its end, its
audio's exact length (``source.json``: frames and rate); the upload's SHA-256 once checked
(``digest.json``, named in the content credentials of the files made from it). The dubbed track
is made from them when it is fetched (``dub.py``: each segment's speech at its segment's start,
as long as the audio), so what a finished segment wrote is never changed by a later one.

A video upload is marked so once checked (``media.json``: its container's kind); when
its job is done its upload is kept, moved to ``video`` (``keep_video``), for the dubbed video
made from it on request (``jobs/video.py``) until the job's retention ends or it is deleted: its
bytes stay counted in what the tenant's jobs keep. A job that fails or is cancelled keeps no video.
Synchronous: called on the store's thread (or a worker thread)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from translate_svc.errors import storage_full

#: PCM16 bytes per sample of a dubbed track
TRACK_WIDTH = 2
#: the job's last run (``billing.py``): of no more use once the job ended
RUN_FILE = "run.json"
_COPY_BYTES = 1024 * 1024


class JobFiles:
    """Where a job's files are under ``root`` (``jobs.dir``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, job_id: str) -> Path:
        return self.root / "jobs" / job_id

    def audio_path(self, job_id: str) -> Path:
        return self.folder(job_id) / "audio"

    def track_path(self, job_id: str, language: str) -> Path:
        return self.folder(job_id) / f"{language}.pcm"

    def _read_field(self, job_id: str, name: str, key: str) -> str | None:
        """``key`` of the job's small JSON file ``name``; None when it is missing or unreadable."""
        try:
            return str(json.loads((self.folder(job_id) / name).read_text())[key])
        except (FileNotFoundError, ValueError, KeyError):
            return None

    def _write_json(self, job_id: str, name: str, value: dict[str, Any]) -> None:
        path = self.folder(job_id) / name
        part = path.with_suffix(f".{secrets.token_hex(4)}.part")
        part.write_text(json.dumps(value))
        part.replace(path)

    def write_source_length(self, job_id: str, frames: int, rate: int) -> None:
        """The audio's exact length, once the job read it to its end (its dubbed tracks are as long)."""
        self._write_json(job_id, "source.json", {"frames": frames, "rate": rate})

    def write_digest(self, job_id: str, sha256: str) -> None:
        """The SHA-256 (hex) of the job's upload as it was checked: the source its files' content
        credentials name (``credentials.py``)."""
        self._write_json(job_id, "digest.json", {"sha256": sha256})

    def digest_of(self, job_id: str) -> str | None:
        """The upload's SHA-256 (``write_digest``); None: not noted (a job from before it was)."""
        return self._read_field(job_id, "digest.json", "sha256")

    def source_length(self, job_id: str) -> tuple[int, int] | None:
        """(frames, rate) of the job's audio (``write_source_length``); None: not read to its end."""
        try:
            d = json.loads((self.folder(job_id) / "source.json").read_text())
        except (FileNotFoundError, ValueError):
            return None
        return int(d["frames"]), int(d["rate"])

    def video_path(self, job_id: str) -> Path:
        """A done video job's upload, kept for its dubbed video (``keep_video``)."""
        return self.folder(job_id) / "video"

    def write_media(self, job_id: str, kind: str, audio_start_ms: int = 0) -> None:
        """The upload is a video of ``kind`` (``audio.media.MediaKind``): kept once its job is done;
        its sound starts ``audio_start_ms`` into it (``MediaInfo.audio_start_ms``)."""
        self._write_json(job_id, "media.json", {"kind": kind, "audio_start_ms": audio_start_ms})

    def media_start_ms(self, job_id: str) -> int:
        """Where a video upload's sound starts (ms; 0: at its start, or not a video)."""
        found = self._read_field(job_id, "media.json", "audio_start_ms")
        return int(found) if found is not None else 0

    def media_of(self, job_id: str) -> str | None:
        """The kind of a video upload (``write_media``), or None: not a video."""
        return self._read_field(job_id, "media.json", "kind")

    def keep_video(self, job_id: str) -> bool:
        """A done job's video upload moved to ``video_path`` (its bytes still counted), before the
        audio is dropped; False when the upload is no video (or is gone)."""
        if self.media_of(job_id) is None:
            return False
        try:
            os.replace(self.audio_path(job_id), self.video_path(job_id))
        except FileNotFoundError:
            return self.video_path(job_id).exists()
        return True

    def unkeep_video(self, job_id: str) -> None:
        """``keep_video`` undone: the upload back where the audio is, for ``drop_audio`` to delete
        and uncount (the job did not end done after all: a failed or cancelled job keeps nothing)."""
        with contextlib.suppress(FileNotFoundError):
            os.replace(self.video_path(job_id), self.audio_path(job_id))

    def new_folder(self, job_id: str) -> None:
        self.folder(job_id).mkdir(parents=True)
        self.audio_path(job_id).touch()

    def copy_part(self, job_id: str, offset: int, part: Path) -> None:
        """An upload's part (a file of its own, received whole) written into the audio at ``offset``.
        A write that fails leaves the audio as it was (cut back to ``offset``, where the upload
        ended): a full disk's refusal (ENOSPC) is ``StorageFull``, nothing of the part kept."""
        path = self.audio_path(job_id)
        try:
            with open(path, "r+b") as f, open(part, "rb") as src:
                f.truncate(offset)
                f.seek(offset)
                shutil.copyfileobj(src, f, _COPY_BYTES)
        except OSError as e:
            with contextlib.suppress(FileNotFoundError):
                os.truncate(path, offset)  # what was written of the part is undone
            full = storage_full(e, "this part")
            if full is None:
                raise
            raise full from None

    def part_path(self, job_id: str) -> Path:
        """A new file for an upload's part while it comes (removed by whoever made it)."""
        return self.folder(job_id) / f"part.{secrets.token_hex(6)}"

    def remove_audio(self, job_id: str) -> int:
        """The job's audio deleted (it ended), with what a process killed mid-fetch or
        mid-part left beside it (``audio.<hex>.part``, ``part.<hex>``), its last run's file and, when nothing made
        from it is kept (no track, no video), its digest; the audio's size (0 if it was gone:
        what the store counted)."""
        path = self.audio_path(job_id)
        size = 0
        with contextlib.suppress(FileNotFoundError):
            size = path.stat().st_size
            path.unlink()
        folder = self.folder(job_id)
        left = [*folder.glob("audio.*.part"), *folder.glob("part.*"), folder / RUN_FILE]
        if not any(folder.glob("*.pcm")) and not self.video_path(job_id).exists():
            left.append(folder / "digest.json")  # nothing made from the upload is kept: no file will name it
        for path in left:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        return size

    def cut_tracks(self, job_id: str, tracks: dict[str, int]) -> None:
        """Each track cut back to its length after the last finished segment (bytes a process
        wrote before it died, past what the store recorded)."""
        for path in self.folder(job_id).glob("*.pcm"):
            keep = tracks.get(path.stem, 0)
            if path.stat().st_size != keep:
                with open(path, "r+b") as f:
                    f.truncate(keep)

    def append_speech(
        self, job_id: str, tracks: dict[str, int], result: dict[str, Any], speech: dict[str, np.ndarray], rate: int
    ) -> dict[str, int]:
        """A finished segment's speech appended to each target's file, after the speech of the
        segments before it (the lengths the store recorded after the last one: ``tracks``; bytes
        a process killed mid-write left past them are written over); returns the lengths after
        this one. ``result``'s translations say how long each is (``audio_samples``)."""
        tracks = dict(tracks)
        for language, samples in speech.items():
            path = self.track_path(job_id, language)
            have = tracks.get(language, 0)
            pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()
            with open(path, "ab") as f:
                f.truncate(have)
                f.write(pcm)
            tracks[language] = have + len(pcm)
        return tracks

    def append_edited(self, job_id: str, language: str, samples: np.ndarray) -> int:
        """An edited segment's speech (``edits.py``) appended to a done job's track file, the old
        speech left where it was (a process killed before its segment's result names the new one
        leaves bytes nothing names): returns where it starts, in samples."""
        pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        with open(self.track_path(job_id, language), "ab") as f:
            at = f.seek(0, 2)
            f.write(pcm)
        return at // TRACK_WIDTH

    def overwrite_speech(self, job_id: str, language: str, at: int, samples: np.ndarray) -> None:
        """``samples`` written over a target's track file from its sample ``at`` (a segment's speech
        re-voiced: as long as the old, ``revoice.py``)."""
        pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        with open(self.track_path(job_id, language), "r+b") as f:
            f.seek(at * 2)
            f.write(pcm)
