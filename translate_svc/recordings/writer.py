"""The recordings' writer: one thread per server process, off every call's path.

Sessions hand their pieces (input audio, a result's JSON line and speech) to ``RecordingWriter.put``
from the event loop; it never blocks. What waits for the thread is bounded in bytes, every
recording of the process together (``recordings.queue_max_bytes``): a piece that would go past it
ends that recording, marked incomplete (``queue_full``); the call goes on. A write that fails (a
full disk: ENOSPC, a quota: EDQUOT, a file size limit: EFBIG; or any other error) ends the
recording the same way (``disk_full``, ``write_error``): its files are left cut where the failure
came (each reads back as far as it was sealed, then ``Truncated``), and its manifest says it is
incomplete and why. Either is logged and counted (``translate_svc_recordings_incomplete_total``),
never raised to the call.

A recording's manifest is written when it opens (``complete: false``) and again when it ends, each
time whole (a temporary file renamed over it), so a manifest on disk is never half written, and a
recording whose end could not be written (the disk full) still says it is incomplete.

Thread safety: ``put``, ``reserve`` and ``close`` may be called from any thread (the loop); a
``Recording``'s files are touched by the writer thread only; its ``failed`` flag is set there and
read by the loop (a plain attribute: a stale read costs one more piece, dropped by the thread).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from translate_svc.observability import metrics
from translate_svc.recordings.files import Hashed, OggOpusFile

logger = logging.getLogger(__name__)

#: errors that mean the disk (or the process's share of it) is full
_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
SEGMENTS_FILE = "segments.jsonl"
SOURCE_FILE = "source.ogg"
MANIFEST = "manifest.json"
SEALED_SUFFIX = ".sealed"


def speech_file(language: str) -> str:
    return f"speech.{language}.ogg"


@dataclass
class Recording:
    """One recording: its manifest (``manifest`` plain JSON values) and, in the writer thread, its
    open files."""

    directory: Path
    manifest: dict[str, Any]
    data_key: bytes
    audio: bool
    source_rate: int
    #: set by the writer thread when the recording ended early (its reason); read by the loop
    failed: str | None = None
    segments: Hashed | None = None
    source: OggOpusFile | None = None
    speech: dict[str, OggOpusFile] = field(default_factory=dict)

    @property
    def log(self) -> dict[str, str]:
        return {"session_id": str(self.manifest["session_id"])}


@dataclass(frozen=True)
class Piece:
    """What a session hands the writer: input audio, or a result (its JSON line and speech)."""

    recording: Recording
    size: int
    audio: np.ndarray | None = None
    line: bytes | None = None
    speech: tuple[tuple[str, np.ndarray, int], ...] = ()


@dataclass(frozen=True)
class _Open:
    recording: Recording


@dataclass(frozen=True)
class _Close:
    recording: Recording
    #: the loop side's reason to end it early (``queue_full``), if any
    reason: str | None


_STOP = object()


def failure_reason(exc: BaseException) -> str:
    """``disk_full`` when ``exc`` (or what caused it) is a full disk, quota or file size limit."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _FULL:
            return "disk_full"
        seen = seen.__cause__ or seen.__context__
    return "write_error"


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    """The manifest, whole: written beside and renamed over the last one."""
    tmp = directory / (MANIFEST + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, directory / MANIFEST)


class RecordingWriter:
    """The writer thread and its bounded queue. ``on_finished(recording)`` is called on the writer
    thread when a recording's manifest is final (the owner hops to its loop)."""

    def __init__(self, max_bytes: int, on_finished: Callable[[Recording], None]) -> None:
        self._max_bytes = max_bytes
        self._on_finished = on_finished
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()  # bounded in bytes by ``reserve``
        self._lock = threading.Lock()
        self._pending = 0
        self._thread = threading.Thread(target=self._run, name="recordings-writer", daemon=True)
        self._thread.start()

    @property
    def pending_bytes(self) -> int:
        return self._pending

    def reserve(self, size: int) -> bool:
        """Room for ``size`` more bytes in the queue (taken), or False when it is full."""
        with self._lock:
            if self._pending + size > self._max_bytes:
                return False
            self._pending += size
            return True

    def open(self, recording: Recording) -> None:
        self._queue.put(_Open(recording))

    def put(self, piece: Piece) -> None:
        """A piece whose size was ``reserve``d."""
        self._queue.put(piece)

    def finish(self, recording: Recording, reason: str | None = None) -> None:
        """The recording's session is over (``reason``: it was ended early on the loop's side)."""
        self._queue.put(_Close(recording, reason))

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop the thread (the server stops)."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    # -- the writer thread -----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            try:
                if isinstance(item, Piece):
                    try:
                        self._write(item)
                    finally:
                        with self._lock:
                            self._pending -= item.size
                elif isinstance(item, _Open):
                    self._open(item.recording)
                elif isinstance(item, _Close):
                    self._close(item.recording, item.reason)
            except Exception:  # the thread outlives any one recording
                logger.exception("the recordings writer failed on an item")

    def _fail(self, rec: Recording, exc: BaseException | None, reason: str) -> None:
        if rec.failed is not None:
            return
        rec.failed = reason
        metrics.RECORDINGS_INCOMPLETE.labels(reason).inc()
        if exc is not None:
            logger.error("recording %s ended early (%s): %r", rec.manifest["id"], reason, exc, extra=rec.log)
        else:
            logger.warning("recording %s ended early (%s)", rec.manifest["id"], reason, extra=rec.log)
        for f in (rec.segments, rec.source, *rec.speech.values()):
            if f is not None:
                f.abandon()

    def _open_file(self, rec: Recording, name: str) -> Hashed:
        out = open(rec.directory / (name + SEALED_SUFFIX), "wb")  # closed by Hashed
        return Hashed(out, rec.data_key, name)

    def _open(self, rec: Recording) -> None:
        try:
            rec.directory.mkdir(parents=True, exist_ok=False)
            write_manifest(rec.directory, rec.manifest)
            rec.segments = self._open_file(rec, SEGMENTS_FILE)
            if rec.audio:
                rec.source = OggOpusFile(self._open_file(rec, SOURCE_FILE), rec.source_rate, continuous=True)
        except Exception as e:
            self._fail(rec, e, failure_reason(e))

    def _write(self, piece: Piece) -> None:
        rec = piece.recording
        if rec.failed is not None:
            return
        try:
            if piece.audio is not None and rec.source is not None:
                rec.source.push(piece.audio)
            if piece.line is not None and rec.segments is not None:
                rec.segments.write(piece.line)
            for language, audio, rate in piece.speech:
                f = rec.speech.get(language)
                if f is None:
                    f = rec.speech[language] = OggOpusFile(
                        self._open_file(rec, speech_file(language)), rate, continuous=False
                    )
                f.push(audio, rate)
        except Exception as e:
            self._fail(rec, e, failure_reason(e))

    def _close(self, rec: Recording, reason: str | None) -> None:
        if reason is not None:
            self._fail(rec, None, reason)
        files: list[dict[str, Any]] = []
        entries: list[tuple[str, str | None, Hashed | None, OggOpusFile | None]] = [
            (SEGMENTS_FILE, None, rec.segments, None),
        ]
        if rec.source is not None:
            entries.append((SOURCE_FILE, None, None, rec.source))
        entries += [(speech_file(lang), lang, None, f) for lang, f in rec.speech.items()]
        for name, language, text, ogg in entries:
            hashed = text if text is not None else ogg.out if ogg is not None else None
            if hashed is None:
                continue
            if rec.failed is None:
                try:
                    (ogg or hashed).close()
                except Exception as e:
                    self._fail(rec, e, failure_reason(e))
            done = hashed.closed  # a file closed before a failure is whole; the rest are cut
            kind = "segments" if name == SEGMENTS_FILE else "source" if name == SOURCE_FILE else "speech"
            entry: dict[str, Any] = {"name": name, "kind": kind, "complete": done, "bytes": hashed.size}
            entry["sha256"] = hashed.sha256 if hashed.closed else None
            if language is not None:
                entry["language"] = language
            files.append(entry)
        rec.manifest.update(
            files=files,
            ended_at=time.time(),
            complete=rec.failed is None,
            incomplete_reason=rec.failed,
        )
        try:
            write_manifest(rec.directory, rec.manifest)
        except Exception as e:
            logger.error(
                "recording %s: its final manifest could not be written (%r): it stays marked incomplete",
                rec.manifest["id"],
                e,
                extra=rec.log,
            )
            if rec.failed is None:
                rec.failed = failure_reason(e)
                metrics.RECORDINGS_INCOMPLETE.labels(rec.failed).inc()
            rec.manifest.update(complete=False, incomplete_reason=rec.failed)
        metrics.RECORDINGS.labels(str(rec.manifest["tenant"]), str(rec.manifest["complete"]).lower()).inc()
        self._on_finished(rec)
