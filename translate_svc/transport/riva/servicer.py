"""The Riva-compatible door: ``nvidia.riva.nmt.RivaTranslation`` and
``nvidia.riva.asr.RivaSpeechRecognition.StreamingRecognize`` on the gRPC port (``server.riva``).

A thin adapter, as the gRPC door's servicer is: requests arrive as bytes and are parsed here (a
message protobuf cannot parse is INVALID_ARGUMENT), converted by ``convert``, driven through the
stream core (``StreamDriver``: admission, the tenant's caps, timers, drain and metrics are every
door's), and rendered back by ``convert``. Tokens are checked by the gRPC port's interceptor before a
handler runs (``METHOD_PERMISSIONS``); here the call's tenant is the one it let in (``rpc.caller_of``:
no second lookup) and its stream is watched for revocation. Event loop only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message
from riva.client.proto import riva_asr_pb2 as asr
from riva.client.proto import riva_nmt_pb2 as nmt

from translate_svc.errors import InvalidInput, ServiceError
from translate_svc.session.calls.stream import StreamDriver
from translate_svc.session.calls.text import TextDriver, TextsResult
from translate_svc.session.events import (
    AudioIn,
    Invalid,
    StreamConfig,
    StreamEnded,
    StreamRequest,
    StreamStarted,
    TextRequest,
)
from translate_svc.session.manager import SessionManager
from translate_svc.transport.calls import (
    REQUEST_ID,
    SMALL_MESSAGE_BYTES,
    config_message_bytes,
    stream_message_bytes,
    text_request_bytes,
)
from translate_svc.transport.riva import convert
from translate_svc.transport.rpc import (
    audio_path,
    call_deadline,
    call_of,
    caller_of,
    parse_beside_audio,
    parse_message,
    read_request,
    token_key,
    unary_errors,
    write_response,
)
from translate_svc.transport.tokens.file import Permission
from translate_svc.transport.tokens.revocation import Revocation, watching
from translate_svc.transport.tokens.store import TokenStore
from translate_svc.types import AudioEncoding, AudioFormat, InterimResult, ModelCard, OutputOptions, SegmentResult

logger = logging.getLogger(__name__)

NMT_SERVICE = nmt.DESCRIPTOR.services_by_name["RivaTranslation"].full_name
ASR_SERVICE = asr.DESCRIPTOR.services_by_name["RivaSpeechRecognition"].full_name

#: the permission each Riva method needs (the gRPC port's interceptor checks them)
METHOD_PERMISSIONS: dict[str, Permission] = {
    f"/{NMT_SERVICE}/StreamingTranslateSpeechToSpeech": Permission.STREAM,
    f"/{NMT_SERVICE}/StreamingTranslateSpeechToText": Permission.STREAM,
    f"/{NMT_SERVICE}/TranslateText": Permission.TRANSLATE,
    f"/{NMT_SERVICE}/ListSupportedLanguagePairs": Permission.LANGUAGES,
    f"/{ASR_SERVICE}/StreamingRecognize": Permission.STREAM,
}


M = TypeVar("M", bound=Message)


def _parse(kind: type[M], raw: bytes, limit: int) -> M:
    return parse_message(kind, raw, limit, too_large="send smaller audio chunks")


async def _abort(context: grpc.aio.ServicerContext[Any, Any], err: ServiceError, trailers: Any = ()) -> None:
    await context.abort(convert.status_code(err), err.message, tuple(trailers))


_unary = unary_errors(_abort)


Parse = Callable[[bytes, ModelCard], StreamRequest | None]
Render = Callable[[SegmentResult | InterimResult, StreamStarted], Message]


class RivaServicer:
    """Both Riva services of the door; ``handlers()`` registers them on the gRPC port's server."""

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
        self._revocation = revocation

    def handlers(self) -> tuple[grpc.GenericRpcHandler, grpc.GenericRpcHandler]:
        stream = grpc.stream_stream_rpc_method_handler
        s2s = functools.partial(self._stream, "StreamingTranslateSpeechToSpeech", self._parse_s2s, self._render_s2s)
        s2t = functools.partial(self._stream, "StreamingTranslateSpeechToText", self._parse_s2t, self._render_s2t)
        rec = functools.partial(self._stream, "StreamingRecognize", self._parse_asr, self._render_asr)
        return (
            grpc.method_handlers_generic_handler(
                NMT_SERVICE,
                {
                    "StreamingTranslateSpeechToSpeech": stream(
                        s2s, response_serializer=nmt.StreamingTranslateSpeechToSpeechResponse.SerializeToString
                    ),
                    "StreamingTranslateSpeechToText": stream(
                        s2t, response_serializer=nmt.StreamingTranslateSpeechToTextResponse.SerializeToString
                    ),
                    # request-streaming on this side (unary calls on the wire), as the gRPC door's:
                    # admitted before the request is read, which must come by a deadline
                    "TranslateText": grpc.stream_unary_rpc_method_handler(
                        self.TranslateText, response_serializer=nmt.TranslateTextResponse.SerializeToString
                    ),
                    "ListSupportedLanguagePairs": grpc.stream_unary_rpc_method_handler(
                        self.ListSupportedLanguagePairs,
                        response_serializer=nmt.AvailableLanguageResponse.SerializeToString,
                    ),
                },
            ),
            grpc.method_handlers_generic_handler(
                ASR_SERVICE,
                {
                    "StreamingRecognize": stream(
                        rec, response_serializer=asr.StreamingRecognizeResponse.SerializeToString
                    ),
                },
            ),
        )

    # -- unary ---------------------------------------------------------------------------------------

    @_unary
    async def ListSupportedLanguagePairs(
        self, raw_requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> nmt.AvailableLanguageResponse:
        limit_s = self._m.limits.request_read_timeout_s
        deadline = call_deadline(limit_s)
        caller = caller_of(self._tokens)
        async with self._m.admit_unary(caller.tenant, token_key(caller)):
            raw = await read_request(raw_requests, deadline, limit_s, "AvailableLanguageRequest")
        _parse(nmt.AvailableLanguageRequest, raw, SMALL_MESSAGE_BYTES)  # model: one model, any name
        return convert.language_pairs(self._m.card)

    @_unary
    async def TranslateText(
        self, raw_requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> nmt.TranslateTextResponse:
        """Texts in, through the stream core's ``TextDriver`` (admission as a unary call, then as a
        Translate call once read; the engine's batches, accounting) like our own
        ``TranslateText``: text only, one target."""
        limit_s = self._m.limits.request_read_timeout_s
        deadline = call_deadline(limit_s)
        call = call_of(context, "riva.TranslateText")
        caller = caller_of(self._tokens)
        msg: nmt.TranslateTextRequest | None = None

        async def read() -> TextRequest:
            nonlocal msg
            raw = await read_request(raw_requests, deadline, limit_s, "TranslateTextRequest")
            msg = _parse(nmt.TranslateTextRequest, raw, text_request_bytes(self._m.limits))
            request = convert.text_request(msg, self._m.card, self._m.limits)
            output = OutputOptions(text=True, speech=False, transcript=False)
            return TextRequest(
                request.texts, request.source_language, (request.target_language,), output, request.terms
            )

        def render(result: TextsResult) -> nmt.TranslateTextResponse:
            assert msg is not None
            texts = [r.translations[0].text if r.translations else "" for r in result.results]
            return convert.text_response(texts, msg.target_language)

        driver = TextDriver(self._m, tenant=caller.tenant, call=call, token=token_key(caller))
        return await driver.run(read, render)

    # -- streams ---------------------------------------------------------------------------------------

    def _parse_s2s(self, raw: bytes, card: ModelCard) -> StreamRequest | None:
        msg = self._parse_stream(nmt.StreamingTranslateSpeechToSpeechRequest, raw)
        return convert.translate_request(msg, card, self._m.vad_defaults, self._m.limits)

    def _parse_s2t(self, raw: bytes, card: ModelCard) -> StreamRequest | None:
        msg = self._parse_stream(nmt.StreamingTranslateSpeechToTextRequest, raw)
        return convert.translate_request(msg, card, self._m.vad_defaults, self._m.limits)

    def _parse_asr(self, raw: bytes, card: ModelCard) -> StreamRequest | None:
        msg = self._parse_stream(asr.StreamingRecognizeRequest, raw)
        return convert.recognize_request(msg, card, self._m.vad_defaults, self._m.limits)

    @staticmethod
    def _render_s2s(r: SegmentResult | InterimResult, started: StreamStarted) -> Any:
        return convert.speech_response(r) if isinstance(r, SegmentResult) else None

    @staticmethod
    def _render_s2t(r: SegmentResult | InterimResult, started: StreamStarted) -> Any:
        return convert.text_result(r, started.task.target_languages[0])

    @staticmethod
    def _render_asr(r: SegmentResult | InterimResult, started: StreamStarted) -> Any:
        return convert.transcript_result(r, started.task.source_language or "")

    def _parse_stream(self, kind: type[M], raw: bytes) -> M:
        """An ``audio_content`` message up to ``stream_message_bytes``; any other (the config) up
        to ``config_message_bytes``, refused before protobuf parses it (security finding F3)."""
        limits = self._m.limits
        return parse_beside_audio(
            kind,
            raw,
            stream_message_bytes(limits),
            beside_limit=config_message_bytes(limits),
            audio=(audio_path(kind, "audio_content"),),
            most_fields=4,
            too_large="send smaller audio chunks",
            beside_hint="a config holds a few languages and at most so many dnt_phrases and speech_contexts "
            f"phrases ({limits.max_terms} terms of at most {limits.max_term_chars} characters): send no more",
        )

    async def _stream(
        self,
        method: str,
        parse: Parse,
        render: Callable[[SegmentResult | InterimResult, StreamStarted], Message | None],
        raw_requests: AsyncIterator[bytes],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[Message]:
        """Parse, drive, render: one answer per segment (and per caption where the method has them)."""
        trailers: tuple[tuple[str, str], ...] = ()
        try:
            call = call_of(context, f"riva.{method}")
            caller = caller_of(self._tokens)
            driver = StreamDriver(self._m, error_drain_s=self._error_drain_s, tenant=caller.tenant, call=call)
            started: StreamStarted | None = None
            with watching(self._revocation, driver, caller):
                requests = _requests(raw_requests, parse, lambda: self._m.card)
                async with contextlib.aclosing(driver.run(requests)) as events:
                    async for ev in events:
                        if isinstance(ev, StreamStarted):
                            started = ev
                            await context.send_initial_metadata(
                                ((REQUEST_ID, call.request_id), (convert.SESSION_ID, ev.session_id))
                            )
                        elif isinstance(ev, SegmentResult | InterimResult) and started is not None:
                            out = render(ev, started)
                            if out is not None:
                                await write_response(context, out)
                        elif isinstance(ev, StreamEnded):
                            trailers = convert.end_metadata(ev)
                            context.set_trailing_metadata(trailers)
                        # speech events, drain notices: Riva has no message for them (docs/riva-compat.md)
        except ServiceError as e:
            await _abort(context, e, trailers)
        return
        yield  # an async generator that yields nothing (transport/rpc.py write_response)


async def _requests(
    raw: AsyncIterator[bytes], parse: Parse, card: Callable[[], ModelCard]
) -> AsyncIterator[StreamRequest]:
    """Wire messages -> domain requests; one that cannot be used becomes ``Invalid`` (the driver ends
    an open stream with it, and reads and drops what follows). An empty buffer ends the input: what
    follows it is not read. While the model loads, the config's languages cannot be mapped: NotReady
    (UNAVAILABLE, as an ``Invalid``) ends the call. A
    LINEAR_PCM stream's first audio may be a WAV file's start (Riva's file iterator): its header is
    checked and cut (``convert.wav_payload``). OGGOPUS: Ogg pages in, one OPUS message per packet."""
    fmt: AudioFormat | None = None
    first_audio = True
    ogg: convert.OggOpusPackets | None = None
    async for data in raw:
        try:
            request = parse(data, card())
            if isinstance(request, StreamConfig):
                fmt = request.format
                if fmt.encoding == AudioEncoding.OPUS:
                    ogg = convert.OggOpusPackets(fmt.channels, "audio_content")
            elif isinstance(request, AudioIn) and ogg is not None:
                for packet in ogg.feed(request.data):  # one of our OPUS messages per packet
                    yield dataclasses.replace(request, data=packet)
                continue
            elif isinstance(request, AudioIn) and first_audio and fmt is not None:
                first_audio = False
                if fmt.encoding == AudioEncoding.LINEAR16:
                    request = dataclasses.replace(request, data=convert.wav_payload(request.data, fmt, "audio_content"))
        except ServiceError as e:  # refused (bad input, a library this server lacks): read on
            yield Invalid(e)
            continue
        if request is None:
            break
        yield request
    if ogg is not None and ogg.unfinished:  # never silently dropped: the stream ends saying so
        yield Invalid(
            InvalidInput(
                f"the audio ended inside an Ogg page ({ogg.unfinished} bytes not a whole packet): send the "
                "Ogg Opus file whole"
            )
        )
