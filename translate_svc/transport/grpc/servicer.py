"""The gRPC Translator service: wire messages in, domain calls, wire messages out.

Requests arrive as raw bytes and are parsed here (``_parse``), so a message protobuf cannot parse
gets INVALID_ARGUMENT with a short message instead of grpc's UNKNOWN naming a Python class.

A thin adapter: it parses wire messages into domain requests (``convert``), drives the session
layer (``StreamDriver`` for streams, ``SessionManager`` for the unary calls) and renders the
events back (``convert``). The stream protocol -- first message, resume, timers, drain, end reasons
and their texts -- is not here but in ``session/driver.py``, shared by every door.

Errors: every ``ServiceError`` becomes the gRPC status of its code (``status_for``), with a
google.rpc.RetryInfo detail when retrying helps. Per-segment failures travel inside
``SegmentResult.status`` and never end the call.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message
from grpc_status import rpc_status

from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.errors import InvalidInput, ServiceError
from translate_svc.observability import tracing
from translate_svc.observability.access import CallInfo, new_request_id
from translate_svc.session import (
    ClipResult,
    Invalid,
    SessionManager,
    StreamDriver,
    StreamRequest,
    TextDriver,
    TextRequest,
    TextsResult,
)
from translate_svc.session.clip import ClipDriver, ClipRequest
from translate_svc.transport.grpc import convert
from translate_svc.transport.grpc.auth import SERVICE_NAME as SERVICE_NAME  # re-exported
from translate_svc.transport.rpc import bearer_token, parse_message, tenant_of, unary_errors, write_response
from translate_svc.transport.tokens import Revocation, TokenStore
from translate_svc.vad.segmenter import SegmenterConfig

logger = logging.getLogger(__name__)

#: the metadata key of a call's request id, both ways
REQUEST_ID = "x-request-id"

M = TypeVar("M", bound=Message)
T = TypeVar("T")

SMALL_MESSAGE_BYTES = convert.SMALL_MESSAGE_BYTES


def status_for(err: ServiceError) -> grpc.Status:
    return rpc_status.to_status(convert.error_status(err))


async def _abort(context: grpc.aio.ServicerContext[Any, Any], err: ServiceError) -> None:
    st = status_for(err)
    await context.abort(st.code, st.details, st.trailing_metadata)


def _parse(kind: type[M], raw: bytes, limit: int | None = None) -> M:
    """Client bytes -> message; INVALID_ARGUMENT (not UNKNOWN) when protobuf cannot parse them, or
    when they are over the method's ``limit``."""
    return parse_message(
        kind,
        raw,
        limit,
        too_large="send smaller messages (audio chunks of at most ServerLimits.max_chunk_bytes)",
        unparsable=" (protobuf could not parse it): generate the client from this server's translate.proto",
    )


#: a ServiceError (and anything unexpected, as INTERNAL) becomes the call's gRPC status
unary = unary_errors(_abort)


class TranslatorServicer:
    def __init__(
        self,
        manager: SessionManager,
        *,
        error_drain_s: float = 2.0,
        tokens: TokenStore | None = None,
        revocation: Revocation | None = None,
    ) -> None:
        self._m = manager
        self._error_drain_s = error_drain_s
        self._tokens = tokens
        #: the host's, shared by every door: a token removed from the file ends the streams it opened
        self._revocation = revocation

    def handler(self) -> grpc.GenericRpcHandler:
        """The service's method handlers; requests stay bytes (parsed by ``_parse``)."""
        return grpc.method_handlers_generic_handler(
            SERVICE_NAME,
            {
                "ListLanguages": grpc.unary_unary_rpc_method_handler(
                    self.ListLanguages, response_serializer=pb.ListLanguagesResponse.SerializeToString
                ),
                # request-streaming on this side (the wire is a unary call's): the clip is read only
                # once the call is admitted, so calls over the caps cost no message
                "Translate": grpc.stream_unary_rpc_method_handler(
                    self.Translate, response_serializer=pb.TranslateResponse.SerializeToString
                ),
                "StreamingTranslate": grpc.stream_stream_rpc_method_handler(
                    self.StreamingTranslate, response_serializer=pb.StreamingTranslateResponse.SerializeToString
                ),
                "TranslateText": grpc.unary_unary_rpc_method_handler(
                    self.TranslateText, response_serializer=pb.TranslateTextResponse.SerializeToString
                ),
            },
        )

    @unary
    async def ListLanguages(self, raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> pb.ListLanguagesResponse:
        _parse(pb.ListLanguagesRequest, raw, SMALL_MESSAGE_BYTES)
        card = self._m.card
        return pb.ListLanguagesResponse(
            languages=[convert.language_to_pb(lang) for lang in card.languages],
            model=convert.model_card_to_pb(card),
            limits=convert.limits_to_pb(self._m.limits),
            language_identifier=convert.identifier_to_pb(card),
        )

    @unary
    async def Translate(
        self, raw_requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.TranslateResponse:
        """Admitted (``max_translate_calls``, the tenant's caps) before the clip is read: the call
        itself is the stream core's (``ClipDriver``); this reads, converts and renders."""
        call = await _call_info(context, "Translate")
        tenant = tenant_of(self._tokens, context.invocation_metadata())
        driver = ClipDriver(self._m, tenant=tenant, call=call)
        return await driver.run(functools.partial(self._read_clip, raw_requests), self._render_clip)

    async def _read_clip(self, raw_requests: AsyncIterator[bytes]) -> ClipRequest:
        """The call's one message, as a clip. Its bytes are held once at a time: the message until
        it is parsed, then the clip's bytes (``ClipRequest.take_content``) until they are decoded."""
        messages = aiter(raw_requests)
        raw = await anext(messages, None)
        if raw is None:
            raise InvalidInput("the call carried no TranslateRequest: send one")
        request = _parse(pb.TranslateRequest, raw)
        del raw
        # read to the end (a unary client has half-closed): gRPC's reader holds the last message it
        # gave until it is resumed, so not resuming it would keep the clip's bytes past the call
        if await anext(messages, None) is not None:
            raise InvalidInput("Translate takes one TranslateRequest: send one message")
        if not request.HasField("audio") or not request.audio.content:
            raise InvalidInput("audio.content is empty: send the clip's bytes in audio.content")
        fmt = convert.audio_format(request.audio.format, "audio.format")
        task = self._m.resolve_task(
            request.source_language,
            list(request.target_languages),
            convert.output_options(request.output, request.HasField("output")),
            convert.detection(request.language_detection, request.HasField("language_detection")),
            convert.terms(request.terms),
        )
        vad = convert.vad_settings(request.vad, self._m.vad_defaults)
        return ClipRequest(request.audio.content, fmt, task, vad)

    def _render_clip(self, clip: ClipResult) -> pb.TranslateResponse:
        response = pb.TranslateResponse(
            segments=[convert.segment_result_to_pb(r) for r in clip.segments],
            model=convert.model_card_to_pb(self._m.card),
            audio_duration_ms=clip.audio_duration_ms,
        )
        size, limit = response.ByteSize(), self._m.limits.max_message_bytes
        if size > limit:  # the up-front estimate (session.task.check_answer_size) was beaten
            raise InvalidInput(
                f"the answer is {size} bytes, over this server's {limit}-byte message limit: ask for fewer "
                "targets or a lower speech_sample_rate_hz, or use StreamingTranslate"
            )
        return response

    @unary
    async def TranslateText(self, raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> pb.TranslateTextResponse:
        """Texts in: the call is the stream core's (``TextDriver``: admission as a Translate call,
        the engine, accounting); this parses, converts and renders."""
        call = await _call_info(context, "TranslateText")
        tenant = tenant_of(self._tokens, context.invocation_metadata())
        driver = TextDriver(self._m, tenant=tenant, call=call)
        return await driver.run(functools.partial(self._read_texts, raw), self._render_texts)

    def _read_texts(self, raw: bytes) -> TextRequest:
        limits = self._m.limits
        # each character is at most 4 bytes of UTF-8, each text a few bytes of framing
        limit = SMALL_MESSAGE_BYTES + 4 * limits.max_text_request_chars + 8 * limits.max_texts
        request = _parse(pb.TranslateTextRequest, raw, limit)
        return self._m.resolve_text(
            list(request.texts),
            request.source_language,
            list(request.target_languages),
            convert.output_options(request.output, request.HasField("output")),
            convert.terms(request.terms),
        )

    def _render_texts(self, result: TextsResult) -> pb.TranslateTextResponse:
        response = pb.TranslateTextResponse(
            results=[convert.text_result_to_pb(r) for r in result.results], model=convert.model_card_to_pb(self._m.card)
        )
        size, limit = response.ByteSize(), self._m.limits.max_message_bytes
        if size > limit:  # the up-front estimate (session.text) was beaten
            raise InvalidInput(
                f"the answer is {size} bytes, over this server's {limit}-byte message limit: send fewer or "
                "shorter texts, fewer targets or a lower speech_sample_rate_hz"
            )
        return response

    async def StreamingTranslate(
        self, raw_requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.StreamingTranslateResponse]:
        """Parse, drive, render: the stream protocol itself is ``StreamDriver``'s. Responses are
        written here (``write_response``), not yielded: a write that fails because the client
        cancelled or went away ends the call as a cancel, not as a server error."""
        try:
            call = await _call_info(context, "StreamingTranslate")
            tenant = tenant_of(self._tokens, context.invocation_metadata())
            limit = SMALL_MESSAGE_BYTES + self._m.limits.max_chunk_bytes
            requests = _requests(raw_requests, self._m.vad_defaults, limit)
            driver = StreamDriver(self._m, error_drain_s=self._error_drain_s, tenant=tenant, call=call)
            watching: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
            if self._revocation is not None:
                watching = self._revocation.watching(driver, bearer_token(context.invocation_metadata()))
            with watching:
                async with contextlib.aclosing(driver.run(requests)) as events:
                    async for ev in events:
                        await write_response(context, convert.stream_event_to_pb(ev))
        except ServiceError as e:
            await _abort(context, e)
        return
        yield  # an async generator that yields nothing (see write_response)


async def _call_info(context: grpc.aio.ServicerContext[Any, Any], method: str) -> CallInfo:
    """The call's request id (the caller's ``x-request-id``, or a new one), sent back at once in
    the initial metadata, and who called."""
    given = next((v for k, v in context.invocation_metadata() or () if k == REQUEST_ID and isinstance(v, str)), None)
    call = CallInfo(new_request_id(given), method, context.peer())
    tracing.set_call_attributes(**{"translate_svc.request_id": call.request_id})
    await context.send_initial_metadata(((REQUEST_ID, call.request_id),))
    return call


async def _requests(
    raw: AsyncIterator[bytes], vad_defaults: SegmenterConfig, limit: int
) -> AsyncIterator[StreamRequest]:
    """Wire messages -> domain requests; one that cannot be used becomes ``Invalid`` (the driver
    decides: it ends an open stream, and is dropped after the end), so reading can go on."""
    async for data in raw:
        try:
            yield convert.stream_request(_parse(pb.StreamingTranslateRequest, data, limit), vad_defaults)
        except InvalidInput as e:
            yield Invalid(e)
