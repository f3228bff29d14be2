"""The front end of one server process: the VAD worker and the sessions, around an ``EngineClient``.

``transport/`` serves an ``Application``. ``app.build`` makes one around the in-process engine (one
process does everything); a front-end worker (``serving/worker.py``) makes one around a
``RemoteEngine`` that reaches the engine process. This module never loads torch or the model, not
even indirectly (import-linter checks it), so a worker process never does either.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from threadpoolctl import threadpool_limits

from translate_svc.audio.denoise import PYRNNOISE
from translate_svc.audio.denoise import installed as denoise_installed
from translate_svc.cluster.store import ClusterStore
from translate_svc.cluster.watch import StoreWatch, watch_store
from translate_svc.engine.client import EngineClient
from translate_svc.errors import EngineFailed
from translate_svc.glossaries.book import GlossaryBook
from translate_svc.glossaries.model import GlossaryLimits
from translate_svc.glossaries.store import GlossaryStore
from translate_svc.jobs.credentials import JobCredentials
from translate_svc.jobs.keeper import JobKeeper, open_job_store
from translate_svc.jobs.worker import JobWorker
from translate_svc.marking.credentials import CredentialsError, Signer
from translate_svc.observability import metrics
from translate_svc.recordings.service import Manifest, Recordings
from translate_svc.session import SessionManager
from translate_svc.session.rooms.config import room_config
from translate_svc.session.tenants.counters import Counters
from translate_svc.settings import Settings
from translate_svc.speakers.encoder import RESEMBLYZER, SpeakerEncoder
from translate_svc.speakers.encoder import installed as speakers_installed
from translate_svc.vad.silero import SileroVad
from translate_svc.vad.worker import VadWorker
from translate_svc.webhooks.events import recording_ready
from translate_svc.webhooks.outbox import Outbox

logger = logging.getLogger(__name__)

#: how a stream ends when the in-process model worker dies (a worker's text names the engine process)
ENGINE_FAILED = "the model worker of this server failed: resume the stream on another server (the SDK does)"


@dataclass
class Application:
    """Engine client, VAD worker and sessions of one server process. Event loop only."""

    settings: Settings
    engine: EngineClient
    vad: VadWorker
    sessions: SessionManager
    #: what crosses streams (``cluster/store.py``: rooms, two-party calls' legs): this process's
    #: memory, the node's hub, or Redis
    cluster: ClusterStore
    #: load and warm the model (in-process), or connect to the engine process (a worker)
    start_engine: Callable[[bool], Awaitable[None]]
    #: stop the engine (in-process), or close the connection to it (a worker)
    stop_engine: Callable[[], Awaitable[None]]
    #: called (on the loop) if the engine dies; transport/ turns health NOT_SERVING
    failure_listeners: list[Callable[[BaseException], None]] = field(default_factory=list)
    #: the sessions' recordings (``recordings.dir`` set), their writer and sweeper; None: none
    recordings: Recordings | None = None
    #: the sessions' events on disk and their webhooks (None: no ``webhooks.data_dir``)
    outbox: Outbox | None = None
    #: the tenants' stored glossaries (None: ``glossaries.enabled`` off)
    glossaries: GlossaryStore | None = None
    #: background jobs (``jobs/``; None: ``jobs.dir`` unset)
    jobs: JobWorker | None = None
    #: the cluster store's state on /metrics and in the log (``cluster/watch.py``)
    store_watch: StoreWatch | None = None

    async def start(self, *, warmup: bool = True) -> None:
        """The cluster store first (an unreachable Redis or hub fails the start before the model
        loads: ``StoreUnavailable``, naming it), then the engine."""
        await self.cluster.start()
        await self.sessions.counters.start()
        if self.recordings is not None:
            await self.recordings.start()
        if self.outbox is not None:
            await self.outbox.start()
        if self.glossaries is not None:
            await self.glossaries.start()
        await self.start_engine(warmup)
        if self.jobs is not None:  # after the engine: a job resumed at once needs the model
            await self.jobs.start()

    async def stop(self) -> None:
        """After the transport stopped taking calls: fail what is left, stop the threads, and give
        back what this process holds in the cluster store. A job running stays so on disk: the
        next start resumes it."""
        if self.jobs is not None:
            await self.jobs.stop()
        await self.stop_engine()
        self.vad.close()
        self.sessions.close()
        await self.sessions.detector.close()  # its processes, ended at once by close() above
        await self.sessions.rooms.close()  # before the store and the webhooks' outbox close
        if self.recordings is not None:
            await self.recordings.stop()
        await self.sessions.counters.close()
        if self.store_watch is not None:
            self.store_watch.closing()  # the store's own close is no loss
        await self.cluster.close()
        if self.outbox is not None:
            await self.outbox.close()
        if self.glossaries is not None:
            await self.glossaries.close()
        await self.sessions.glossaries.close()  # its threads and parse processes


def build_frontend(
    settings: Settings,
    engine: EngineClient,
    start_engine: Callable[[bool], Awaitable[None]],
    stop_engine: Callable[[], Awaitable[None]],
    listeners: list[Callable[[BaseException], None]],
    *,
    cluster: ClusterStore,
    counters: Counters | None = None,
    engine_gone: str = ENGINE_FAILED,
    on_recording_ready: Callable[[Manifest], None] | None = None,
    glossaries: GlossaryStore | None = None,
    jobs_store: JobKeeper | None = None,
) -> Application:
    """Sessions and the VAD worker around ``engine``, over the cluster store ``cluster`` (started
    and closed with the application); ``counters`` hold the node's limits and
    tenants' caps (default: this process's own counts). If the engine dies, every live stream
    ends with ``engine_gone`` (UNAVAILABLE), its open speech accounted for. ``on_recording_ready``:
    told of each finished recording (``recordings/service.py``; the ``recording.ready`` event).
    ``glossaries``: where the tenants' glossaries are kept (``glossaries/choose.py``; None: none).
    ``jobs_store``: where jobs are kept (default: as the settings say, ``jobs/keeper.py``)."""
    # process-wide, once: numpy's BLAS pool (torch's own threads are the runner's, set at load)
    threadpool_limits(limits=settings.blas_threads, user_api="blas")
    vad = VadWorker(SileroVad(), gather_ms=settings.server.vad_gather_ms, on_call=metrics.observe_vad_call)
    # loaded at start, not by the first stream that asks (on the loop); a missing pyrnnoise turns noise
    # suppression off, a missing Resemblyzer (installed apart, without its dependencies) speaker labels:
    # each refused per request, saying why
    if not denoise_installed():
        logger.warning("noise suppression is off: RNNoise is not installed (pip install '%s')", PYRNNOISE)
    if speakers_installed():
        SpeakerEncoder.shared()
    else:
        logger.warning("speaker labels are off: Resemblyzer is not installed (pip install --no-deps %s)", RESEMBLYZER)
    rooms = room_config(settings.rooms, settings.limits.max_target_languages, settings.cluster.on_redis_loss)
    store_watch = watch_store(cluster, settings.cluster.on_redis_loss)  # /metrics and the log
    recordings = None
    if settings.recordings.dir is not None:
        recordings = Recordings(settings.recordings, on_ready=on_recording_ready)
    sessions = SessionManager(
        engine, vad, settings.vad, settings.limits, counters=counters, rooms=rooms, store=cluster, recorders=recordings
    )
    listeners.append(lambda exc: sessions.fail_all(EngineFailed(engine_gone)))
    sessions.content_signer = content_signer(settings)
    if settings.credentials.trust_anchors_file is not None:
        try:
            sessions.trust_anchors_pem = settings.credentials.trust_anchors_file.read_text()
        except OSError as e:
            raise CredentialsError(f"credentials.trust_anchors_file cannot be read: {e}") from None
    outbox = None
    if settings.webhooks.data_dir is not None:
        outbox = Outbox(settings.webhooks, cluster=settings.cluster)
        sessions.events = sessions.rooms.events = outbox
        if recordings is not None and recordings.on_ready is None:
            recordings.on_ready = _recording_event(sessions)
    if glossaries is not None:
        sessions.glossaries = GlossaryBook(
            glossaries,
            glossary_limits(settings),
            lambda: sessions.card.text_codes,
            threads=settings.glossaries.threads,
            parse_processes=settings.glossaries.parse_processes,
            parse_memory_mb=settings.glossaries.parse_memory_mb,
            cache_entries=settings.glossaries.cache_entries,
        )
    jobs = None
    if jobs_store is None:  # ``jobs/keeper.py``: the node's SQLite, or Redis (every pod); None: no jobs.dir
        jobs_store = open_job_store(settings)
    if jobs_store is not None:
        signer = sessions.content_signer
        credentials = None
        if signer is not None:
            credentials = JobCredentials(signer, lambda: sessions.card.info.name, jobs_store.digest_of)
        jobs = JobWorker(jobs_store, sessions, settings.jobs, media=settings.media, credentials=credentials)
    return Application(
        settings,
        engine,
        vad,
        sessions,
        cluster,
        start_engine,
        stop_engine,
        listeners,
        recordings,
        outbox,
        glossaries,
        jobs,
        store_watch,
    )


def content_signer(settings: Settings) -> Signer | None:
    """The operator's content credentials (``credentials.cert_file``, ``key_file``), checked by
    signing a test file now: a key that cannot sign stops the start (``CredentialsError``). None:
    the files the service makes carry no C2PA manifest (logged)."""
    c = settings.credentials
    if c.cert_file is None or c.key_file is None:
        logger.warning("content credentials are off: files carry no C2PA manifest (credentials.cert_file, key_file)")
        return None
    try:
        chain, key = c.cert_file.read_text(), c.key_file.read_text()
    except OSError as e:
        raise CredentialsError(f"the content credentials cannot be read: {e}") from None
    signer = Signer(chain, key, alg=c.alg, tsa_url=c.tsa_url, generator="translate_svc")
    logger.info("content credentials: files signed with %s (%s)", c.cert_file, c.alg)
    return signer


def glossary_limits(settings: Settings) -> GlossaryLimits:
    g = settings.glossaries
    return GlossaryLimits(
        max_entries=g.max_entries,
        max_glossaries=g.max_glossaries,
        max_per_request=g.max_per_request,
        max_import_bytes=g.max_import_bytes,
        max_term_chars=settings.limits.max_term_chars,
        max_entries_per_request=g.max_entries_per_request,
        max_tenant_bytes=g.max_tenant_bytes,
        max_total_bytes=g.max_total_bytes,
        import_timeout_s=g.import_timeout_s,
        max_imports=g.max_imports,
        max_imports_per_tenant=g.max_imports_per_tenant,
    )


def _recording_event(sessions: SessionManager) -> Callable[[Manifest], None]:
    """A finished recording's ``recording.ready`` event, from its manifest (without its key)."""

    def ready(manifest: Manifest) -> None:
        files = {f["name"]: {"bytes": f.get("bytes"), "sha256": f.get("sha256")} for f in manifest.get("files", [])}
        recording_ready(
            sessions.events,
            tenant=str(manifest["tenant"]),
            session_id=str(manifest["session_id"]),
            request_id="",  # a manifest keeps no request id: session_id joins it to session.ended
            recording_id=str(manifest["id"]),
            complete=bool(manifest["complete"]),
            files=files,
            reason=str(manifest.get("incomplete_reason") or ""),
        )

    return ready
