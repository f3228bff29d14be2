"""``AsyncStream``: the caller's face of one live stream (send, flush, update, close, iterate), over
the calls of ``_calls.StreamCalls`` that carry it across servers.

Event loop only, like the client that makes it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import grpc
import numpy as np

from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.client import _convert as convert
from translate_svc.client._audio import chunk_bytes
from translate_svc.client._replay import Chunk, ReplayBuffer
from translate_svc.client.aio._calls import StreamCalls
from translate_svc.client.aio._opening import StreamOwner
from translate_svc.client.errors import StreamClosedError, StreamEndedError
from translate_svc.client.types import Conversation, StreamEncoding, StreamEnd, StreamEvent


class AsyncStream(StreamCalls):
    """One live stream, continued across servers. Use ``async with`` (it opens the stream and
    cancels it on exit), ``send``/``flush``/``close`` from one task and iterate from another (or
    the same, interleaved).

    The iteration yields results and notices, and last the ``StreamEnd`` (also ``ended``). A
    clean end (you called ``close()``, the server answered OK) then stops the iteration; any
    other end (``QUOTA``, ``REVOKED``, ``ERROR``, ``IDLE_TIMEOUT``, ``MAX_STREAM_DURATION``)
    raises ``StreamEndedError`` on the next step, and ``send``/``flush`` raise it too. A drain or a
    dead model worker is no end: the stream resumes elsewhere.

    Event loop only. ``send`` waits while the server's flow control holds the stream and while
    the stream is being resumed.
    """

    def __init__(
        self,
        client: StreamOwner,
        config: pb.StreamingConfig,
        *,
        encoding: StreamEncoding,
        buffer: ReplayBuffer,
        timeout_s: float | None,
        max_buffered_events: int,
    ) -> None:
        super().__init__(client, config, buffer=buffer, timeout_s=timeout_s, max_buffered_events=max_buffered_events)
        self._encoding: StreamEncoding = encoding
        self._send_lock = asyncio.Lock()
        self._iter_done = False

    # -- lifetime ----------------------------------------------------------------------------

    async def __aenter__(self) -> AsyncStream:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Open the stream (the first call), retrying RESOURCE_EXHAUSTED / UNAVAILABLE elsewhere."""
        if self._pump is not None:
            return
        call, info = await self._open(None, avoid=None)
        self._token = info.resume_token
        self._install(call, info, None)
        self._pump = asyncio.create_task(self._run(), name=f"stream-{info.session_id}")
        self._pump.add_done_callback(lambda _: self._wake.set())

    async def aclose(self) -> None:
        """Stop now: cancel the call and the SDK's tasks (results not yet delivered are dropped)."""
        self._over = True
        tasks = [t for t in (self._pump, self._replay) if t is not None and not t.done()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._call is not None:
            self._call.cancel()
        self._writable = None
        self._notify()

    @property
    def ended(self) -> StreamEnd | None:
        """How the stream ended (reason, status code, the server's message, totals), once the SDK
        has read its end; the iteration yields the same ``StreamEnd`` after every result. None
        while the stream lives, and after a failure without an end (``StreamResumeError``)."""
        return self._ended

    @property
    def resume_offset_ms(self) -> int:
        """Where the stream would resume now (the end of the last final result, or a drain's offset)."""
        return self._tracker.resume_offset_ms

    # -- the caller's side -----------------------------------------------------------------------

    async def send(
        self, chunk: bytes | bytearray | memoryview | np.ndarray[Any, Any], timestamp: int | None = None
    ) -> None:
        """Send audio: raw bytes/an array in the stream's encoding (any whole number of frames), or one
        Opus packet. ``timestamp``: where its first sample lies, in samples at the stream's rate
        (Opus: 48 kHz) since the stream's first sample (RTP timestamps, unwrapped); gaps are filled
        with silence by the server. Waits under flow control and while the stream is resumed."""
        data = chunk_bytes(chunk, self._encoding)
        async with self._send_lock:
            self._check_open()
            c = self._buffer.append(data, timestamp)
            await self._deliver(c)

    async def flush(self) -> None:
        """End the current segment now, as if the speaker paused."""
        async with self._send_lock:
            self._check_open()
            await self._deliver(self._buffer.append_flush())

    async def update(
        self,
        *,
        target_languages: Sequence[str] | None = None,
        speaker_id: int | None = None,
        speed: float | None = None,
        conversation: Sequence[str] | Conversation | None = None,
    ) -> None:
        """Change the stream's targets (the whole new list; a conversation's: ``conversation``, its
        languages, or a ``Conversation`` that states the coming audio's language or clears it),
        voice or speaking rate (``speed``, 0.5..2.0) while it runs: segments that close from now on
        use them, segments already closed keep theirs (docs/api.md). The server answers with a
        ``StreamUpdated`` event in the iteration (``error`` set when it refused: the stream goes on
        unchanged). An update the server has not answered when the stream moves to another server
        is sent again there; one it accepted is part of the stream's config from then on."""
        if target_languages is None and speaker_id is None and speed is None and conversation is None:
            raise ValueError("update() changes nothing: pass target_languages, conversation, speaker_id or speed")
        msg = pb.StreamUpdate()
        if conversation is not None:
            msg.conversation.CopyFrom(convert.conversation_pb(conversation))
        if target_languages is not None:
            msg.targets.SetInParent()
            msg.targets.languages.extend(target_languages)
        if speaker_id is not None:
            msg.speaker_id = speaker_id
        if speed is not None:
            msg.speed = speed
        request = pb.StreamingTranslateRequest(update=msg)
        async with self._send_lock:
            self._check_open()
            self._unanswered.append(request)
            call = self._writable
            if call is None:
                return  # being resumed: the new call gets it (``_send_again``)
            with contextlib.suppress(grpc.RpcError, asyncio.InvalidStateError):
                await call.write(request)  # a call lost meanwhile: its replacement gets it

    async def close(self) -> None:
        """Half-close: no more audio. Iterate on to get the remaining results and the StreamEnd."""
        async with self._send_lock:
            if self._half_closed or self._over:
                return
            self._half_closed = True
            call = self._writable
            if call is not None:
                with contextlib.suppress(grpc.RpcError, asyncio.InvalidStateError):
                    await call.done_writing()
                # a call lost meanwhile is half-closed by its replacement's replay

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> StreamEvent:
        if self._iter_done:
            raise StopAsyncIteration
        pump = self._pump
        if pump is None:
            raise RuntimeError("the stream is not started: use `async with client.stream(...) as s`")
        while self._events.empty() and not pump.done():
            self._wake.clear()
            await self._wake.wait()
        if not self._events.empty():
            return self._events.get_nowait()
        self._iter_done = True  # the pump is over and everything it read was delivered
        if self._failure is not None:
            raise self._failure
        raise StopAsyncIteration

    def _check_open(self) -> None:
        if isinstance(self._failure, StreamEndedError):
            raise self._failure
        if self._failure is not None:
            raise StreamClosedError(f"the stream failed: {self._failure}") from self._failure
        if self._half_closed:
            raise StreamClosedError("the stream was half-closed (close()): no more audio can be sent")
        if self._over:
            raise StreamClosedError("the stream has ended")
        if self._pump is None:
            raise StreamClosedError("the stream is not started: use `async with client.stream(...) as s`")

    async def _deliver(self, c: Chunk) -> None:
        """Write ``c`` on the current call; if that call breaks, the resume's replay carries it."""
        while True:
            if self._failure is not None or self._over:
                self._check_open()
            if c.seq <= self._covered_seq:
                return  # a resume's replay sent it
            call = self._writable
            changed = self._changed
            if call is None:
                await changed.wait()
                continue
            try:
                await call.write(self._request(c))
                return
            except (grpc.RpcError, asyncio.InvalidStateError):
                pass  # the call is over; the pump sees why and resumes (or fails)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # our caller is cancelled, not the call
            if self._writable is call:
                self._writable = None
            await changed.wait()
