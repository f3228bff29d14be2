"""The stream protocol, once for every door: typed requests in, typed events out.

``StreamDriver.run`` owns the rules a door must not reimplement: the config comes first (resume
included), audio and FLUSH follow, a sender that stops mid-speech has that speech closed after
``stall_close_ms`` (as at a pause), a silent client is closed after ``idle_timeout`` (unless its
door sees it answer pings: a muted speaker, kept up to ``max_stream_seconds``), a drain's
deadline ends the stream with "resume elsewhere", and every end has its reason and its text.
When each of these is due is the pure ``StreamClock``'s to say (``clock.py``): the driver tells it
what happens, wakes when it says and acts on its verdict. What a stream that speaks into a room
does there (publish, retarget, output, leave) is its ``SpeakerSeat``'s (``rooms/seat.py``); the
session tells the driver of a drain, a stop and its output through the ``StreamHooks`` given at
its open.

Reading is never cancelled while the call lives: the timers (stall, idle, drain) act beside the
reader; after an end it goes on reading and dropping what the client still sends. A stream that ends with an
error (bad input, a limit, a drain) is held open until its client stops sending -- briefly after bad
input, until the end of the server's grace period after a drain -- so that the status reaches a
client that is mid-write intact (grpc/grpc#36066, docs/design.md pitfall 17: a cancelled read would end
the request stream, and the client's next write would fail as INTERNAL). Event loop only.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Callable

from translate_svc.errors import InvalidInput, LimitReached, ServiceError, ShuttingDown
from translate_svc.observability import access, metrics, tracing
from translate_svc.observability.access import CallInfo
from translate_svc.session.admission import Admission
from translate_svc.session.calls.channels import ChannelStreams, check_separable, open_channels
from translate_svc.session.calls.clock import StreamClock, Verdict, clock_config, ending
from translate_svc.session.calls.lifecycle import SessionRecord
from translate_svc.session.calls.renditions import paid_renditions
from translate_svc.session.events import (
    AudioIn,
    Flush,
    Gone,
    Invalid,
    StreamConfig,
    StreamEnded,
    StreamEvent,
    StreamRequest,
    StreamStarted,
    Update,
    Updated,
    request_name,
)
from translate_svc.session.manager import SessionManager
from translate_svc.session.rooms.checks import check_speaker
from translate_svc.session.rooms.seat import SpeakerSeat
from translate_svc.session.stream.hooks import StreamHooks
from translate_svc.session.stream.session import StreamSession
from translate_svc.session.task import change, checks
from translate_svc.session.task.change import TaskChange
from translate_svc.session.tenants.budget import QuotaSpent
from translate_svc.session.tenants.tenant import ALL_ROOMS, DEFAULT_TENANT, RoomRights, Tenant
from translate_svc.types import SegmentResult, TranslationTask

logger = logging.getLogger(__name__)

#: what a stream's driver drives: one session, or one per channel (``channels.py``)
Stream = StreamSession | ChannelStreams


#: a timer that fires this late (s) found the event loop itself behind: the server paused (a long
#: collection, a starved process) and what the client sent meanwhile may wait unread behind the
#: timer, so it is judged again ``RECHECK_S`` later, once a wait, after those messages are read
#: (a stall close judged at once would cut speech the client never stopped sending)
LATE_S = 0.2
RECHECK_S = 0.05


class _ClientGone(Exception):
    """The client went away before its config came (``Gone`` first)."""


def internal_error(exc: BaseException) -> ServiceError:
    """An unexpected exception as the client sees it (the details go to the log)."""
    logger.error("unexpected error in a stream", exc_info=exc)
    return ServiceError("internal error; the server log has the details")


class StreamDriver:
    """Drives one stream; create one per call."""

    def __init__(
        self,
        manager: SessionManager,
        *,
        error_drain_s: float = 2.0,
        tenant: Tenant = DEFAULT_TENANT,
        call: CallInfo | None = None,
        admission: Admission | None = None,
        peer_alive: Callable[[], bool] | None = None,
        rooms: RoomRights = ALL_ROOMS,
    ) -> None:
        self._m = manager
        #: the stream's place in the room its config names (empty: none), checked against the
        #: rooms its caller may publish into (``rooms``)
        self._seat = SpeakerSeat(manager.rooms, tenant, rooms)
        #: the door's word that its client still answers its transport's pings (a WebSocket's),
        #: None where it cannot tell (a silent client is then idle: ``StreamClock.due``)
        self._peer_alive = peer_alive
        self._clock = StreamClock(clock_config(manager.limits))
        #: the stream's slots, when its door took them before the driver ran (None: taken when it runs)
        self._admission = admission
        self._error_drain_s = error_drain_s
        self.tenant = tenant
        #: the door's view of the call, for the access line logged when the stream ends
        self.call = call
        self._segments: Counter[str] = Counter()  # results sent, by status
        self._charged_ms = 0  # the stream's audio drawn from the tenant's budget so far
        self._session: Stream | None = None
        self._open = False  # audio is still taken (not ended by half-close, a limit or an error)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0  # when the timer is due (the loop's clock)
        self._rechecked = False  # a late timer judged again, this wait
        self._ending: asyncio.Task[None] | None = None  # a timer's end of the stream
        self._stalled: asyncio.Task[None] | None = None  # the stall close, while it runs
        self._refused: LimitReached | None = None  # ended from outside before its config came
        self._gone = False  # the door said the client went away mid-stream (``Gone``)
        #: the stream's session.started / session.ended and its usage (``lifecycle.py``)
        self._record = SessionRecord(manager.events, tenant.name, call)

    async def run(self, requests: AsyncIterator[StreamRequest]) -> AsyncGenerator[StreamStarted | StreamEvent, None]:
        """The stream's events: StreamStarted, then speech events, results, captions and notices,
        then StreamEnded. Raises the ServiceError that ends the stream (the door sends its status)
        once the client stopped sending. Iterate it under ``contextlib.aclosing`` so that a
        cancelled call closes its session at once."""
        first: asyncio.Task[StreamRequest | None] | None = None
        try:
            # counted from the call's first byte, before its config is read (docs/security.md)
            admission = self._admission or await self._m.admit_stream(self.tenant)
            self._clock.called(asyncio.get_running_loop().time())
            try:
                first = asyncio.ensure_future(anext(requests, None))
                session = await self._start(first, admission)
            finally:
                admission.release()  # unless the session took it
        except ServiceError as e:
            metrics.tenant_call(self.tenant.name, "stream", e.code.value)
            self._log_call(None, e.code.value)
            self._record.end(e.code.value, e)  # no session: only a spent budget's quota.exceeded
            await _drop_rest(requests, self._error_drain_s, first)
            raise e from None
        except _ClientGone:
            metrics.tenant_call(self.tenant.name, "stream", "CANCELLED")
            self._log_call(None, "CANCELLED")
            return
        except BaseException:
            if first is not None and not first.done():
                first.cancel()
            raise
        reader = asyncio.create_task(self._read(requests, session), name=f"read-{session.session_id}")
        error: ServiceError | None = None
        code = "OK"
        ended: StreamEnded | None = None
        try:
            metrics.stream_started()  # counted here, for every door (before the client hears of it)
            self._record.start(session.session_id, session.task.source_language, session.task.target_languages)
            yield self._seat.started(_started(session, self._m))
            async for ev in session.events():
                ev = self._seat.own_view(ev)
                if isinstance(ev, SegmentResult):
                    self._record.account_result(ev)
                    tracing.segment_span(ev, session.task.target_languages)
                    self._segments["OK" if ev.error is None else ev.error.code] += 1
                elif isinstance(ev, StreamEnded):
                    metrics.stream_packets(
                        ev.packets_reordered, ev.packets_duplicate, ev.packets_late, ev.audio_concealed_ms
                    )
                    ended = ev
                yield ev
            await reader
        except ServiceError as e:
            error = e
        except GeneratorExit:
            if ended is None:
                code = "CANCELLED"
                logger.info("stream cancelled by the client", extra={"session_id": session.session_id})
            elif ended.limit is not None:  # the door stopped once the stream had ended: no cancel
                code = ended.limit.code.value
            raise
        except asyncio.CancelledError:
            code = "CANCELLED"
            logger.info("stream cancelled by the client", extra={"session_id": session.session_id})
            raise
        except Exception as e:
            error = internal_error(e)
        finally:
            self._seat.leave()
            # close first: a cancel landing in the await below must not skip it (leaked stream slot)
            session.close()
            metrics.stream_ended()
            self._charge(session, final=True)
            code = "CANCELLED" if self._gone else code if error is None else error.code.value
            metrics.tenant_call(self.tenant.name, "stream", code)
            self._log_call(session, code)
            cause = None if self._gone else error if error is not None else ended.limit if ended is not None else None
            if cause is None and code == "CANCELLED" and self._m.draining is not None:
                cause = ShuttingDown("the server stopped before the stream ended")  # cut at the grace's end
            self._record.end(code, cause)
            self._disarm()
            if error is None:
                await _stop(reader)
                if self._stalled is not None:
                    await _stop(self._stalled)
        if error is not None:
            try:  # the reader drops what still comes, until the client half-closes
                await asyncio.wait({reader}, timeout=0 if self._gone else self._patience(error))
            finally:
                await _stop(reader)
                for task in (self._stalled, self._ending):
                    if task is not None:
                        await _stop(task)
            if not self._gone:  # (a client that went away is told nothing)
                raise error

    def _log_call(self, session: Stream | None, code: str) -> None:
        if self.call is None:
            return
        config, audio_s = None, 0.0
        if session is not None:
            config = access.config_brief(session.fmt, session.task)
            audio_s = session.audio_received_ms / 1000
        access.log_call(
            self.call, code=code, tenant=self.tenant.name, config=config, audio_s=audio_s, segments=self._segments
        )

    def _patience(self, error: ServiceError) -> float:
        """How long an ended stream waits for its client to stop sending before its status goes."""
        until = self._m.drain_hold_until
        if isinstance(error, ShuttingDown) and until is not None:
            return max(self._error_drain_s, until - asyncio.get_running_loop().time())
        return self._error_drain_s

    async def _start(self, reading: asyncio.Task[StreamRequest | None], admission: Admission) -> Stream:
        """The config (the first message, within ``limits.config_timeout_ms`` of the call's start,
        else OUT_OF_RANGE: an unconfigured call holds a stream slot) -> the open session."""
        loop = asyncio.get_running_loop()
        while not reading.done():
            if self._clock.due(loop.time()) is Verdict.CONFIG_TIMEOUT:
                raise self._ended_by(Verdict.CONFIG_TIMEOUT)
            await asyncio.wait({reading}, timeout=self._clock.config_deadline - loop.time())
        first = reading.result()
        if self._refused is not None and first is not None:  # e.g. its token was revoked meanwhile
            raise self._refused
        if isinstance(first, Gone):
            raise _ClientGone()
        if first is None:
            raise InvalidInput("the stream ended before its first message: send a `config` message first")
        if isinstance(first, Invalid):
            raise first.error
        if not isinstance(first, StreamConfig):
            raise InvalidInput(
                f"the first message must be `config`, got `{request_name(first)}`: send the StreamingConfig first"
            )
        if first.separate_channels:
            check_separable(first.format, resume=first.resume, room=first.room is not None, speakers=first.ear.speakers)
        detect = list(first.detect) if first.detect is not None else None
        self._seat.admits(first.room)  # a room's speaker key opens only a stream into its room
        if first.room is not None:
            check_speaker(first)
        task = checks.resolve_task(
            self._m.card,
            self._m.limits,
            first.source_language,
            list(first.target_languages),
            first.output,
            detect,
            first.terms,
            first.simultaneous,
            first.ear,
            first.conversation,
            first.stated_language,
            first.parties,
        )
        stored = await self._m.glossaries.terms(
            self.tenant.name, first.glossaries, task.target_languages, task.source_language or ""
        )
        task = change.with_stored(task, stored)
        hooks = StreamHooks(on_drain=self._drained, on_stop=self.end, on_output=self._seat.output)
        if first.separate_channels:  # a session per channel, one stream's events (``channels.py``)
            parts = await open_channels(self._m, first, task, self.tenant, admission, hooks)
            self._session, self._open = parts, True
            self._clock.opened(loop.time())
            return parts
        session = await self._m.open_stream(
            first.format,
            task,
            first.vad,
            interim_interval_ms=first.interim_interval_ms,
            resume=first.resume,
            tenant=self.tenant,
            admission=admission,
            hooks=hooks,
            turn_events=first.turn_events,
        )
        if first.room is not None:

            def retarget(targets: tuple[str, ...], renditions: tuple[tuple[str, float], ...]) -> int:
                talk = session.task.conversation
                if talk is None:
                    what = TaskChange(targets, renditions=renditions)
                else:  # a conversation keeps its own languages; the room's are heard beside them
                    what = TaskChange(renditions=renditions, listened=_beside(targets, talk))
                return session.retarget(self._changed(session, what))

            try:  # its targets become its own plus the room's, changed as listeners come and go
                await self._seat.take(
                    first.room,
                    session_id=session.session_id,
                    stream_id=session.resume_token,
                    own=session.task.target_languages,
                    retarget=retarget,
                    render=paid_renditions(self._m, self.tenant, session).render,
                )
            except BaseException:
                session.close()
                raise
        self._session, self._open = session, True
        self._clock.opened(loop.time())
        return session

    # -- the request side ---------------------------------------------------------------------

    async def _read(self, requests: AsyncIterator[StreamRequest], session: Stream) -> None:
        """Feed audio and apply controls while the stream is open; after its end, read and drop what
        the client still sends until it half-closes. Half-close while open finishes the session."""
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            if self._open and self._clock.drain_passed(now):
                await self._finish(self._ended_by(Verdict.DRAIN))
                now = loop.time()
            self._clock.waits(now)
            self._rechecked = False
            if self._timer is None or self._timer_at > self._clock.earliest_wake(now):
                self._arm()  # else the timer armed comes first, whatever this wait's wake-up
            try:
                req = await anext(requests, None)
            finally:
                self._clock.took()
            if self._stalled is not None:
                await self._stalled  # a stall close under way ends before anything else goes in
            if req is None:
                break
            if isinstance(req, Gone):
                self._gone_mid_stream(session)
                break
            if not self._open:
                continue  # the stream has ended: dropped (the status says from where)
            timeline = session.timeline
            received_ms = timeline.audio_received_ms
            try:
                await self._apply(session, req)
                self._clock.carried((timeline.audio_received_ms - received_ms) / 1000)
            except (LimitReached, InvalidInput) as e:
                await self._finish(e)  # the open speech is translated first, then ``e`` ends the call
            except ServiceError as e:
                self._open = False
                session.fail(e)
            except Exception as e:  # a bug must end the stream, not leave the client waiting
                self._open = False
                session.fail(internal_error(e))
        if self._open:
            await self._finish(None)
        if self._ending is not None:
            await self._ending

    def _gone_mid_stream(self, session: Stream) -> None:
        """The client went away (``Gone``): as a cancelled call, its queued work is dropped and the
        stream ends ``CANCELLED`` at once (results for nobody are neither computed nor sent)."""
        if session.jobs.ended:
            return  # its end is queued already: the stream ends as it was going to
        self._gone = True
        logger.info("the client went away mid-stream", extra={"session_id": session.session_id})
        self._open = False
        self._disarm()
        session.fail(ServiceError("the client went away"))  # ``events`` raises it at once

    async def _apply(self, session: Stream, req: StreamRequest) -> None:
        if isinstance(req, AudioIn):
            if req.timestamp is None:
                await session.feed(req.data)
            else:
                await session.feed_packet(req.data, req.timestamp)
            spent = self._charge(session)
            if spent is not None:
                raise spent
        elif isinstance(req, Flush):
            await session.flush()
        elif isinstance(req, Update):
            # a bad update is answered, not fatal: the stream goes on as it was. Either answer is
            # an unread event until the client takes it: the next request waits for room
            talk = req.conversation
            own = talk if talk is not None else req.target_languages
            wanted = self._seat.targets(own)  # its own, and its room's
            try:
                what = TaskChange(
                    wanted if talk is None else None,
                    req.speaker_id,
                    req.speed,
                    conversation=talk,
                    stated_language=req.stated_language,
                    parties=req.parties,
                    listened=_beside(wanted, talk) if talk is not None and wanted is not None else None,
                )
                task = self._changed(session, what)
            except InvalidInput as e:
                await session.answer(Updated(self._seat.started(_started(session, self._m)), session.jobs.next_id, e))
                return
            first = session.retarget(task)
            self._seat.retargeted(own, task.target_languages, first)
            await session.answer(Updated(self._seat.started(_started(session, self._m)), first))
        elif isinstance(req, Invalid):
            raise req.error
        else:
            raise InvalidInput("`config` was sent twice: send it once, as the first message")

    def _changed(self, session: Stream, what: TaskChange) -> TranslationTask:
        """The stream's task with one change applied to the task it runs with now (``task/change.py``:
        what the change does not name is kept), the one way a running stream's task is rewritten:
        its client's Update (targets or a conversation's languages, voice, rate) keeps the rates its
        room's listeners chose, its room's retarget (targets, renditions) keeps what its client set.
        Both run on the event loop and apply the task at once (``StreamSession.retarget``), with no
        wait between: one writer at a time, each over the other's last change. Raises
        ``InvalidInput``."""
        return change.change(self._m.card, self._m.limits, session.task, what)

    def _charge(self, session: Stream, *, final: bool = False) -> QuotaSpent | None:
        """Draw the audio received since the last charge from the tenant's budget, a second or more
        at a time (``final``: what is left), and count it (each channel's, where the channels are
        heard apart); QuotaSpent once the budget is spent."""
        new_ms = session.heard_ms - self._charged_ms
        if new_ms <= 0 or (new_ms < 1000 and not final):
            return None
        self._charged_ms += new_ms
        self._record.account_audio(new_ms / 1000)
        return self._m.charge_audio(self.tenant, new_ms / 1000)

    async def _finish(self, limit: ServiceError | None) -> None:
        """End the stream's audio: its open speech is translated, then StreamEnded (and ``limit``)."""
        self._open = False
        self._disarm()
        await self._finish_session(limit)

    async def _finish_session(self, limit: ServiceError | None) -> None:
        assert self._session is not None
        stalled = self._stalled
        if stalled is not None and stalled is not asyncio.current_task():
            await asyncio.gather(stalled, return_exceptions=True)  # its segment comes first
        try:
            await self._session.finish(limit)
        except ServiceError as e:
            self._session.fail(e)
        except Exception as e:
            self._session.fail(internal_error(e))

    def end(self, limit: LimitReached) -> None:
        """End the stream from outside (its token was revoked, the engine died): as the idle timer
        does, its open speech is closed and every result sent, then ``limit`` ends the call. Before
        its config came, the config is refused with ``limit`` when it comes: nothing is admitted."""
        if self._session is None:
            self._refused = self._refused or limit
            return
        if not self._open:
            return
        self._open = False  # a message read from now on is dropped
        self._disarm()
        self._ending = asyncio.get_running_loop().create_task(self._finish_session(limit))

    # -- timers: stall, idle and drain, never cancelling a read ---------------------------------

    def _ended_by(self, verdict: Verdict) -> ServiceError:
        """The end the clock's ``verdict`` gives the stream, as its client is told it."""
        at = self._session.audio_received_ms if self._session is not None else 0
        return ending(verdict, self._m.limits, at)

    def _drained(self, deadline: float) -> None:
        """The session's drain hook: the stream ends at ``deadline``."""
        self._clock.drain(deadline)
        self._arm()

    def _arm(self) -> None:
        """(Re)start the timer for the waiting reader at the clock's next wake-up (the stall close
        while speech may be open, the idle limit or the drain's deadline, whichever comes first)."""
        session = self._session
        if not self._open or session is None:
            return
        when = self._clock.wake(holds_speech=session.may_hold_speech)
        if when is None:
            return  # the reader is busy with a message: the timer restarts when it waits again
        if self._timer is not None and self._timer_at <= when:
            # a timer due no later stays: each message moves the wake-up later, and a timer made
            # and cancelled per message only churned the loop's heap of timers; when it fires,
            # the clock says what is due then, and ``_on_timer`` arms the next one
            return
        self._disarm()
        self._timer_at = when
        self._timer = asyncio.get_running_loop().call_at(when, self._on_timer)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        """Act on what the clock says is due: close a stalled sender's speech, keep a muted client,
        or end the stream (idle, its longest muted life, a drain's deadline)."""
        self._timer = None
        session = self._session
        if not self._open or session is None:
            return
        loop = asyncio.get_running_loop()
        if loop.time() - self._timer_at > LATE_S and not self._rechecked:  # the server paused: read first
            self._rechecked = True
            self._timer_at = loop.time() + RECHECK_S
            self._timer = loop.call_at(self._timer_at, self._on_timer)
            return
        alive = self._peer_alive is not None and self._peer_alive()
        verdict = self._clock.due(loop.time(), alive=alive, holds_speech=session.may_hold_speech)
        if verdict is Verdict.NONE:
            self._arm()
        elif verdict is Verdict.STALL:
            self._stalled = loop.create_task(self._close_stalled())
        elif verdict is Verdict.KEEP:  # muted, its pings answered: kept for another idle timeout
            metrics.muted_kept()
            self._arm()
        else:
            self._open = False  # now, not when the task runs: a message read meanwhile is dropped
            self._ending = loop.create_task(self._finish_session(self._ended_by(verdict)))

    async def _close_stalled(self) -> None:
        """Close the open speech of a sender that stalled; then the idle and drain timers go on."""
        assert self._session is not None
        try:
            if await self._session.close_stalled():
                metrics.stall_closed()
        except (LimitReached, InvalidInput) as e:  # a held packet that cannot be used
            self._open = False
            self._disarm()
            self._ending = asyncio.get_running_loop().create_task(self._finish_session(e))
        except ServiceError as e:
            self._open = False
            self._session.fail(e)
        except Exception as e:
            self._open = False
            self._session.fail(internal_error(e))
        finally:
            self._stalled = None
            self._arm()


async def _stop(task: asyncio.Task[None]) -> None:
    if not task.done():
        task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _drop_rest(
    requests: AsyncIterator[StreamRequest], seconds: float, reading: asyncio.Future[StreamRequest | None] | None = None
) -> None:
    """Read and drop what the client still sends, until it half-closes or ``seconds`` pass
    (``reading``: a read under way, awaited first: two reads of one stream never overlap)."""

    async def drop() -> None:
        try:
            if reading is not None and await reading is None:
                return
            async for _ in requests:
                pass
        except Exception:  # the call ended (the door's iterator fails), or it is already closed
            return

    task = asyncio.create_task(drop())
    try:
        await asyncio.wait({task}, timeout=seconds)
    finally:
        await _stop(task)


def _started(session: Stream, manager: SessionManager) -> StreamStarted:
    return StreamStarted(
        session_id=session.session_id,
        resume_token=session.resume_token,
        format=session.fmt,
        task=session.task,
        vad=session.vad_settings,
        interim_interval_ms=session.interim_interval_ms,
        resume=session.resume,
        card=manager.card,
        limits=manager.limits,
        notices=session.notices,
        separate_channels=isinstance(session, ChannelStreams),
    )


def _beside(targets: tuple[str, ...], conversation: tuple[str, ...]) -> tuple[str, ...]:
    """A conversation's room's targets less its own languages: those its room's listeners add."""
    return tuple(lang for lang in targets if lang not in conversation)
