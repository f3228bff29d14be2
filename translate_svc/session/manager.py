"""What all streams of one server share: admission, fair share, drain, and opening their sessions.

``SessionManager`` admits streams and calls through its ``Gate`` (``admission.py``: the node's
limits and each tenant's caps, before a byte is read; streams are refused while draining),
opens their sessions (``open_stream``; ``open_clip``: the same ``StreamSession`` as a stream's;
``open_job``: a background job's),
splits the engine's queue fairly between live sessions, tells every live stream when the server
drains, and holds what every call reads: the model's card, the limits, the unary calls' CPU
pool (clips decoded there cannot starve live streams) and the ear's (``ear.py``: noise suppression
and speaker embeddings, with their caps) and the pools of work a caller sizes (``work.py``). It
knows no call kind's driver: each driver (``calls/``) checks its own requests (``task/``) and calls
it.
Event loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from translate_svc.audio.codec import check_stream_format
from translate_svc.cluster.store import ClusterStore
from translate_svc.engine.client import EngineClient
from translate_svc.errors import EngineFailed, NotReady
from translate_svc.glossaries.book import NO_GLOSSARIES, GlossaryBook
from translate_svc.marking.credentials import Signer
from translate_svc.sandbox.pool import Sandbox, SandboxLimits
from translate_svc.session.admission import Admission, Gate, Holding
from translate_svc.session.events import Draining, Resume
from translate_svc.session.rooms.config import RoomConfig
from translate_svc.session.rooms.registry import RoomRegistry
from translate_svc.session.stream import ear as ears
from translate_svc.session.stream.hooks import NO_HOOKS, StreamHooks
from translate_svc.session.stream.session import StreamSession
from translate_svc.session.task import change, checks
from translate_svc.session.tenants.budget import QuotaSpent
from translate_svc.session.tenants.counters import Counters, Held, LocalCounters
from translate_svc.session.tenants.recording import Recorder, Recorders, RecordMode
from translate_svc.session.tenants.tenant import DEFAULT_TENANT, Tenant
from translate_svc.session.work import SessionWork, WorkPools
from translate_svc.settings import LimitsSettings
from translate_svc.types import AudioFormat, ModelCard, TranslationTask
from translate_svc.vad.segmenter import SegmenterConfig
from translate_svc.vad.snapshot import VadSnapshot
from translate_svc.vad.worker import VadWorker
from translate_svc.webhooks.events import NO_EVENTS, EventSink


class SessionManager:
    """Shared state of all sessions. Create one per server; event loop only."""

    def __init__(
        self,
        engine: EngineClient,
        vad: VadWorker,
        vad_defaults: SegmenterConfig,
        limits: LimitsSettings,
        *,
        counters: Counters | None = None,
        rooms: RoomConfig | None = None,
        store: ClusterStore | None = None,
        recorders: Recorders | None = None,
    ) -> None:
        """``store``: what crosses streams, shared with the node's other workers or other pods (rooms:
        ``rooms/link.py``); None: nothing is shared (this process's rooms only). ``recorders``: opens
        the recording of a session whose tenant records (``recording.py``; None: nothing is kept)."""
        self.recorders = recorders
        self.engine = engine
        self.vad = vad
        self.vad_defaults = vad_defaults
        self.limits = limits
        #: streams open now in this process (the node's count is in ``counters``)
        self.open_streams = 0
        #: the node's limits and the tenants' caps: this process's counts, or leases in the cluster
        #: store (``tenants/leases.py``: the node's caps node-wide, the tenants' cluster-wide)
        self.counters: Counters = counters if counters is not None else LocalCounters()
        #: Translate clips are decoded and resampled here, never on the threads live streams use
        self._decode_pool = ThreadPoolExecutor(limits.translate_decode_threads, thread_name_prefix="clip-decode")
        #: noise suppression's and speaker embeddings' threads, and the live streams that use them
        #: (``ear.py``: never the event loop; security finding J1)
        self.ear = ears.EarPools(limits)
        #: who may start what: the counts each kind of call takes (``admission.py``)
        self.gate = Gate(self.counters, limits, self.ear)
        #: the pools of work a caller sizes (``work.py``): live results encoded, live streams'
        #: large messages decoded, jobs' parts written, stored files read; never the loop's default
        #: executor, each shared fairly between tenants
        self.work = WorkPools(limits)
        #: the operator's content credentials (``credentials.cert_file``, ``key_file``): the files
        #: the service makes (a job's dubbed track and video, MCP's speech) are signed with them;
        #: None: they carry no C2PA manifest
        self.content_signer: Signer | None = None
        #: the CAs under which a detected file's content credentials are ``Trusted`` (PEM;
        #: ``credentials.trust_anchors_file``, read at start); None: none is trusted here
        self.trust_anchors_pem: str | None = None
        #: the processes that decode clips sent for detection and search them for the speech
        #: watermark (``calls/detect.py``): torch is loaded there, never here
        self.detector = Sandbox(
            SandboxLimits(
                limits.detect_processes,
                limits.detect_processes_per_tenant,
                limits.detect_memory_mb,
                # below live work (whose threads run at 0), but less far below than the uploads' decoders
                # (10): a caller waits on this one
                niceness=5,
                wait_s=10.0,
                what="detection processes (searching clips for the speech watermark)",
                settings=("limits.detect_processes", "limits.detect_processes_per_tenant", "limits.detect_memory_mb"),
            )
        )
        #: sessions alive now, streams and Translate clips (their fair share of the engine queue)
        self.sessions = 0
        #: admitted streams (a drain tells each of them)
        self.live: set[StreamSession] = set()
        #: set by ``drain``: new streams are refused, live ones end at the deadline
        self.draining: Draining | None = None
        #: while draining: until when (event-loop time) an ended stream may wait for its client to
        #: stop sending before its status is sent (the server's grace period)
        self.drain_hold_until: float | None = None
        self._no_live = asyncio.Event()  # set while no stream is admitted
        self._no_live.set()
        #: set, and replaced, each time a live stream stops speaking or closes (``wait_live_quiet``)
        self._went_quiet = asyncio.Event()
        #: where the sessions' events go (``lifecycle.py``; webhooks and usage records: ``frontend.py``)
        self.events: EventSink = NO_EVENTS
        #: the tenants' stored glossaries (``glossaries/``; set by ``app.py``): none kept by default
        self.glossaries = GlossaryBook(None, NO_GLOSSARIES, lambda: self.card.text_codes)
        #: rooms of this process: their speakers (streams) and listeners (``rooms/registry.py``)
        self.store = store
        self.rooms = RoomRegistry(
            rooms or RoomConfig(max_languages=limits.max_target_languages),
            self.counters,
            self._card,
            store=self.store,
        )

    @property
    def decode_pool(self) -> ThreadPoolExecutor:
        """The unary calls' CPU pool (clip decoding, a text call's speech resampling and encoding):
        never the threads live streams use."""
        return self._decode_pool

    def close(self) -> None:
        """The server stopped: no clip is decoded any more, nor any ear's work done."""
        self._decode_pool.shutdown(wait=False, cancel_futures=True)
        self.ear.close()
        self.work.close()
        self.detector.stop_calls()

    async def wait_no_live(self) -> None:
        """Until every admitted stream has closed (a drain waits for it)."""
        await self._no_live.wait()

    def live_speech(self) -> bool:
        """Whether a live stream of this process is speaking: holding speech or waiting for a
        segment's result (``StreamSession.speaking``). Clips and jobs are no live streams; another
        worker's (``serve --workers N``) or pod's streams are not seen. Cheap: one look per stream."""
        return any(s.speaking for s in self.live)

    async def wait_live_quiet(self, timeout_s: float) -> bool:
        """Until no live stream is speaking (True), or ``timeout_s`` has passed (False): a
        background job feeds in the live speech's pauses. Woken when a stream stops speaking or
        closes, not by polling."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while True:
            went = self._went_quiet  # taken before the look: a change after it sets this one
            if not self.live_speech():
                return True
            left = end - loop.time()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(went.wait(), left)

    def _live_went_quiet(self) -> None:
        went, self._went_quiet = self._went_quiet, asyncio.Event()
        went.set()

    def fair_share(self) -> int:
        """Segments one stream may have in the engine and unread (flow control): at most
        ``limits.max_unread_results``, and no more than its share of the engine's queue, which the
        engine divides between the sessions open on the whole node (``engine/shares.py``): the
        sessions together cannot fill it, and a real-time stream's segment is never refused
        because another session, on this worker or another, sent faster than real time."""
        return max(1, min(self.limits.max_unread_results, self.engine.stats().share))

    def clip_share(self) -> int:
        """The same for a Translate clip, whose results are taken as they come: at most
        ``limits.max_clip_segments_queued``, within the session's share of the queue."""
        return max(1, min(self.limits.max_clip_segments_queued, self.engine.stats().share))

    def _card(self) -> ModelCard:
        return self.engine.card

    @property
    def card(self) -> ModelCard:
        """The loaded model's card; raises NotReady while it loads."""
        return self.engine.card

    def drain(self, seconds: float, *, grace_s: float | None = None) -> Draining:
        """The server is shutting down: refuse new streams; tell every live stream that it is
        translated for ``seconds`` more and then ends with "resume elsewhere". An ended stream
        waits up to ``grace_s`` (from now) for its client to stop sending."""
        if self.draining is None:
            remaining_ms = round(seconds * 1000)
            self.draining = Draining(round(time.time() * 1000) + remaining_ms, remaining_ms)
            now = asyncio.get_running_loop().time()
            deadline = now + seconds
            self.drain_hold_until = now + max(seconds, grace_s if grace_s is not None else seconds)
            for session in list(self.live):
                session.begin_drain(self.draining, deadline)
            self.rooms.drain(self.draining, seconds)
        return self.draining

    def fail_all(self, error: EngineFailed) -> None:
        """The engine is gone: end every live stream with ``error`` (UNAVAILABLE). A stream's open
        speech is closed into a segment, which comes back failed with its span like those waiting
        for the model, then ``StreamEnd{ENGINE_FAILED}``; the client resumes on another server. A
        clip (no driver) fails at once: the client retries it whole."""
        for session in list(self.live):
            session.stop(error)

    async def open_stream(
        self,
        fmt: AudioFormat,
        task: TranslationTask,
        vad: SegmenterConfig,
        *,
        interim_interval_ms: int = 0,
        resume: Resume | None = None,
        tenant: Tenant = DEFAULT_TENANT,
        admission: Admission | None = None,
        hooks: StreamHooks = NO_HOOKS,
        channel: int | None = None,
        turn_events: bool = False,
    ) -> StreamSession:
        """A new stream of ``tenant``; ``StreamSession.close`` must be called when it ends.
        ``channel``: raw PCM's one channel it hears (0-based; None: the channels mixed).
        ``turn_events``: its door renders eager ends of turn (``StreamConfig.turn_events``).
        ``admission``: its slots, taken when its call or socket opened (``admit_stream``); the
        session owns them from here on (released when it closes, or here if it cannot open).
        None: taken now. ``hooks``: its driver's callbacks (a drain, a stop, its output)."""
        ear_held: Held | None = None
        try:
            if self.draining is not None:
                raise NotReady("this server is shutting down and takes no new streams: connect to another server")
            check_stream_format(fmt)
            if resume is not None:
                checks.check_resume(resume, self.limits)
            checks.check_captions(interim_interval_ms, task, self.limits)
            admission = admission or await self.admit_stream(tenant)
            task = change.for_tenant(task, tenant)
            ear_held = await self.gate.ear_for(tenant, task)
            session = self._new_session(
                fmt,
                task,
                vad,
                SessionWork.live(self.work, tenant.name),
                interim_interval_ms=interim_interval_ms,
                resume=resume,
                hooks=hooks,
                recorder=self._recorder(tenant, fmt, task),
                channel=channel,
                turn_events=turn_events,
            )
        except BaseException:
            if admission is not None:
                admission.release()
            if ear_held is not None:
                self.gate.ear_given(ear_held)
            raise
        session.held, session.ear_held = admission.take(), ear_held
        self.open_streams += 1
        self.live.add(session)
        self._no_live.clear()
        session.on_quiet = self._live_went_quiet
        return session

    async def admit_stream(self, tenant: Tenant = DEFAULT_TENANT) -> Admission:
        """A stream's slots (``Gate.stream``), taken when its call or socket opens; UNAVAILABLE while
        the server drains."""
        if self.draining is not None:
            raise NotReady("this server is shutting down and takes no new streams: connect to another server")
        return await self.gate.stream(tenant)

    def admit_clip(self, tenant: Tenant = DEFAULT_TENANT) -> Holding:
        """One Translate call in the block (``Gate.clip``)."""
        return self.gate.clip(tenant)

    def receiving_clip(self, tenant: Tenant = DEFAULT_TENANT) -> Holding:
        """A Translate call receiving its clip in the block (``Gate.clip_read``)."""
        return self.gate.clip_read(tenant)

    def holding_request(self, tenant: Tenant = DEFAULT_TENANT) -> Holding:
        """An HTTP request held past its head in the block (``Gate.held_request``)."""
        return self.gate.held_request(tenant)

    def admit_job(self, tenant: Tenant = DEFAULT_TENANT) -> Holding:
        """A background job running in the block (``Gate.job``)."""
        return self.gate.job(tenant)

    def admit_unary(self, tenant: Tenant = DEFAULT_TENANT, token: bytes | None = None) -> Holding:
        """One unary call of ``tenant`` and ``token`` in the block (``Gate.unary``)."""
        return self.gate.unary(tenant, token)

    def charge_audio(self, tenant: Tenant, seconds: float) -> QuotaSpent | None:
        """Draw ``seconds`` from the tenant's audio budget (``Gate.charge_audio``)."""
        return self.gate.charge_audio(tenant, seconds)

    def open_clip(
        self,
        fmt: AudioFormat,
        task: TranslationTask,
        vad: SegmenterConfig,
        tenant: Tenant = DEFAULT_TENANT,
        *,
        lead_in_ms: int = 0,
    ) -> StreamSession:
        """A session for one admitted clip (``admit_clip``; ``ClipDriver.translate`` feeds it its
        decoded samples at once): a stream's pipeline, its queue strict and bounded by
        ``clip_share``, its CPU work on the unary calls' pool. Not a live stream: a drain lets it
        finish. ``StreamSession.close`` must be called when it ends. ``lead_in_ms``: its first ms
        were translated already (a resumed job's), only listened to, as a resumed stream's lead-in
        (``Resume.lead_in_ms``, at most ``MAX_LEAD_IN_MS``)."""
        task = change.for_tenant(task, tenant)
        resume = None
        if lead_in_ms:
            resume = Resume(uuid.uuid4().hex, 0, 0, lead_in_ms)
            checks.check_resume(resume, self.limits)
        return self._new_session(
            fmt,
            task,
            vad,
            SessionWork.on(self._decode_pool),
            strict_queue=True,
            resume=resume,
            share=self.clip_share,
            recorder=self._recorder(tenant, fmt, task),
        )

    async def open_job(
        self,
        fmt: AudioFormat,
        task: TranslationTask,
        vad: SegmenterConfig,
        tenant: Tenant,
        *,
        lead_in_ms: int = 0,
        vad_start: VadSnapshot | None = None,
    ) -> StreamSession:
        """A background job's session (``jobs/translation.py``; the job admitted: ``admit_job``):
        a clip's pipeline, its CPU work on the unary calls' pool, and, when it asks for noise
        suppression or speaker labels, one of the ear's streams as a live stream takes
        (``Gate.ear_for``: RESOURCE_EXHAUSTED when full, PERMISSION_DENIED where its tenant may have
        none), given back when it closes (a job honours the ear options). ``lead_in_ms``:
        its first ms were translated before it was resumed, only listened to; not bounded by the
        streams' ``MAX_LEAD_IN_MS`` (``jobs.resume_replay_s`` bounds it: a job's VAD hears again
        its audio before its resume point, so that it enters it as the uninterrupted run did);
        ``vad_start``: the VAD's state where it starts (a checkpoint's: ``jobs/checkpoints.py``).
        ``StreamSession.close`` must be called when it ends."""
        task = change.for_tenant(task, tenant)
        ear_held = await self.gate.ear_for(tenant, task)
        try:
            resume = Resume(uuid.uuid4().hex, 0, 0, lead_in_ms) if lead_in_ms else None
            session = self._new_session(
                fmt,
                task,
                vad,
                SessionWork.on(self._decode_pool),
                strict_queue=True,
                resume=resume,
                share=self.clip_share,
                recorder=self._recorder(tenant, fmt, task),
                vad_start=vad_start,
            )
        except BaseException:
            if ear_held is not None:
                self.gate.ear_given(ear_held)
            raise
        session.ear_held = ear_held
        return session

    def _recorder(
        self, tenant: Tenant, fmt: AudioFormat, task: TranslationTask
    ) -> Callable[[str, str], Recorder | None] | None:
        """How a new session of ``tenant`` opens its recording (by its id and its stream's resume
        token), when the tenant records."""
        recorders = self.recorders
        if recorders is None or tenant.record.mode is RecordMode.NONE:
            return None
        return lambda session_id, resume_token: recorders.open(
            tenant.name, tenant.record, session_id, fmt, task, resume_token=resume_token
        )

    def _new_session(
        self,
        fmt: AudioFormat,
        task: TranslationTask,
        vad: SegmenterConfig,
        work: SessionWork,
        *,
        strict_queue: bool = False,
        interim_interval_ms: int = 0,
        resume: Resume | None = None,
        share: Callable[[], int] | None = None,
        hooks: StreamHooks = NO_HOOKS,
        recorder: Callable[[str, str], Recorder | None] | None = None,
        vad_start: VadSnapshot | None = None,
        channel: int | None = None,
        turn_events: bool = False,
    ) -> StreamSession:
        session = StreamSession(
            self.engine,
            self.vad,
            self.limits,
            fmt,
            task,
            vad,
            fair_share=share or self.fair_share,
            strict_queue=strict_queue,
            interim_interval_ms=interim_interval_ms,
            resume=resume,
            ear=self.ear,
            work=work,
            hooks=hooks,
            on_close=self._closed,
            recorder=recorder,
            vad_start=vad_start,
            channel=channel,
            turn_events=turn_events,
        )
        self.sessions += 1
        return session

    def _closed(self, session: StreamSession) -> None:
        self.sessions -= 1
        if session.ear_held is not None:  # a live stream's or a job's (``open_job``)
            self.gate.ear_given(session.ear_held)
            session.ear_held = None
        if session in self.live:
            self.live.discard(session)
            self.open_streams -= 1
            if session.held is not None:
                self.counters.release(session.held)
                session.held = None
            if not self.live:
                self._no_live.set()
            self._live_went_quiet()
