"""OpenAI's audio REST endpoints on the HTTP port: ``POST /v1/audio/transcriptions`` and
``POST /v1/audio/translations`` (as the ``openai`` SDK's ``client.audio.transcriptions.create`` and
``client.audio.translations.create`` send them), over the clip core (``session.ClipDriver``), the
gRPC ``Translate``'s: the same admission (``limits.max_translate_calls``, the tenant's caps,
taken before the body is read), read deadline (``limits.clip_read_timeout_s``), decode whitelist,
clip limits, accounting and access line (methods ``audio.transcriptions``, ``audio.translations``).

- Tokens: ``Authorization: Bearer``, a token with permission ``translate`` (a clip's, as on gRPC);
  no client secrets (they are for realtime sessions). A browser page of another site gets 403.
- The form is read with bounds as it comes (``form_reader.py``) and checked (``audio_form.py``):
  a ``file`` over the clip limit is a 413 before it is held whole. Translations go to English unless our extension field
  ``x_target_language`` names another language.
- Answers (``audio_formats.py``): every ``response_format``; with ``stream=true``, server-sent
  events, a ``transcript.text.delta`` per segment as the clip core gives it, then
  ``transcript.text.done``. An error after the events began is one more event, ``{"error": ...}``,
  which the SDK raises.
- Errors: OpenAI's JSON body (``error: {message, type, code, param}``), 400 for bad input, 401/403
  for tokens, 408 for a body slower than the read deadline, 413 over the clip limit, 429 at a cap
  (with ``Retry-After``), 503 while the server drains or loads. A segment that fails fails the
  request (the first such segment's error, with its ``x_segment``). A client that goes away while
  it sends is one INFO line, and its call ends as cancelled.
Event loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from translate_svc.errors import ErrorCode, NotReady, ServiceError
from translate_svc.session.calls.clip import ClipDriver, ClipRequest
from translate_svc.session.events import ClipResult
from translate_svc.session.manager import SessionManager
from translate_svc.transport.calls import REQUEST_ID, SMALL_MESSAGE_BYTES, call_info
from translate_svc.transport.http.caller import Authorizer
from translate_svc.transport.http.errors import error_body, error_type, refusal
from translate_svc.transport.http.responses import answer
from translate_svc.transport.openai import audio_formats as formats
from translate_svc.transport.openai import x_conversation
from translate_svc.transport.openai.audio_form import TRANSCRIBE, TRANSLATE, Answer, clip_request
from translate_svc.transport.openai.form_reader import ClientLeft, FormError, read_form
from translate_svc.transport.tokens.file import Permission
from translate_svc.types import ModelCard, SegmentResult

logger = logging.getLogger(__name__)

PATHS = {TRANSCRIBE: "/v1/audio/transcriptions", TRANSLATE: "/v1/audio/translations"}
METHODS = {TRANSCRIBE: "audio.transcriptions", TRANSLATE: "audio.translations"}


class AudioApi:
    """The two endpoints' routes. ``callers``: the HTTP port's caller check."""

    def __init__(self, manager: SessionManager, callers: Authorizer) -> None:
        self._m = manager
        self._callers = callers

    def add_routes(self, router: web.UrlDispatcher) -> None:
        for task, path in PATHS.items():
            router.add_post(path, self._handler(task))

    def _handler(self, task: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self.serve(request, task)

        return handle

    async def serve(self, request: web.Request, task: str) -> web.StreamResponse:
        limits = self._m.limits
        what = "an audio transcription" if task == TRANSCRIBE else "an audio translation"
        caller = self._callers.authorize_request(
            request, what=what, protocol=None, secret_ok=False, needed=Permission.TRANSLATE
        )
        if isinstance(caller, web.Response):
            return caller
        limit = limits.max_message_bytes
        if request.content_length is not None and request.content_length > limit + SMALL_MESSAGE_BYTES:
            return _error(
                413,
                f"the request's body is {request.content_length} bytes, over this server's clip limit of {limit} "
                "bytes for the file (limits.max_message_bytes): send a shorter or more compressed recording",
                "file_too_large",
                param="file",
            )
        call = call_info(request.headers.get(REQUEST_ID), METHODS[task], request.remote or "")
        exchange = _Exchange(request, task, self._m)
        driver = ClipDriver(self._m, tenant=caller.tenant, call=call)
        run = asyncio.ensure_future(driver.run(exchange.read, exchange.render, on_result=exchange.on_result))
        exchange.on_gone = run.cancel  # an event stream's reader left: nothing more is computed for it
        try:
            answer = await run
        except ServiceError as e:
            return await exchange.failed(e)
        except asyncio.CancelledError:
            if not exchange.gone:
                raise
            return exchange.response or web.Response(status=499)
        return await exchange.answered(answer)


@dataclass
class _Exchange:
    """One request's way through the clip core: its form read, its answer rendered, and its events
    streamed (``stream=true``) by a writer task of their own, so that the clip's collector never
    waits for a slow reader (a clip's results bound what waits)."""

    request: web.Request
    task: str
    manager: SessionManager
    answer: Answer | None = None
    on_gone: Callable[[], object] = lambda: None
    gone: bool = False
    response: web.StreamResponse | None = None
    _queue: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    _writer: asyncio.Task[None] | None = None
    _sent: int = 0  # deltas sent (the first has no leading space)

    @property
    def card(self) -> ModelCard | None:
        try:
            return self.manager.card
        except NotReady:
            return None

    async def read(self) -> ClipRequest:
        """The form, read and checked (admitted already: the read deadline runs)."""
        m = self.manager
        try:
            form = await read_form(self.request, m.limits.max_message_bytes)
        except ClientLeft as e:  # no one to answer: the call ends as cancelled (its access line says so)
            logger.info("an audio request's client went away while it sent its form (%s)", e)
            self.gone = True
            raise asyncio.CancelledError from None
        request, self.answer = clip_request(form, self.task, self.card, m.vad_defaults, m.limits)
        return request

    def on_result(self, r: SegmentResult) -> None:
        """A segment's result as the clip core gives it: an event, when streaming."""
        if self.answer is None or not self.answer.stream or self.gone:
            return
        if r.error is not None:
            return  # the request fails with it (``render``)
        p = formats.piece(r, self.task == TRANSLATE)
        if p.text:
            self._put(formats.sse(formats.delta_event(p, first=self._sent == 0, logprobs=self.answer.logprobs)))
            self._sent += 1

    def render(self, clip: ClipResult) -> ClipResult:
        """The clip's outcome: a failed segment fails the request (counted so in its access line)."""
        for r in clip.segments:
            if r.error is not None:
                e = ServiceError(f"segment {r.segment_id} ({r.start_ms}-{r.end_ms} ms) failed: {r.error.message}")
                e.code = ErrorCode(r.error.code)
                raise e
        return clip

    async def answered(self, clip: ClipResult) -> web.StreamResponse:
        answer = self.answer
        assert answer is not None
        translate = self.task == TRANSLATE
        if answer.stream:
            pieces = [formats.piece(r, translate) for r in clip.segments]
            done = formats.done_event(
                formats.joined(pieces), clip.audio_duration_ms, pieces if answer.logprobs else None
            )
            return await self._close(formats.sse(done))
        text, content_type = formats.body(
            answer.response_format,
            clip,
            translate=translate,
            language=answer.language,
            card=self.card,
            words=answer.words,
            logprobs=answer.logprobs,
        )
        return web.Response(text=text, content_type=content_type, charset="utf-8")

    async def failed(self, e: ServiceError) -> web.StreamResponse:
        if self._writer is not None:  # the events began: the error is the last of them
            kind, code = error_type(e.code)
            return await self._close(formats.sse(error_body(e.message, e.reason or code, kind)))
        if isinstance(e, FormError):
            return _error(e.status, e.message, e.wire_code, param=e.param)
        refused = refusal(e)  # the port's one table: 429 or 503 with Retry-After, 400, 500...
        param = x_conversation.param_of(e, x_conversation.FORM_PARAM)  # the core's check: this form's field
        if param is not None:
            refused = dataclasses.replace(refused, body={"error": {**refused.body["error"], "param": param}})
        if e.reason == "clip_read_timeout":  # the clip's read deadline: the request was too slow
            return web.json_response(refused.body, status=408)
        return answer(refused)

    def _put(self, data: bytes) -> None:
        if self._writer is None:
            self._writer = asyncio.ensure_future(self._write())
        self._queue.put_nowait(data)

    async def _write(self) -> None:
        try:
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
            await response.prepare(self.request)
            self.response = response
            while (data := await self._queue.get()) is not None:
                await response.write(data)
        except (ConnectionError, RuntimeError) as e:  # the client went away (aiohttp: reset, closing transport)
            logger.info("an audio event stream's client went away: %s", e)
            self.gone = True
            self.on_gone()

    async def _close(self, last: bytes) -> web.StreamResponse:
        """The last event, then the end of the stream, within the clip's read deadline (a client
        that stops reading is not waited for longer)."""
        self._put(last)
        self._queue.put_nowait(None)
        assert self._writer is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._writer), self.manager.limits.clip_read_timeout_s)
        except TimeoutError:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            if self.request.transport is not None:
                self.request.transport.abort()
        return self.response or web.Response(status=499)


def _error(
    status: int, message: str, code: str, *, kind: str = "invalid_request_error", param: str | None = None
) -> web.Response:
    return web.json_response(error_body(message, code, kind, param=param), status=status)
