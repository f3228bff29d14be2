"""Recordings of one server process: opens each recorded session's recording (``session.Recorders``),
owns the writer thread and the sweeper, and tells the ``recording.ready`` hook of each finished
recording.

Built by ``frontend.py`` when ``recordings.dir`` is set; started and stopped with the application.
``on_ready(manifest)`` (None by default; the webhooks' ``recording.ready`` is wired by the builder)
is called on the event loop with the recording's manifest (``store.public``: without its key) once
its files are final, complete or not; an exception it raises is logged, never raised to anything.
``retention_of(tenant)``: the tenant's retention as the tokens file states it now (the host sets
it; None: as stated when the recording was made, which the manifest keeps). Event loop only,
besides the writer thread.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from translate_svc.observability import metrics
from translate_svc.recordings.keys import KeyRing, NoKey
from translate_svc.recordings.recorder import SessionRecorder, count_no_key
from translate_svc.recordings.store import RecordingStore, public
from translate_svc.recordings.writer import Recording, RecordingWriter
from translate_svc.session.tenants.recording import Recorder, RecordMode, RecordPolicy
from translate_svc.settings import RecordingsSettings
from translate_svc.types import AudioFormat, TranslationTask

logger = logging.getLogger(__name__)

Manifest = dict[str, Any]


class Recordings:
    def __init__(
        self,
        settings: RecordingsSettings,
        *,
        on_ready: Callable[[Manifest], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Raises ``KeyFileError`` (one line) when the key file cannot be used: at start-up."""
        assert settings.dir is not None and settings.key_file is not None
        self.settings = settings
        self.store = RecordingStore(settings.dir, KeyRing(settings.key_file))
        self.on_ready = on_ready
        self.retention_of: Callable[[str], float | None] | None = None
        self._clock = clock
        self._writer: RecordingWriter | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweeper: asyncio.Task[None] | None = None
        #: recordings being written by this process (the sweeper leaves them)
        self.live: set[str] = set()
        self._told_no_key: set[str] = set()

    async def start(self) -> None:
        """The writer thread, and the sweeper (a sweep now, then every ``sweep_interval_s``)."""
        self._loop = asyncio.get_running_loop()
        self._writer = RecordingWriter(self.settings.queue_max_bytes, self._finished_in_thread)
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="recordings-sweeper")

    async def stop(self) -> None:
        """After the calls ended: the sweeper stops, the writer writes what is queued and stops."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._writer is not None:
            await asyncio.to_thread(self._writer.close)

    # -- session.Recorders ------------------------------------------------------------------------

    def open(
        self,
        tenant: str,
        policy: RecordPolicy,
        session_id: str,
        fmt: AudioFormat,
        task: TranslationTask,
        *,
        resume_token: str | None = None,
    ) -> Recorder | None:
        writer = self._writer
        if writer is None or policy.mode is RecordMode.NONE:
            return None
        data_key = os.urandom(32)
        try:
            wrapped = self.store.keys.wrap(tenant, session_id, data_key)
        except NoKey as e:
            count_no_key()
            if tenant not in self._told_no_key:
                self._told_no_key.add(tenant)
                logger.error("%s: its sessions are not recorded until it has one", e)
            return None
        where = self.store.path(tenant, session_id)
        assert where is not None
        days = policy.retention_days or self.settings.default_retention_days
        manifest: Manifest = {
            "version": 1,
            "id": session_id,
            "tenant": tenant,
            "session_id": session_id,
            # the stream's across calls: the recordings of one stream resumed elsewhere share it
            "resume_token": resume_token or session_id,
            "mode": policy.mode.value,
            "created_at": self._clock(),
            "ended_at": None,
            "retention_days": days,
            "source_language": task.source_language,
            "target_languages": list(task.target_languages),
            "input": {"encoding": fmt.encoding.value, "sample_rate_hz": fmt.sample_rate_hz},
            "key": {
                "id": wrapped.key_id,
                "nonce": base64.b64encode(wrapped.nonce).decode(),
                "wrapped": base64.b64encode(wrapped.ciphertext).decode(),
            },
            "complete": False,
            "incomplete_reason": None,
            "files": [],
        }
        recording = Recording(
            where, manifest, data_key, audio=policy.mode is RecordMode.AUDIO, source_rate=fmt.heard_rate
        )
        self.live.add(session_id)
        return SessionRecorder(writer, recording)

    # -- finished recordings ------------------------------------------------------------------------

    def _finished_in_thread(self, rec: Recording) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._finished, public(rec.manifest))

    def _finished(self, manifest: Manifest) -> None:
        self.live.discard(str(manifest["id"]))
        if self.on_ready is None:
            return
        try:
            self.on_ready(manifest)
        except Exception:
            logger.exception("the recording.ready hook failed")

    # -- retention ------------------------------------------------------------------------------------

    def _retention_days(self, tenant: str, manifest: Manifest) -> float:
        now = self.retention_of(tenant) if self.retention_of is not None else None
        return float(now if now is not None else manifest.get("retention_days") or self.settings.default_retention_days)

    async def sweep(self) -> int:
        """Delete what is past retention now (on a worker thread); the number deleted."""
        live = set(self.live)  # taken here: the set changes on the loop only
        deleted = await asyncio.to_thread(self.store.sweep, self._retention_days, live=lambda: live, now=self._clock())
        for tenant, rid in deleted:
            logger.info("recording %s of tenant %s deleted: past its retention", rid, tenant)
        if deleted:
            metrics.RECORDINGS_DELETED.labels("retention").inc(len(deleted))
        return len(deleted)

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:  # a sweep that failed is tried again at the next interval
                logger.exception("the recordings sweep failed")
            await asyncio.sleep(self.settings.sweep_interval_s)
