"""What all streams of one server share: admission, fair share, drain, and opening their sessions.

``SessionManager`` admits streams and unary calls (the node's ``max_streams`` and
``max_translate_calls``, each tenant's caps: ``tenants/``; streams are refused while draining;
unary calls per token and per tenant, and a tenant's clips being received, before a byte is read),
opens their sessions (``open_stream``; ``open_clip``: the same ``StreamSession`` as a stream's;
``open_job``: a background job's),
splits the engine's queue fairly between live sessions, tells every live stream when the server
drains, and holds what every call reads: the model's card, the limits, the unary calls' CPU
pool (clips decoded there cannot starve live streams) and the ear's (``ear.py``: noise suppression
and speaker embeddings, with their caps) and the pools of work a caller sizes (``work.py``). It
knows no call kind's driver: each driver
(``driver.py``, ``clip.py``, ``text.py``) checks its own requests (``task.py``) and calls it.
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
from translate_svc.errors import EngineFailed, NotReady, Overloaded
from translate_svc.glossaries.book import NO_GLOSSARIES, GlossaryBook
from translate_svc.session import ear as ears
from translate_svc.session import task as checks
from translate_svc.session.events import Draining, Resume
from translate_svc.session.recording import Recorder, Recorders, RecordMode
from translate_svc.session.rooms.config import RoomConfig
from translate_svc.session.rooms.registry import RoomRegistry
from translate_svc.session.stream import NO_HOOKS, StreamHooks, StreamSession
from translate_svc.session.tenants import budget as tenants_budget
from translate_svc.session.tenants.budget import QuotaSpent
from translate_svc.session.tenants.counters import UNCAPPED, Counters, Held, LocalCounters, refusal
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
        #: the same, when it is this process's own (its counts answer at once: no coroutine)
        self._local = self.counters if isinstance(self.counters, LocalCounters) else None
        #: Translate clips are decoded and resampled here, never on the threads live streams use
        self._decode_pool = ThreadPoolExecutor(limits.translate_decode_threads, thread_name_prefix="clip-decode")
        #: noise suppression's and speaker embeddings' threads, and the live streams that use them
        #: (``ear.py``: never the event loop; issue 87 J1)
        self.ear = ears.EarPools(limits)
        #: the pools of work a caller sizes (``work.py``): live results encoded, live streams'
        #: large messages decoded, jobs' parts written, stored files read; never the loop's default
        #: executor, each shared fairly between tenants
        self.work = WorkPools(limits)
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
        #: unary calls in progress in this process, by token digest (``admit_unary``)
        self._token_calls: dict[bytes, int] = {}

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
    ) -> StreamSession:
        """A new stream of ``tenant``; ``StreamSession.close`` must be called when it ends.
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
            task = tenant.task_for(task)
            ear_held = await self._admit_ear(tenant, task)
            session = self._new_session(
                fmt,
                task,
                vad,
                SessionWork.live(self.work, tenant.name),
                interim_interval_ms=interim_interval_ms,
                resume=resume,
                hooks=hooks,
                recorder=self._recorder(tenant, fmt, task),
            )
        except BaseException:
            if admission is not None:
                admission.release()
            if ear_held is not None:
                self._ear_given(ear_held)
            raise
        session.held, session.ear_held = admission.take(), ear_held
        self.open_streams += 1
        self.live.add(session)
        self._no_live.clear()
        session.on_quiet = self._live_went_quiet
        return session

    async def admit_stream(self, tenant: Tenant = DEFAULT_TENANT) -> Admission:
        """A stream's slots (the node's ``max_streams`` and the tenant's cap), taken when its call
        or socket opens, before its config is read: an unconfigured stream counts as much as a
        running one (docs/security.md). RESOURCE_EXHAUSTED (or the tenant's quota, or UNAVAILABLE
        while draining) when full. Release it unless it is handed to ``open_stream``."""
        if self.draining is not None:
            raise NotReady("this server is shutting down and takes no new streams: connect to another server")
        wants = [("streams", self.limits.max_streams), (f"{tenant.name}/streams", _cap(tenant.caps.streams))]
        local = self._local
        held = self._take_now(local, wants, tenant, True) if local else await self._take(wants, tenant, budget=True)
        return Admission(self.counters, held)

    async def _admit_ear(self, tenant: Tenant, task: TranslationTask) -> Held | None:
        """A live stream with noise suppression or speaker labels (``ear.py``): one of
        ``limits.max_ear_streams`` in this process (the ear's threads are its own) and of its
        tenant's ``ear_streams``; refused (PERMISSION_DENIED) where its tenant may have none, else
        RESOURCE_EXHAUSTED when full. None: the stream asks for neither."""
        if not ears.uses_ear(task.ear):
            return None
        cap = ears.ear_cap(tenant, self.limits)
        if cap == 0:
            raise ears.ear_refused(tenant)
        self.ear.take()
        try:
            return await self._take([(f"{tenant.name}/ear_streams", _cap(cap))], tenant)
        except BaseException as e:
            self.ear.give()
            if isinstance(e, Overloaded):
                e.reason = "ear_streams"  # the cap's name (the OpenAI door's error code)
            raise

    def _ear_given(self, held: Held) -> None:
        self.counters.release(held)
        self.ear.give()

    def admit_clip(self, tenant: Tenant = DEFAULT_TENANT) -> Holding:
        """One Translate call of ``tenant`` in the block (``async with``): counted against
        ``max_translate_calls`` and the tenant's caps before its message is read or decoded (else
        RESOURCE_EXHAUSTED)."""
        cap = tenant.caps.translate_calls
        wants = [("translate", self.limits.max_translate_calls), (f"{tenant.name}/translate", _cap(cap))]
        return Holding(self, tenant, wants, budget=True)

    def receiving_clip(self, tenant: Tenant = DEFAULT_TENANT) -> Holding:
        """An admitted Translate call of ``tenant`` receiving its clip in the block: at most
        ``limits.max_clip_reads_per_tenant`` of them at once on the node (else RESOURCE_EXHAUSTED),
        so a tenant that opens calls and never sends their clip cannot hold every one of
        ``max_translate_calls`` until ``clip_read_timeout_s``."""
        return Holding(self, tenant, [(f"{tenant.name}/clip_reads", self.limits.max_clip_reads_per_tenant)])

    def holding_request(self, tenant: Tenant = DEFAULT_TENANT) -> Holding:
        """An HTTP request of ``tenant`` that holds its connection past its head in the block (a
        long poll, an upload's part, a download; issue 87): at most
        ``limits.http_max_held_requests_per_tenant`` at once on the node (else RESOURCE_EXHAUSTED),
        so one tenant cannot fill the HTTP port's connections with them."""
        return Holding(self, tenant, [(f"{tenant.name}/held", self.limits.http_max_held_requests_per_tenant)])

    def admit_job(self, tenant: Tenant = DEFAULT_TENANT) -> Holding:
        """A background job of ``tenant`` running in the block (``jobs/``, issue 87): one of the
        tenant's ``translate_calls`` while it runs, and refused while its audio budget is spent
        (RESOURCE_EXHAUSTED), as a Translate call is; not the node's ``max_translate_calls``
        (``jobs.max_running`` bounds the jobs of a process)."""
        wants = [(f"{tenant.name}/translate", _cap(tenant.caps.translate_calls))]
        return Holding(self, tenant, wants, budget=True)

    def admit_unary(self, tenant: Tenant = DEFAULT_TENANT, token: bytes | None = None) -> Holding:
        """One unary call (ListLanguages, TranslateText, the Riva door's) of ``tenant`` and of
        ``token`` (its digest; None: a server without tokens) in the block, counted before its
        request is read: at most ``max_unary_calls_per_tenant`` (or the tenant's ``unary_calls``)
        on the node and ``max_unary_calls_per_token`` in this process (else RESOURCE_EXHAUSTED), so
        calls that never send their request cannot take every call slot of the process."""
        cap = tenant.caps.unary_calls
        wants = [(f"{tenant.name}/unary", cap if cap is not None else self.limits.max_unary_calls_per_tenant)]
        return Holding(self, tenant, wants, token=token)

    def _token_taken(self, token: bytes) -> None:
        most = self.limits.max_unary_calls_per_token
        calls = self._token_calls.get(token, 0)
        if calls >= most:
            raise Overloaded(
                f"this token has {most} unary calls in progress on this server process "
                "(limits.max_unary_calls_per_token): send each call's request at once, or retry shortly",
                retry_after_ms=1000,
            )
        self._token_calls[token] = calls + 1

    def _token_given(self, token: bytes) -> None:
        left = self._token_calls[token] - 1
        if left:
            self._token_calls[token] = left
        else:
            del self._token_calls[token]

    def charge_audio(self, tenant: Tenant, seconds: float) -> QuotaSpent | None:
        """Draw ``seconds`` of audio from the tenant's budget (a call in progress: never waits);
        QuotaSpent once it is spent."""
        return tenants_budget.charge(self.counters, tenant, seconds)

    async def _take(self, wants: list[tuple[str, int]], tenant: Tenant, *, budget: bool = False) -> Held:
        """``wants`` (RESOURCE_EXHAUSTED naming the full one); ``budget``: a tenant whose audio budget
        is spent is refused too."""
        if self._local is not None:
            return self._take_now(self._local, wants, tenant, budget)
        if budget:
            await tenants_budget.check(self.counters, tenant)
        got = await self.counters.acquire(wants)
        if isinstance(got, str):
            raise refusal(got, tenant, wants)
        return got

    @staticmethod
    def _take_now(local: LocalCounters, wants: list[tuple[str, int]], tenant: Tenant, budget: bool) -> Held:
        """``_take`` from this process's own counts: they answer at once, so no coroutine waits
        between (the single-process path costs what it did before issue 59)."""
        if budget:
            tenants_budget.check_now(local, tenant)
        got = local.take(wants)
        if isinstance(got, str):
            raise refusal(got, tenant, wants)
        return got

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
        task = tenant.task_for(task)
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
        (``_admit_ear``: RESOURCE_EXHAUSTED when full, PERMISSION_DENIED where its tenant may have
        none), given back when it closes (issue 91: a job honours the ear options). ``lead_in_ms``:
        its first ms were translated before it was resumed, only listened to; not bounded by the
        streams' ``MAX_LEAD_IN_MS`` (``jobs.resume_replay_s`` bounds it: a job's VAD hears again
        its audio before its resume point, so that it enters it as the uninterrupted run did);
        ``vad_start``: the VAD's state where it starts (a checkpoint's: ``jobs/checkpoints.py``).
        ``StreamSession.close`` must be called when it ends."""
        task = tenant.task_for(task)
        ear_held = await self._admit_ear(tenant, task)
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
                self._ear_given(ear_held)
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
        )
        self.sessions += 1
        return session

    def _closed(self, session: StreamSession) -> None:
        self.sessions -= 1
        if session.ear_held is not None:  # a live stream's or a job's (``open_job``)
            self._ear_given(session.ear_held)
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


class Admission:
    """Slots taken for one stream (``SessionManager.admit_stream``): released once, by whoever holds
    it last (the door, the driver, then the session)."""

    def __init__(self, counters: Counters, held: Held) -> None:
        self._counters = counters
        self._held: Held | None = held

    @property
    def held(self) -> bool:
        return self._held is not None

    def take(self) -> Held:
        """The counters' names, for a session that releases them when it closes (once)."""
        if self._held is None:
            raise RuntimeError("this admission was released or handed on already")
        held, self._held = self._held, None
        return held

    def release(self) -> None:
        """Give the slots back (idempotent)."""
        if self._held is not None:
            held, self._held = self._held, None
            self._counters.release(held)


class Holding:
    """One call's counts for the block of an ``async with`` (``SessionManager.admit_clip``,
    ``receiving_clip``, ``admit_unary``): taken as it is entered, given back as it is left."""

    __slots__ = ("_budget", "_held", "_m", "_tenant", "_token", "_wants")

    def __init__(
        self,
        manager: SessionManager,
        tenant: Tenant,
        wants: list[tuple[str, int]],
        *,
        token: bytes | None = None,
        budget: bool = False,
    ) -> None:
        self._m = manager
        self._tenant = tenant
        self._wants = wants
        self._token = token
        self._budget = budget
        self._held: Held | None = None

    async def __aenter__(self) -> None:
        if self._token is not None:
            self._m._token_taken(self._token)
        try:
            m, local = self._m, self._m._local
            self._held = (
                m._take_now(local, self._wants, self._tenant, self._budget)
                if local is not None
                else await m._take(self._wants, self._tenant, budget=self._budget)
            )
        except BaseException:
            if self._token is not None:
                self._m._token_given(self._token)
            raise

    async def __aexit__(self, *exc: object) -> None:
        if self._held is not None:
            self._m.counters.release(self._held)
            self._held = None
        if self._token is not None:
            self._m._token_given(self._token)


def _cap(cap: int | None) -> int:
    return cap if cap is not None else UNCAPPED
