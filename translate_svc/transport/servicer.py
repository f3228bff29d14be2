"""The gRPC Translator service: wire messages in, domain calls, wire messages out.

Errors: every ``ServiceError`` becomes the gRPC status of its code (``status_for``), with a
google.rpc.RetryInfo detail when the server is overloaded. Per-segment failures travel inside
``SegmentResult.status`` and never end the call.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc
from translate_svc.errors import InvalidInput, ServiceError
from translate_svc.observability import metrics
from translate_svc.session import SessionManager, SpeechEvent, StreamEnded, StreamSession
from translate_svc.transport import convert
from translate_svc.types import SegmentResult

logger = logging.getLogger(__name__)


def status_for(err: ServiceError) -> grpc.Status:
    details = []
    if err.retry_after_ms is not None:
        info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(nanos=err.retry_after_ms * 1_000_000))
        packed = any_pb2.Any()
        packed.Pack(info)
        details.append(packed)
    return rpc_status.to_status(
        status_pb2.Status(code=convert.RPC_CODES[err.code], message=err.message, details=details)
    )


async def _abort(context: grpc.aio.ServicerContext, err: ServiceError) -> None:
    st = status_for(err)
    await context.abort(st.code, st.details, st.trailing_metadata)


def _as_internal(exc: Exception) -> ServiceError:
    logger.exception("unexpected error in a handler")
    return ServiceError(f"internal error ({type(exc).__name__}); the server log has the details")


def unary_errors(handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Map ServiceError (and anything unexpected, as INTERNAL) to the call's gRPC status."""

    @functools.wraps(handler)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await handler(self, request, context)
        except ServiceError as e:
            await _abort(context, e)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            await _abort(context, _as_internal(e))

    return wrapper


class TranslatorServicer(pb_grpc.TranslatorServicer):
    def __init__(self, manager: SessionManager) -> None:
        self._m = manager

    @unary_errors
    async def ListLanguages(self, request: pb.ListLanguagesRequest, context: grpc.aio.ServicerContext):  # type: ignore[no-untyped-def]
        return pb.ListLanguagesResponse(
            languages=[convert.language_to_pb(lang) for lang in self._m.languages()],
            model=convert.model_info_to_pb(self._m.model_info),
        )

    @unary_errors
    async def Translate(self, request: pb.TranslateRequest, context: grpc.aio.ServicerContext):  # type: ignore[no-untyped-def]
        if not request.HasField("audio") or not request.audio.content:
            raise InvalidInput("audio.content is empty: send the clip's bytes in audio.content")
        fmt = convert.audio_format(request.audio.format, "audio.format")
        task = self._m.resolve_task(
            request.source_language,
            list(request.target_languages),
            convert.output_options(request.output, request.HasField("output")),
        )
        vad = convert.vad_settings(request.vad, self._m.vad_defaults)
        clip = await self._m.translate_clip(request.audio.content, fmt, task, vad)
        for r in clip.segments:
            metrics.observe_segment(r)
        return pb.TranslateResponse(
            segments=[convert.segment_result_to_pb(r) for r in clip.segments],
            model=convert.model_info_to_pb(self._m.model_info),
            audio_duration_ms=clip.audio_duration_ms,
        )

    async def StreamingTranslate(
        self, request_iterator: AsyncIterator[pb.StreamingTranslateRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.StreamingTranslateResponse]:
        try:
            session = await self._open(request_iterator)
        except ServiceError as e:
            await _abort(context, e)
            return
        yield pb.StreamingTranslateResponse(
            started=pb.StreamStarted(
                session_id=session.session_id,
                config=pb.StreamingConfig(
                    format=convert.audio_format_to_pb(session.fmt),
                    source_language=session.task.source_language or "",
                    target_languages=session.task.target_languages,
                    output=convert.output_options_to_pb(session.task.output),
                    vad=convert.vad_settings_to_pb(session.vad_settings),
                ),
                model=convert.model_info_to_pb(self._m.model_info),
            )
        )
        reader = asyncio.create_task(self._read(request_iterator, session), name=f"read-{session.session_id}")
        metrics.STREAMS_ACTIVE.inc()
        try:
            async for ev in session.events():
                yield _event_to_pb(ev)
            await reader
        except ServiceError as e:
            await _abort(context, e)
        except asyncio.CancelledError:
            logger.info("stream cancelled by the client", extra={"session_id": session.session_id})
            raise
        except Exception as e:
            await _abort(context, _as_internal(e))
        finally:
            metrics.STREAMS_ACTIVE.dec()
            if not reader.done():
                reader.cancel()
            session.abort()

    async def _open(self, requests: AsyncIterator[pb.StreamingTranslateRequest]) -> StreamSession:
        first = await anext(aiter(requests), None)
        if first is None:
            raise InvalidInput("the stream ended before its first message: send a `config` message first")
        kind = first.WhichOneof("request")
        if kind != "config":
            raise InvalidInput(f"the first message must be `config`, got `{kind}`: send the StreamingConfig first")
        cfg = first.config
        fmt = convert.audio_format(cfg.format, "config.format")
        task = self._m.resolve_task(
            cfg.source_language,
            list(cfg.target_languages),
            convert.output_options(cfg.output, cfg.HasField("output")),
        )
        vad = convert.vad_settings(cfg.vad, self._m.vad_defaults)
        return self._m.open_stream(fmt, task, vad)

    async def _read(self, requests: AsyncIterator[pb.StreamingTranslateRequest], session: StreamSession) -> None:
        """Request side: feed audio, apply controls; half-close finishes the session."""
        try:
            async for req in requests:
                kind = req.WhichOneof("request")
                if kind == "audio":
                    await session.feed(req.audio)
                elif kind == "control":
                    if req.control != pb.FLUSH:
                        raise InvalidInput(f"unknown control {req.control}: the only control is FLUSH")
                    await session.flush()
                elif kind == "config":
                    raise InvalidInput("`config` was sent twice: send it once, as the first message")
                else:
                    raise InvalidInput("empty request message: set one of config, audio or control")
            await session.finish()
        except ServiceError as e:
            await session.fail(e)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug must end the stream, not leave the client waiting
            await session.fail(_as_internal(e))


def _event_to_pb(ev: SpeechEvent | SegmentResult | StreamEnded) -> pb.StreamingTranslateResponse:
    if isinstance(ev, SegmentResult):
        metrics.observe_segment(ev)
        return pb.StreamingTranslateResponse(segment=convert.segment_result_to_pb(ev))
    if isinstance(ev, SpeechEvent):
        kind = pb.SpeechEvent.SPEECH_STARTED if ev.started else pb.SpeechEvent.SPEECH_ENDED
        return pb.StreamingTranslateResponse(speech_event=pb.SpeechEvent(type=kind, offset_ms=ev.offset_ms))
    return pb.StreamingTranslateResponse(
        ended=pb.StreamEnd(segments_total=ev.segments_total, audio_received_ms=ev.audio_received_ms)
    )
