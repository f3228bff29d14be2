"""The calls under one live stream: opening one (retried elsewhere), sending the kept audio again,
reading each call into events, ending, and resuming on another server. ``AsyncStream``
(``_stream.py``) is the caller's face over this machinery.

How a stream survives a server going away (docs/client.md): every chunk sent is kept in a
``ReplayBuffer`` until a final result covers it. When the call ends with ``ended{DRAINING}`` (the
server shut down) or is lost (UNAVAILABLE, a dropped connection, no ``ended``), the SDK opens a new
call on the next address with ``StreamingConfig.resume`` = (the stream's resume token, the next
segment id, the resume offset), sends the kept audio again from that offset, and goes on; the
``StreamTracker`` drops whatever the new call repeats. The caller's ``send`` waits while this
happens, and its iteration just sees the next events.

How a stream ends (docs/client.md, "How a stream ends"): on any other ``ended`` the SDK stops
writing, half-closes the call and reads its status; the ``StreamEnd`` carries the reason, the
status code, the server's message and the request id. Only ``HALF_CLOSE`` with OK is clean: after
any other end the iteration yields the ``StreamEnd`` and then raises ``StreamEndedError``, and
``send``/``flush`` raise it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from typing import Any, Final

import grpc

from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.client import _convert as convert
from translate_svc.client._replay import Chunk, ReplayBuffer
from translate_svc.client._retry import retry_delay_from_metadata
from translate_svc.client._tracker import StreamTracker
from translate_svc.client.aio._opening import StreamOwner, open_started
from translate_svc.client.errors import StreamEndedError, StreamResumeError, TranslateError
from translate_svc.client.types import (
    Draining,
    EagerEndOfTurn,
    EndReason,
    StreamEnd,
    StreamEvent,
    StreamInfo,
    TurnResumed,
)

logger = logging.getLogger(__name__)

#: a resumed call that stayed up this long counts as progress (max_resumes counts resumes in a row)
_HEALTHY_CALL_S: Final = 30.0
#: statuses after which a stream is continued elsewhere (besides ended{DRAINING})
_RESUMABLE: Final = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.ABORTED})
#: grpc-python's own INTERNAL when one of its writes fails on a call that is over (grpc/grpc#36066):
#: it can hide a lost connection's UNAVAILABLE, so it is resumed too (a server's INTERNAL is not)
_CORE_WRITE_FAILURE: Final = "Internal error from Core"


class _Outcome:
    """How one call of a stream ended."""

    def __init__(self, kind: str, *, end: StreamEnd | None = None, error: TranslateError | None = None) -> None:
        self.kind = kind  # "end": the stream is over; "drained" / "lost": resume elsewhere
        self.end = end
        self.error = error  # "end": the StreamEndedError to raise after ``end`` (None: a clean end)


class StreamCalls:
    """The state of one live stream and the calls under it. The pump (``_run``) reads the current
    call and puts its events on the queue; when the call is lost or drained it opens the next one
    and sends the kept audio again. ``AsyncStream`` adds the caller's side (send, update, iterate).

    Event loop only.
    """

    def __init__(
        self,
        client: StreamOwner,
        config: pb.StreamingConfig,
        *,
        buffer: ReplayBuffer,
        timeout_s: float | None,
        max_buffered_events: int,
    ) -> None:
        self._client = client
        self._config = config
        self._buffer = buffer
        self._tracker = StreamTracker()
        self._deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self._events: asyncio.Queue[StreamEvent] = asyncio.Queue(max_buffered_events)
        self._wake = asyncio.Event()  # set when an event is queued or the pump ends
        self._changed = asyncio.Event()
        self._call: Any = None  # the current call (being read)
        self._writable: Any = None  # the current call once it may take new chunks (after any replay)
        self._covered_seq = -1  # chunks up to this seq were sent again by the last replay
        self._timestamped = False  # after a resume every chunk goes as AudioPacket with its timestamp
        self._half_closed = False
        self._failure: BaseException | None = None
        self._ended: StreamEnd | None = None
        self._over = False  # StreamEnd (or a failure) reached the queue
        self._pump: asyncio.Task[None] | None = None
        self._replay: asyncio.Task[None] | None = None
        self._token = ""
        #: updates sent and not answered yet: a resumed call gets them again
        self._unanswered: list[pb.StreamingTranslateRequest] = []
        #: this stream's ``x-request-id``, sent with each of its calls (resumes included)
        self.request_id = uuid.uuid4().hex
        self._call_started = 0.0
        #: what the server said when the current call started
        self.info: StreamInfo | None = None
        #: how many times the stream moved to another call
        self.resumes = 0
        #: results a resumed call repeated and the SDK dropped (segments, commits, captions, speech events)
        self.repeats_dropped = 0

    def _request(self, c: Chunk) -> pb.StreamingTranslateRequest:
        if c.data is None:
            return pb.StreamingTranslateRequest(control=pb.FLUSH)
        if self._timestamped or c.timestamped:
            return pb.StreamingTranslateRequest(packet=pb.AudioPacket(data=c.data, timestamp=c.start))
        return pb.StreamingTranslateRequest(audio=c.data)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- calls -----------------------------------------------------------------------------------

    def _remaining_s(self) -> float | None:
        if self._deadline is None:
            return None
        left = self._deadline - time.monotonic()
        if left <= 0:
            message = "the stream's deadline (timeout_s) passed"
            raise TranslateError(grpc.StatusCode.DEADLINE_EXCEEDED, message, request_id=self.request_id)
        return left

    async def _open(self, resume: pb.ResumeFrom | None, *, avoid: str | None) -> tuple[Any, StreamInfo]:
        """A new call that the server accepted (``started`` received), on the next address."""
        client = self._client
        config = pb.StreamingConfig()
        config.CopyFrom(self._config)
        if resume is not None:
            config.resume.CopyFrom(resume)
        first_msg = pb.StreamingTranslateRequest(config=config)

        async def make_call(address: str) -> Any:
            call = client._stub(address).StreamingTranslate(
                timeout=self._remaining_s(), metadata=client._metadata_for(self.request_id)
            )
            with contextlib.suppress(grpc.RpcError, asyncio.InvalidStateError):
                await call.write(first_msg)  # a refusal shows on the first read
            return call

        call, first, address = await open_started(
            client,
            what="the stream",
            request_id=self.request_id,
            avoid=avoid,
            make_call=make_call,
            is_started=lambda msg: msg.HasField("started"),
        )
        s = first.started
        info = StreamInfo(
            session_id=s.session_id,
            resume_token=s.resume_token or self._token,
            model=convert.model_info(s.model),
            limits=convert.limits(s.limits),
            address=address,
            simultaneous=convert.simultaneous(s.config),
            eagerness=s.config.vad.eagerness,
            notices=tuple(s.notices),
        )
        return call, info

    def _install(self, call: Any, info: StreamInfo, offset_ms: int | None) -> None:
        """Make ``call`` current: read it now; let new chunks onto it once the kept audio from
        ``offset_ms`` (a resume) is sent again. Synchronous: the replay is exactly the buffer now."""
        self._call = call
        self.info = info
        self._call_started = time.monotonic()
        if offset_ms is None:
            self._writable = call
            self._notify()
            return
        _, _, chunks = self._buffer.replay_from(offset_ms)
        self._covered_seq = self._buffer.last_seq  # a send waiting with a chunk: the replay carries it
        self._replay = asyncio.create_task(self._send_again(call, chunks), name=f"replay-{info.session_id}")

    async def _send_again(self, call: Any, chunks: list[Chunk]) -> None:
        try:
            for u in list(self._unanswered):
                await call.write(u)
            for c in chunks:
                await call.write(self._request(c))
            if self._half_closed:
                await call.done_writing()
        except (grpc.RpcError, asyncio.InvalidStateError):
            return  # the call broke again: the pump resumes once more
        if self._call is call:
            self._writable = call
            self._notify()

    # -- the pump: reads every call, resumes lost ones -------------------------------------------

    async def _run(self) -> None:
        try:
            in_a_row = 0
            last_progress = self._tracker.progress()
            while True:
                outcome = await self._read_call(self._call)
                if outcome.kind == "end":
                    assert outcome.end is not None
                    self._ended = outcome.end
                    await self._put(outcome.end)
                    if outcome.error is not None:
                        raise outcome.error  # after the StreamEnd: the iteration yields it first
                    return
                failed = self.info.address if self.info is not None else None
                healthy = time.monotonic() - self._call_started >= _HEALTHY_CALL_S
                progress = self._tracker.progress()
                in_a_row = 1 if (progress != last_progress or healthy) else in_a_row + 1
                last_progress = progress
                if in_a_row > self._client.max_resumes:
                    raise StreamResumeError(
                        outcome.error.code if outcome.error else grpc.StatusCode.UNAVAILABLE,
                        f"the stream was lost {in_a_row} times in a row without progress "
                        f"(max_resumes={self._client.max_resumes}); last: {outcome.error or 'drained'}",
                        resume_offset_ms=self._tracker.resume_offset_ms,
                        attempts=in_a_row,
                        request_id=self.request_id,
                    ) from outcome.error
                await self._resume(failed, outcome)
        except asyncio.CancelledError:
            raise
        except BaseException as e:
            self._failure = e
            logger.warning("%s", e if isinstance(e, StreamEndedError) else f"the stream failed: {e}")
        finally:
            self._over = True
            self._writable = None
            if self._call is not None:
                self._call.cancel()
            self._notify()

    async def _put(self, ev: StreamEvent) -> None:
        await self._events.put(ev)  # waits while the caller is max_buffered_events behind
        self._wake.set()

    async def _read_call(self, call: Any) -> _Outcome:
        tracker = self._tracker
        try:
            while True:
                msg = await call.read()
                if msg is grpc.aio.EOF:
                    code = await call.code()
                    return _Outcome(
                        "lost",
                        error=TranslateError(
                            code, "the call ended without `ended`", address=self._address(), request_id=self.request_id
                        ),
                    )
                kind = msg.WhichOneof("response")
                if kind == "segment":
                    seg = convert.segment(msg.segment)
                    if tracker.segment(seg):
                        self._buffer.trim(tracker.resume_offset_ms)
                        await self._put(seg)
                    else:
                        self.repeats_dropped += 1
                elif kind == "commit":
                    com = tracker.commit(convert.commit(msg.commit))
                    if com is not None:
                        await self._put(com)
                    else:
                        self.repeats_dropped += 1
                elif kind == "speech_event":
                    ev = convert.speech_event(msg.speech_event)
                    if ev is not None and tracker.speech(ev):
                        await self._put(ev)
                    elif ev is not None:
                        self.repeats_dropped += 1
                elif kind == "interim":
                    cap = convert.interim(msg.interim)
                    if tracker.interim(cap):
                        await self._put(cap)
                    else:
                        self.repeats_dropped += 1
                elif kind == "updated":
                    u = convert.updated(msg.updated)
                    if self._unanswered:
                        self._unanswered.pop(0)
                    if u.error is None:  # from now on part of the stream: a resume opens with it
                        del self._config.target_languages[:]
                        self._config.target_languages.extend(u.target_languages)
                        if msg.updated.config.HasField("conversation"):  # its languages, voices, speeds
                            self._config.conversation.CopyFrom(msg.updated.config.conversation)
                        if u.speaker_id or self._config.HasField("output"):
                            self._config.output.speaker_id = u.speaker_id
                        if u.speed != 1.0 or self._config.output.HasField("speed"):
                            self._config.output.speed = u.speed
                    await self._put(u)
                elif kind == "eager_end_of_turn":
                    e = msg.eager_end_of_turn
                    await self._put(EagerEndOfTurn(e.segment_id, e.start_ms, e.end_ms))
                elif kind == "turn_resumed":
                    await self._put(TurnResumed(msg.turn_resumed.segment_id, msg.turn_resumed.offset_ms))
                elif kind == "draining":
                    d: Draining = convert.draining(msg.draining)
                    logger.info("%s is shutting down: the stream moves in %d ms", self._address(), d.remaining_ms)
                    await self._put(d)
                elif kind == "ended":
                    end = convert.stream_end(msg.ended)
                    if end.reason is EndReason.DRAINING:
                        tracker.drained(end.resume_offset_ms)
                        self._buffer.trim(tracker.resume_offset_ms)
                        return _Outcome("drained")
                    if end.reason is EndReason.ENGINE_FAILED:  # its status (UNAVAILABLE) follows: resume
                        code = await call.code()
                        details = await call.details()
                        error = TranslateError(code, details, address=self._address(), request_id=self.request_id)
                        return _Outcome("lost", error=error)
                    return await self._ending(call, end)
        except grpc.aio.AioRpcError as e:
            err = self._client._error(e, self._address() or "", 1, self.request_id)
            if e.code() in _RESUMABLE or (
                e.code() is grpc.StatusCode.INTERNAL and (e.details() or "") == _CORE_WRITE_FAILURE
            ):
                return _Outcome("lost", error=err)
            raise err from e

    async def _ending(self, call: Any, end: StreamEnd) -> _Outcome:
        """The stream's ``ended``, with the status the server then ends the call with. The server
        holds a failed call open until its client stops sending (so that a client mid-write gets
        the status, not its own write failure), so the SDK stops writing and half-closes first."""
        self._writable = None  # a send from now on waits for the pump's end, then raises
        self._notify()
        with contextlib.suppress(grpc.RpcError, asyncio.InvalidStateError):
            await call.done_writing()  # idempotent; a no-op after close()
        try:
            # shielded: a cancelled wait must not cancel the call's status
            code = await asyncio.wait_for(asyncio.shield(call.code()), self._client.timeout_s)
            message = await call.details() or ""
            retry_delay_s = retry_delay_from_metadata(await call.trailing_metadata())
        except TimeoutError:
            call.cancel()
            code, retry_delay_s = grpc.StatusCode.UNKNOWN, None
            message = f"the server sent `ended` but no status within {self._client.timeout_s:g} s"
        end = dataclasses.replace(end, code=code, message=message, request_id=self.request_id)
        if end.clean:
            return _Outcome("end", end=end)
        error = StreamEndedError(end, retry_delay_s=retry_delay_s, address=self._address())
        return _Outcome("end", end=end, error=error)

    def _address(self) -> str | None:
        return self.info.address if self.info is not None else None

    async def _resume(self, failed: str | None, outcome: _Outcome) -> None:
        """Continue the stream on a new call: resume token, next id, offset; then send the kept audio again."""
        old = self._call
        self._writable = None
        self._notify()
        if self._replay is not None and not self._replay.done():
            self._replay.cancel()
            await asyncio.gather(self._replay, return_exceptions=True)
        old.cancel()
        offset_ms = self._tracker.resume_offset_ms
        if self._buffer.dropped_to > self._buffer.frame_at(offset_ms):
            logger.warning(
                "resuming at %d ms, but audio up to %.0f ms was dropped from the replay buffer (max_replay_s): "
                "that audio is not translated",
                offset_ms,
                self._buffer.dropped_to * 1000 / self._buffer.rate,
            )
        start_ms, lead_in_ms, chunks = self._buffer.replay_from(offset_ms)  # chunks: logged; sent as of _install
        resume = pb.ResumeFrom(
            resume_token=self._token,
            next_segment_id=self._tracker.next_segment_id,
            offset_ms=start_ms,
            lead_in_ms=lead_in_ms,
        )
        why = "it drained" if outcome.kind == "drained" else f"the call was lost ({outcome.error})"
        logger.info(
            "resuming the stream after %s: from %d ms (audio from %d ms: a lead-in of %d ms), segment %d, %d chunk(s)",
            why,
            offset_ms,
            start_ms,
            lead_in_ms,
            resume.next_segment_id,
            len(chunks),
        )
        try:
            call, info = await self._open(resume, avoid=failed)
        except TranslateError as e:
            raise StreamResumeError(
                e.code,
                f"the stream could not be resumed on any server: {e.message}",
                resume_offset_ms=offset_ms,
                attempts=e.attempts,
                request_id=self.request_id,
            ) from e
        self.resumes += 1
        self._tracker.new_call()
        self._timestamped = True
        self._install(call, info, offset_ms)
