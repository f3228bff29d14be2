"""The stream protocol, once for every door: typed requests in, typed events out.

``StreamDriver.run`` owns the rules a door must not reimplement: the config comes first (resume
included), audio and FLUSH follow, a silent client is closed after ``idle_timeout``, a drain's
deadline ends the stream with "resume elsewhere", and every end has its reason and its text. A
stream that ends with an error (bad input, a limit, a drain) is held open while its client is still
sending (``hold``, the door's way to read and drop what comes), so that the status reaches a client
that is mid-write intact (grpc/grpc#36066; DESIGN.md pitfall 17): briefly after bad input, until the
end of the server's grace period after a drain. Event loop only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable

from translate_svc.errors import InvalidInput, LimitReached, ServiceError, ShuttingDown
from translate_svc.session.events import (
    AudioIn,
    Flush,
    StreamConfig,
    StreamEvent,
    StreamRequest,
    StreamStarted,
    request_name,
)
from translate_svc.session.manager import SessionManager
from translate_svc.session.stream import StreamSession

logger = logging.getLogger(__name__)

#: the door's "read and drop what the client still sends, until it stops or ``seconds`` pass"
Hold = Callable[[float], Awaitable[None]]


def internal_error(exc: BaseException) -> ServiceError:
    """An unexpected exception as the client sees it (the details go to the log)."""
    logger.error("unexpected error in a stream", exc_info=exc)
    return ServiceError("internal error; the server log has the details")


class StreamDriver:
    def __init__(self, manager: SessionManager, *, error_drain_s: float = 2.0) -> None:
        self._m = manager
        self._error_drain_s = error_drain_s
        self._read_timeout: asyncio.Timeout | None = None

    async def run(
        self, requests: AsyncIterator[StreamRequest], hold: Hold
    ) -> AsyncGenerator[StreamStarted | StreamEvent, None]:
        """The stream's events: StreamStarted, then speech events, results, captions and notices,
        then StreamEnded. Raises the ServiceError that ends the stream (the door sends its status)
        after holding the stream while the client still sends. Iterate it under
        ``contextlib.aclosing`` so that a cancelled call closes its session at once."""
        try:
            session = await self._open(requests)
        except ServiceError as e:
            await hold(self._error_drain_s)
            raise e from None
        reader = asyncio.create_task(self._read(requests, session), name=f"read-{session.session_id}")
        error: ServiceError | None = None
        try:
            yield _started(session, self._m)
            async for ev in session.events():
                yield ev
            await reader
        except ServiceError as e:
            error = e
        except asyncio.CancelledError:
            logger.info("stream cancelled by the client", extra={"session_id": session.session_id})
            raise
        except Exception as e:
            error = internal_error(e)
        finally:
            # close first: a cancel landing in the await below must not skip it (leaked stream slot)
            session.close()
            if not reader.done():
                reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        if error is not None:
            await hold(self._patience(error))
            raise error

    def _patience(self, error: ServiceError) -> float:
        """How long an ended stream waits for its client to stop sending before its status goes."""
        until = self._m.drain_hold_until
        if isinstance(error, ShuttingDown) and until is not None:
            return max(self._error_drain_s, until - asyncio.get_running_loop().time())
        return self._error_drain_s

    async def _open(self, requests: AsyncIterator[StreamRequest]) -> StreamSession:
        first = await anext(requests, None)
        if first is None:
            raise InvalidInput("the stream ended before its first message: send a `config` message first")
        if not isinstance(first, StreamConfig):
            raise InvalidInput(
                f"the first message must be `config`, got `{request_name(first)}`: send the StreamingConfig first"
            )
        task = self._m.resolve_task(first.source_language, list(first.target_languages), first.output)
        session = self._m.open_stream(
            first.format, task, first.vad, interim_interval_ms=first.interim_interval_ms, resume=first.resume
        )
        session.on_drain = self._on_drain
        return session

    def _on_drain(self, deadline: float) -> None:
        """Wake the reader at the drain's deadline if it would wait past it."""
        t = self._read_timeout
        if t is not None:
            when = t.when()
            if when is None or when > deadline:
                t.reschedule(deadline)

    async def _read(self, requests: AsyncIterator[StreamRequest], session: StreamSession) -> None:
        """Request side: feed audio, apply controls; half-close (or a limit) finishes the session."""
        try:
            while True:
                req = await self._next(requests, session)
                if req is None:
                    break
                if isinstance(req, AudioIn):
                    await session.feed(req.data, req.timestamp)
                elif isinstance(req, Flush):
                    await session.flush()
                else:
                    raise InvalidInput("`config` was sent twice: send it once, as the first message")
            await session.finish()
        except LimitReached as e:
            await session.finish(e)
        except ServiceError as e:
            session.fail(e)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug must end the stream, not leave the client waiting
            session.fail(internal_error(e))

    async def _next(self, requests: AsyncIterator[StreamRequest], session: StreamSession) -> StreamRequest | None:
        """The next request; raises the idle limit, or the drain's end at its deadline."""
        loop = asyncio.get_running_loop()
        idle_s = self._m.limits.idle_timeout_s
        when = loop.time() + idle_s
        if session.drain_deadline is not None:
            when = min(when, session.drain_deadline)
        try:
            async with asyncio.timeout_at(when) as self._read_timeout:
                return await anext(requests, None)
        except TimeoutError:
            if session.drain_deadline is not None and loop.time() >= session.drain_deadline - 0.001:
                at = session.audio_received_ms
                raise ShuttingDown(
                    "this server shut down: the stream's open speech was translated up to "
                    f"{at} ms; resume on another server (StreamingConfig.resume with this stream's "
                    f"resume_token, offset_ms {at}, next_segment_id = the next id)"
                ) from None
            raise LimitReached(
                f"no message for {idle_s:g} s (limits.idle_timeout_seconds): the stream was closed after "
                "its open speech was translated; send audio (or silence) at least that often",
                reason="idle_timeout",
            ) from None
        finally:
            self._read_timeout = None


def _started(session: StreamSession, manager: SessionManager) -> StreamStarted:
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
    )
