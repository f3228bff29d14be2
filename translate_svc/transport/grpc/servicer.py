"""The gRPC Translator service: wire messages in, domain calls, wire messages out.

Requests arrive as raw bytes and are parsed here (``_parse``), so a message protobuf cannot parse
gets INVALID_ARGUMENT with a short message instead of grpc's UNKNOWN naming a Python class.

A thin adapter: it parses wire messages into domain requests (``convert``), drives the session
layer (``StreamDriver`` for streams, ``ClipDriver`` for clips, ``TextDriver`` for texts; the
``SessionManager`` only for ListLanguages' model card) and renders the
events back (``convert``). The stream protocol -- first message, resume, timers, drain, end reasons
and their texts -- is not here but in ``session/calls/stream.py``, shared by every door.

Errors: every ``ServiceError`` becomes the gRPC status of its code (``status_for``), with a
google.rpc.RetryInfo detail when retrying helps. Per-segment failures travel inside
``SegmentResult.status`` and never end the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
from collections.abc import AsyncIterator
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

import grpc
from google.protobuf.message import Message

from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.errors import InvalidInput, ServiceError
from translate_svc.glossaries.naming import glossary_ids
from translate_svc.observability import metrics, tracing
from translate_svc.observability.access import CallInfo
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
from translate_svc.session.calls.clip import ClipDriver, ClipRequest, check_clip_bytes
from translate_svc.session.calls.detect import DetectDriver
from translate_svc.session.calls.listen import ListenDriver, ListenRequest
from translate_svc.session.rooms.listener import ListenCut, Listener, ListenEvent, RoomOutput
from translate_svc.settings import LimitsSettings
from translate_svc.transport.calls import (
    LISTEN_REQUEST_BYTES,
    REQUEST_ID,
    SMALL_MESSAGE_BYTES,
    config_message_bytes,
    stream_message_bytes,
    text_request_bytes,
)
from translate_svc.transport.grpc import clips, convert, server_info
from translate_svc.transport.grpc.auth import SERVICE_NAME as SERVICE_NAME  # re-exported
from translate_svc.transport.proto_options import channel_mode, ear_options, output_options, speech_fit
from translate_svc.transport.rpc import (
    audio_path,
    call_deadline,
    call_of,
    caller_of,
    parse_beside_audio,
    parse_message,
    read_one,
    read_request,
    token_key,
    unary_errors,
    write_response,
)
from translate_svc.transport.rpc_errors import status_for
from translate_svc.transport.tokens.revocation import LISTEN_REVOKED, Revocation, may_listen_to, watching
from translate_svc.transport.tokens.store import TokenStore
from translate_svc.types import DubFit
from translate_svc.vad.segmenter import SegmenterConfig

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)
T = TypeVar("T")


async def _abort(context: grpc.aio.ServicerContext[Any, Any], err: ServiceError) -> None:
    st = status_for(err)
    await context.abort(st.code, st.details, st.trailing_metadata)


_UNPARSABLE = " (protobuf could not parse it): generate the client from this server's translate.proto"


def _parse(kind: type[M], raw: bytes, limit: int | None = None) -> M:
    """Client bytes -> message; INVALID_ARGUMENT (not UNKNOWN) when protobuf cannot parse them, or
    when they are over the method's ``limit``."""
    return parse_message(
        kind,
        raw,
        limit,
        too_large="send smaller messages (audio chunks of at most ServerLimits.max_chunk_bytes)",
        unparsable=_UNPARSABLE,
    )


#: where the audio of a stream message is (``audio``, ``packet.data``) and of a clip (``audio.content``)
_STREAM_AUDIO = tuple(audio_path(pb.StreamingTranslateRequest, f) for f in ("audio", "packet.data"))
_CLIP_AUDIO = (audio_path(pb.TranslateRequest, "audio.content"),)
_TERMS_AT_MOST = "at most ServerLimits.max_terms terms and max_glossary_entries glossary entries of max_term_chars"


_STREAM_TOO_LARGE = "send smaller messages (audio chunks of at most ServerLimits.max_chunk_bytes)"
_STREAM_BESIDE_HINT = f"a config or an update holds a few languages and {_TERMS_AT_MOST}: send no more"


def _parse_stream(raw: bytes, most: int, beside: int) -> pb.StreamingTranslateRequest:
    """A stream message: an audio chunk up to ``most`` bytes (``stream_message_bytes``); any other
    (a config, an update) up to ``beside`` (``config_message_bytes``), refused before it is parsed."""
    return parse_beside_audio(
        pb.StreamingTranslateRequest,
        raw,
        most,
        beside_limit=beside,
        audio=_STREAM_AUDIO,
        most_fields=4,
        too_large=_STREAM_TOO_LARGE,
        beside_hint=_STREAM_BESIDE_HINT,
        unparsable=_UNPARSABLE,
    )


def _parse_clip(raw: bytes, limits: LimitsSettings, limit: int | None = None) -> pb.TranslateRequest:
    """A clip (or, with ``limit``, one TranslateChunked message of it): as large as the port (or
    ``limit``) takes, but no more than ``config_message_bytes`` beside its audio (its languages,
    terms and options), refused before it is parsed."""
    # its fields: a term, a target each
    most = limits.max_terms + limits.max_glossary_entries + limits.max_target_languages + 8
    return parse_beside_audio(
        pb.TranslateRequest,
        raw,
        limit,
        beside_limit=config_message_bytes(limits),
        audio=_CLIP_AUDIO,
        most_fields=most,
        too_large="send the clip in TranslateChunked messages of at most ServerLimits.max_chunk_bytes of audio",
        beside_hint=f"beside its audio a request holds a few languages and {_TERMS_AT_MOST}: send no more",
        unparsable=_UNPARSABLE,
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
        fit_default: DubFit | None = None,
    ) -> None:
        """``fit_default``: a clip's ``fit`` bound where the request leaves it unset (the server's
        ``jobs.fit_slowest`` and ``jobs.fit_fastest``)."""
        self._m = manager
        self._fit_default = fit_default or DubFit()
        self._error_drain_s = error_drain_s
        self._tokens = tokens
        #: the host's, shared by every door: a token removed from the file ends the streams it opened
        self._revocation = revocation
        #: each room output's ListenResponse, encoded once and sent to every listener of its language
        #: (a weak key: an entry goes with the output, once no listener holds it)
        self._encoded: WeakKeyDictionary[RoomOutput, bytes] = WeakKeyDictionary()

    def handler(self) -> grpc.GenericRpcHandler:
        """The service's method handlers; requests stay bytes (parsed by ``_parse``).

        Every method is request-streaming on this side, whatever its wire (docs/security.md): a
        handler runs as its call opens, so the call is admitted (its caps, its tenant's and its
        token's) before its request is read, and that request must arrive within a deadline
        counted from the call's start; a unary handler would run only once a client chose to send
        its whole message, and hold its call slot until then."""
        unary = grpc.stream_unary_rpc_method_handler
        return grpc.method_handlers_generic_handler(
            SERVICE_NAME,
            {
                "ListLanguages": unary(
                    self.ListLanguages, response_serializer=pb.ListLanguagesResponse.SerializeToString
                ),
                "Translate": unary(self.Translate, response_serializer=pb.TranslateResponse.SerializeToString),
                "TranslateChunked": unary(
                    self.TranslateChunked, response_serializer=pb.TranslateResponse.SerializeToString
                ),
                "StreamingTranslate": grpc.stream_stream_rpc_method_handler(
                    self.StreamingTranslate, response_serializer=pb.StreamingTranslateResponse.SerializeToString
                ),
                "TranslateText": unary(
                    self.TranslateText, response_serializer=pb.TranslateTextResponse.SerializeToString
                ),
                # responses written as bytes: one encoding per room language, shared by its listeners
                "Listen": grpc.stream_stream_rpc_method_handler(self.Listen),
                "DetectSynthetic": unary(
                    self.DetectSynthetic, response_serializer=pb.DetectSyntheticResponse.SerializeToString
                ),
            },
        )

    @unary
    async def ListLanguages(
        self, raw_requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ListLanguagesResponse:
        limit_s = self._m.limits.request_read_timeout_s
        deadline = call_deadline(limit_s)
        caller = caller_of(self._tokens)
        async with self._m.admit_unary(caller.tenant, token_key(caller)):
            raw = await read_request(raw_requests, deadline, limit_s, "ListLanguagesRequest")
        _parse(pb.ListLanguagesRequest, raw, SMALL_MESSAGE_BYTES)
        card = self._m.card
        return pb.ListLanguagesResponse(
            languages=[server_info.language_to_pb(lang) for lang in card.languages],
            model=server_info.model_card_to_pb(card),
            limits=server_info.limits_to_pb(self._m.limits, self._m.glossaries.kept_limits()),
            language_identifier=server_info.identifier_to_pb(card),
            speech_watermark=card.speech_watermark,
        )

    @unary
    async def Translate(
        self, raw_requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.TranslateResponse:
        """Admitted (``max_translate_calls``, the tenant's caps) before the clip is read: the call
        itself is the stream core's (``ClipDriver``); this reads, converts and renders. Its one
        message is at most the port's receive limit (``limits.max_receive_message_bytes``)."""
        call = await _call_info(context, "Translate")
        driver = ClipDriver(self._m, tenant=caller_of(self._tokens).tenant, call=call)
        return await driver.run(functools.partial(self._read_clip, raw_requests), self._render_clip)

    @unary
    async def TranslateChunked(
        self, raw_requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.TranslateResponse:
        """``Translate`` for a clip sent in chunks (up to ``limits.max_message_bytes``): the same
        driver, reading the request and then the clip's later bytes."""
        call = await _call_info(context, "TranslateChunked")
        driver = ClipDriver(self._m, tenant=caller_of(self._tokens).tenant, call=call)
        return await driver.run(functools.partial(self._read_chunks, raw_requests), self._render_clip)

    async def _read_clip(self, raw_requests: AsyncIterator[bytes]) -> ClipRequest:
        """The call's one message, as a clip. Its bytes are held once at a time: the message until
        it is parsed, then the clip's bytes (``ClipRequest.take_content``) until they are decoded."""
        messages = aiter(raw_requests)
        raw = await anext(messages, None)
        if raw is None:
            raise InvalidInput("the call carried no TranslateRequest: send one")
        request = _parse_clip(raw, self._m.limits)
        del raw
        # read to the end (a unary client has half-closed): gRPC's reader holds the last message it
        # gave until it is resumed, so not resuming it would keep the clip's bytes past the call
        if await anext(messages, None) is not None:
            raise InvalidInput("Translate takes one TranslateRequest: send one message (or use TranslateChunked)")
        if not request.HasField("audio") or not request.audio.content:
            raise InvalidInput("audio.content is empty: send the clip's bytes in audio.content")
        content = request.audio.content
        request.audio.ClearField("content")
        return self._clip_request(request, content)

    async def _read_chunks(self, raw_requests: AsyncIterator[bytes]) -> ClipRequest:
        """The request, then the clip's later bytes (``clips.continuation``), each message at most a
        stream message (``stream_message_bytes``); the clip's size is checked as each chunk comes,
        before it is kept, so the call holds at most ``limits.max_message_bytes`` of it."""
        limits = self._m.limits
        per_message = stream_message_bytes(limits)
        messages = aiter(raw_requests)
        raw = await anext(messages, None)
        if raw is None:
            raise InvalidInput("the call carried no TranslateRequest: send the request, then the clip's later bytes")
        request = _parse_clip(raw, limits, per_message)
        del raw
        chunks = [request.audio.content]
        request.audio.ClearField("content")
        size = len(chunks[0])
        check_clip_bytes(size, limits.max_message_bytes)
        async for raw in messages:
            chunk = clips.continuation(_parse_clip(raw, limits, per_message))
            size += len(chunk)
            check_clip_bytes(size, limits.max_message_bytes)
            chunks.append(chunk)
        if not size:
            raise InvalidInput("the clip is empty: send its bytes in audio.content (of the first or later messages)")
        content = b"".join(chunks)
        del chunks
        return self._clip_request(request, content)

    def _clip_request(self, request: pb.TranslateRequest, content: bytes) -> ClipRequest:
        convert.check_lists(request, self._m.limits)
        separate = channel_mode(request.channel_mode, "channel_mode")
        detect = convert.detection(request.language_detection, request.HasField("language_detection"))
        output = output_options(request.output, request.HasField("output"))
        fit = speech_fit(request.fit, request.HasField("fit"), self._fit_default)
        return ClipRequest(
            content,
            convert.audio_format(request.audio.format, "audio.format"),
            request.source_language,
            tuple(request.target_languages),
            output if fit is None else dataclasses.replace(output, fit=fit),
            convert.vad_settings(request.vad, self._m.vad_defaults),
            tuple(detect) if detect is not None else None,
            convert.terms(request.terms),
            ear_options(request, "request"),
            glossary_ids(request.glossaries),
            convert.conversation(request),
            convert.stated_language(request),
            convert.parties(request),
            separate,
        )

    def _render_clip(self, clip: ClipResult) -> pb.TranslateResponse:
        response = pb.TranslateResponse(
            segments=[convert.segment_result_to_pb(r) for r in clip.segments],
            model=server_info.model_card_to_pb(self._m.card),
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
    async def DetectSynthetic(
        self, raw_requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.DetectSyntheticResponse:
        """Admitted as a Translate call, then the clip searched for the speech watermark (``DetectDriver``)."""
        driver = DetectDriver(
            self._m, tenant=caller_of(self._tokens).tenant, call=await _call_info(context, "DetectSynthetic")
        )
        return await driver.run(lambda: clips.read_detect(raw_requests, _UNPARSABLE), clips.render_detect)

    @unary
    async def TranslateText(
        self, raw_requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.TranslateTextResponse:
        """Texts in: the call is the stream core's (``TextDriver``: admission as a unary call, then
        as a Translate call once its texts are read; the engine; accounting); this reads, parses,
        converts and renders."""
        limit_s = self._m.limits.request_read_timeout_s
        deadline = call_deadline(limit_s)
        call = await _call_info(context, "TranslateText")
        caller = caller_of(self._tokens)
        driver = TextDriver(self._m, tenant=caller.tenant, call=call, token=token_key(caller))

        async def read() -> TextRequest:
            raw = await read_request(raw_requests, deadline, limit_s, "TranslateTextRequest")
            return self._read_texts(raw)

        return await driver.run(read, self._render_texts)

    def _read_texts(self, raw: bytes) -> TextRequest:
        request = _parse(pb.TranslateTextRequest, raw, text_request_bytes(self._m.limits))
        convert.check_lists(request, self._m.limits)
        return TextRequest(
            tuple(request.texts),
            request.source_language,
            tuple(request.target_languages),
            output_options(request.output, request.HasField("output")),
            convert.terms(request.terms),
            glossary_ids(request.glossaries),
        )

    def _render_texts(self, result: TextsResult) -> pb.TranslateTextResponse:
        response = pb.TranslateTextResponse(
            results=[convert.text_result_to_pb(r) for r in result.results],
            model=server_info.model_card_to_pb(self._m.card),
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
            caller = caller_of(self._tokens)
            requests = _requests(raw_requests, self._m.vad_defaults, self._m.limits)
            driver = StreamDriver(
                self._m, error_drain_s=self._error_drain_s, tenant=caller.tenant, call=call, rooms=caller.rooms
            )
            with watching(self._revocation, driver, caller):
                async with contextlib.aclosing(driver.run(requests)) as events:
                    async for ev in events:
                        await write_response(context, convert.stream_event_to_pb(ev))
        except ServiceError as e:
            await _abort(context, e)
        return
        yield  # an async generator that yields nothing (see write_response)

    async def Listen(
        self, raw_requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        """A room's output in one language (``session/rooms/``) through the listen core
        (``session.ListenDriver``: admission by the token's and tenant's unary caps before the
        request is read, within ``limits.request_read_timeout_s`` of the call's start, the
        listener, the access line): the request, read as a unary call's (the token interceptor
        let the call in only with rights to listen to some room; at most
        ``LISTEN_REQUEST_BYTES``), then the listener's events until the client cancels, the server
        drains, or the listen ends (its deadline, its token revoked). Each room output is encoded
        once per language (this door's ``_encoded``) and written as bytes to every listener."""
        started = asyncio.get_running_loop().time()
        try:
            call = await _call_info(context, "Listen")
            caller = caller_of(self._tokens)
        except ServiceError as e:
            await _abort(context, e)
            return
        driver = ListenDriver(
            self._m, tenant=caller.tenant, rights=caller.rooms, call=call, token=token_key(caller), started=started
        )

        async def read() -> ListenRequest:
            raw = await read_one(raw_requests, "ListenRequest")
            request = parse_message(
                pb.ListenRequest,
                raw,
                LISTEN_REQUEST_BYTES,
                too_large="a ListenRequest holds a room name, a language, a participant id and a speed: send no more",
                unparsable=_UNPARSABLE,
            )
            speed = request.speed if request.HasField("speed") else None
            return ListenRequest(request.room, request.language, request.participant, speed, request.original_audio)

        async def send(ev: ListenEvent) -> None:
            await write_response(context, _listen_bytes(ev, self._encoded))

        def watch(listener: Listener, room: str) -> contextlib.AbstractContextManager[None]:
            # its token removed from the file (or its listen= right taken): ended UNAUTHENTICATED
            allowed = may_listen_to(room)
            return watching(self._revocation, listener, caller, allowed=allowed, message=LISTEN_REVOKED)

        try:
            await driver.run(read, send, grace_s=self._error_drain_s, watch=watch)
        except ListenCut:  # ended while its client read nothing: the call is dropped, as a cancel
            raise asyncio.CancelledError("the listen ended and its client reads nothing") from None
        except ServiceError as e:
            await _abort(context, e)
        return
        yield


def _listen_bytes(ev: ListenEvent, encoded: WeakKeyDictionary[RoomOutput, bytes]) -> bytes:
    """A listener's event as the bytes of its ``ListenResponse``; a room output encoded once per
    language (kept in ``encoded``) and shared by its listeners."""
    if isinstance(ev, RoomOutput):
        data = encoded.get(ev)
        if data is None:
            data = encoded[ev] = convert.listen_event_to_pb(ev).SerializeToString()
        metrics.room_sent("grpc", len(data))
        return data
    message: bytes = convert.listen_event_to_pb(ev).SerializeToString()
    return message


async def _call_info(context: grpc.aio.ServicerContext[Any, Any], method: str) -> CallInfo:
    """The call's request id (the caller's ``x-request-id``, or a new one), sent back at once in
    the initial metadata, and who called."""
    call = call_of(context, method)
    tracing.set_call_attributes(**{"translate_svc.request_id": call.request_id})
    await context.send_initial_metadata(((REQUEST_ID, call.request_id),))
    return call


async def _requests(
    raw: AsyncIterator[bytes], vad_defaults: SegmenterConfig, limits: LimitsSettings
) -> AsyncIterator[StreamRequest]:
    """Wire messages -> domain requests; one that cannot be used becomes ``Invalid`` (the driver
    decides: it ends an open stream, and is dropped after the end), so reading can go on."""
    most, beside = stream_message_bytes(limits), config_message_bytes(limits)  # once a stream, not a message
    async for data in raw:
        try:
            yield convert.stream_request(_parse_stream(data, most, beside), vad_defaults, limits)
        except ServiceError as e:  # refused (bad input, a library this server lacks): read on
            yield Invalid(e)
