"""The blocking SDK: ``TranslateClient`` runs an ``AsyncTranslateClient`` on a private event-loop
thread and waits for it; its methods are the async client's, wrapped (one signature to keep).

Thread safety: a ``TranslateClient`` may be used from several threads (each call is handed to the
loop thread). One ``Stream`` is meant for one thread: ``send`` and iteration work from the same
thread, because the loop thread reads the stream's events into an unbounded queue the iteration
takes from (a caller that never reads keeps every event in memory). Several threads may each own
a stream.
"""

from __future__ import annotations

import asyncio
import functools
import queue
import threading
import weakref
from collections.abc import Callable, Coroutine, Iterator, Sequence
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TypeVar, Unpack

import numpy as np

from translate_svc.client.aio import (
    AsyncListener,
    AsyncStream,
    AsyncTranslateClient,
    ConnectionFields,
    ConnectionOptions,
)
from translate_svc.client.room_types import ListenEnd, ListenEvent, ListenStarted
from translate_svc.client.types import Conversation, StreamEnd, StreamEvent, StreamInfo

T = TypeVar("T")
P = ParamSpec("P")


async def _call_in_loop(make: Callable[[], T]) -> T:
    """``make()`` on the loop thread (asyncio objects are made where they are used)."""
    return make()


def _blocking(
    method: Callable[Concatenate[AsyncTranslateClient, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[TranslateClient, P], T]:
    """``AsyncTranslateClient.method`` as a blocking ``TranslateClient`` method with its signature."""

    def call(self: TranslateClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._run(method(self._client, *args, **kwargs))

    functools.update_wrapper(call, method)  # name, docstring; inspect.signature shows the async one's
    return call


def _blocking_stream(
    method: Callable[Concatenate[AsyncTranslateClient, P], AsyncStream],
) -> Callable[Concatenate[TranslateClient, P], Stream]:
    """``AsyncTranslateClient.stream`` as a ``TranslateClient`` method returning a blocking ``Stream``:
    ``with client.stream(...) as s:``, then ``s.send(...)``, ``s.close()`` and ``for ev in s`` (or
    ``s.poll()`` between sends) from the same thread."""

    def call(self: TranslateClient, /, *args: P.args, **kwargs: P.kwargs) -> Stream:
        # the AsyncStream is made on the loop thread (asyncio objects are made where they are used)
        astream = self._run(_call_in_loop(lambda: method(self._client, *args, **kwargs)))
        return Stream(self, astream)

    functools.update_wrapper(call, method)
    call.__doc__ = _blocking_stream.__doc__
    return call


def _blocking_listen(
    method: Callable[Concatenate[AsyncTranslateClient, P], AsyncListener],
) -> Callable[Concatenate[TranslateClient, P], Listener]:
    """``AsyncTranslateClient.listen`` as a ``TranslateClient`` method returning a blocking
    ``Listener``: ``with client.listen(room, language) as room:``, then ``for ev in room`` (or
    ``room.poll()``); ``room.close()`` (from any thread) stops it."""

    def call(self: TranslateClient, /, *args: P.args, **kwargs: P.kwargs) -> Listener:
        alisten = self._run(_call_in_loop(lambda: method(self._client, *args, **kwargs)))
        listener = Listener(self, alisten)
        self._listeners.add(listener)
        return listener

    functools.update_wrapper(call, method)
    call.__doc__ = _blocking_listen.__doc__
    return call


class _Done:
    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class TranslateClient:
    """The blocking twin of :class:`AsyncTranslateClient` (same arguments: ``targets``, and a
    ``ConnectionOptions`` as ``connection=`` or its fields as keywords; same methods).

    ``close()`` (or ``with``) stops the loop thread.
    """

    def __init__(
        self,
        targets: str | Sequence[str],
        *,
        connection: ConnectionOptions | None = None,
        **fields: Unpack[ConnectionFields],
    ) -> None:
        # built here (it only parses and validates): argument errors surface in the caller's thread
        self._client = AsyncTranslateClient(targets, connection=connection, **fields)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="translate-svc-client", daemon=True)
        self._thread.start()
        self._closed = False
        #: listens not closed yet: ``close()`` ends them, so that a thread iterating one returns
        self._listeners: weakref.WeakSet[Listener] = weakref.WeakSet()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coro.close()
            raise RuntimeError("the client is closed")
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return fut.result()

    def __enter__(self) -> TranslateClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        for listener in list(self._listeners):
            listener.close()
        self._run(self._client.close())
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    @property
    def addresses(self) -> tuple[str, ...]:
        return self._client.addresses

    # the async client's methods, blocking: the same arguments, written once (in aio/_client.py)
    languages = _blocking(AsyncTranslateClient.languages)
    translate = _blocking(AsyncTranslateClient.translate)
    translate_text = _blocking(AsyncTranslateClient.translate_text)
    detect_synthetic = _blocking(AsyncTranslateClient.detect_synthetic)
    create_glossary = _blocking(AsyncTranslateClient.create_glossary)
    list_glossaries = _blocking(AsyncTranslateClient.list_glossaries)
    get_glossary = _blocking(AsyncTranslateClient.get_glossary)
    replace_glossary = _blocking(AsyncTranslateClient.replace_glossary)
    delete_glossary = _blocking(AsyncTranslateClient.delete_glossary)
    submit_job = _blocking(AsyncTranslateClient.submit_job)
    get_job = _blocking(AsyncTranslateClient.get_job)
    wait_job = _blocking(AsyncTranslateClient.wait_job)
    cancel_job = _blocking(AsyncTranslateClient.cancel_job)
    list_jobs = _blocking(AsyncTranslateClient.list_jobs)
    edit_job = _blocking(AsyncTranslateClient.edit_job)
    job_results = _blocking(AsyncTranslateClient.job_results)
    save_job_results = _blocking(AsyncTranslateClient.save_job_results)
    save_job_video = _blocking(AsyncTranslateClient.save_job_video)

    stream = _blocking_stream(AsyncTranslateClient.stream)
    listen = _blocking_listen(AsyncTranslateClient.listen)


class Stream:
    """A blocking stream (see :class:`AsyncStream` for the semantics, resumes included).

    As there, the iteration (and ``poll``) yields the ``StreamEnd`` last; after any end but a clean
    one (``close()``, then OK) the next step raises ``StreamEndedError``, and so do ``send`` and
    ``flush``. ``ended`` is the ``StreamEnd`` once the SDK has read it.
    """

    def __init__(self, owner: TranslateClient, astream: AsyncStream) -> None:
        self._owner = owner
        self._astream = astream
        self._q: queue.SimpleQueue[StreamEvent | _Done] = queue.SimpleQueue()
        self._forward: asyncio.Task[None] | None = None
        self._done = False
        self._raise_next: BaseException | None = None

    def __enter__(self) -> Stream:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.abort()

    def start(self) -> None:
        self._owner._run(self._start())

    async def _start(self) -> None:
        await self._astream.start()
        self._forward = asyncio.create_task(self._forward_events())

    async def _forward_events(self) -> None:
        # every event, into an unbounded queue: a caller may send everything, then iterate (the
        # server sees a client that reads; this process holds what the caller has not taken)
        error: BaseException | None = None
        try:
            async for ev in self._astream:
                self._q.put(ev)
        except asyncio.CancelledError:
            raise
        except BaseException as e:
            error = e
        finally:
            self._q.put(_Done(error))

    def abort(self) -> None:
        """Stop now (what leaving the ``with`` block does): undelivered results are dropped."""
        if not self._owner._closed:
            self._owner._run(self._abort())

    async def _abort(self) -> None:
        await self._astream.aclose()
        if self._forward is not None and not self._forward.done():
            self._forward.cancel()
            await asyncio.gather(self._forward, return_exceptions=True)

    @property
    def info(self) -> StreamInfo | None:
        return self._astream.info

    @property
    def resumes(self) -> int:
        return self._astream.resumes

    @property
    def ended(self) -> StreamEnd | None:
        """How the stream ended (see ``AsyncStream.ended``); None while it lives."""
        return self._astream.ended

    @property
    def request_id(self) -> str:
        return self._astream.request_id

    def send(self, chunk: bytes | bytearray | memoryview | np.ndarray[Any, Any], timestamp: int | None = None) -> None:
        self._owner._run(self._astream.send(chunk, timestamp))

    def flush(self) -> None:
        self._owner._run(self._astream.flush())

    def update(
        self,
        *,
        target_languages: Sequence[str] | None = None,
        speaker_id: int | None = None,
        speed: float | None = None,
        conversation: Sequence[str] | Conversation | None = None,
    ) -> None:
        """Change the targets (or a conversation's languages, or its stated language), the voice or
        the speaking rate while the stream runs (``AsyncStream.update``)."""
        self._owner._run(
            self._astream.update(
                target_languages=target_languages, speaker_id=speaker_id, speed=speed, conversation=conversation
            )
        )

    def close(self) -> None:
        """Half-close; iterate on for the remaining results and the StreamEnd."""
        self._owner._run(self._astream.close())

    def __iter__(self) -> Iterator[StreamEvent]:
        return self

    def __next__(self) -> StreamEvent:
        ev = self._next(block=True, timeout=None)
        if ev is None:
            raise StopIteration
        return ev

    def poll(self, timeout: float | None = 0.0) -> list[StreamEvent]:
        """The events available now (waiting up to ``timeout`` for the first; None: until one comes
        or the stream ends). Empty once the stream is over. Raises what the iteration raises
        (``StreamEndedError``) once the events before it were returned."""
        out: list[StreamEvent] = []
        try:
            ev = self._next(block=timeout is None or timeout > 0, timeout=timeout)
            while ev is not None:
                out.append(ev)
                ev = self._next(block=False, timeout=None)
        except Exception as e:
            if not out:
                raise
            self._raise_next = e  # the events first (the StreamEnd among them); the error next time
        return out

    def _next(self, *, block: bool, timeout: float | None) -> StreamEvent | None:
        if self._raise_next is not None:
            error, self._raise_next = self._raise_next, None
            raise error
        if self._done:
            return None
        try:
            item = self._q.get(block=block, timeout=timeout)
        except queue.Empty:
            return None
        if isinstance(item, _Done):
            self._done = True
            if item.error is not None:
                raise item.error
            return None
        return item


class Listener:
    """A blocking listen to a room (see :class:`AsyncListener`: the events, the moves to another
    server after a drain, how it ends). ``for ev in room`` waits for each event; ``poll(timeout)``
    takes what has arrived; ``close()`` (what leaving ``with`` does, and callable from another
    thread) stops it, and an iteration then stops. A listen the server ended yields its
    ``ListenEnd``, then raises ``ListenEndedError``."""

    def __init__(self, owner: TranslateClient, alisten: AsyncListener) -> None:
        self._owner = owner
        self._alisten = alisten

    def __enter__(self) -> Listener:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def start(self) -> None:
        """Open the listen; a refusal raises ``TranslateError`` with the server's message."""
        self._owner._run(self._alisten.start())

    def close(self) -> None:
        """Stop listening now; events not taken are dropped (also done by the client's ``close()``)."""
        if not self._owner._closed:
            self._owner._run(self._alisten.aclose())
        self._owner._listeners.discard(self)

    @property
    def info(self) -> ListenStarted | None:
        return self._alisten.info

    @property
    def resumes(self) -> int:
        return self._alisten.resumes

    @property
    def repeats_dropped(self) -> int:
        return self._alisten.repeats_dropped

    @property
    def ended(self) -> ListenEnd | None:
        return self._alisten.ended

    @property
    def request_id(self) -> str:
        return self._alisten.request_id

    def __iter__(self) -> Iterator[ListenEvent]:
        return self

    def __next__(self) -> ListenEvent:
        if self._owner._closed:
            raise StopIteration
        fut = asyncio.run_coroutine_threadsafe(self._alisten.__anext__(), self._owner._loop)
        try:
            return fut.result()
        except StopAsyncIteration:
            raise StopIteration from None
        except BaseException:
            fut.cancel()  # Ctrl-C while waiting: the step is dropped, the listen goes on (close() ends it)
            raise

    def poll(self, timeout: float | None = 0.0) -> list[ListenEvent]:
        """The events available now, waiting up to ``timeout`` for the first (None: until one comes
        or the listen ends). Empty once the listen is over; raises what the iteration raises
        (``ListenEndedError``) once the events before it were returned."""
        return self._owner._run(self._poll(timeout))

    async def _poll(self, wait_s: float | None) -> list[ListenEvent]:
        a = self._alisten
        if wait_s is None or wait_s > 0:
            try:
                first = await asyncio.wait_for(a.__anext__(), wait_s)
            except (TimeoutError, StopAsyncIteration):
                return []
            return [first, *a.ready()]
        return a.ready()
