"""The gRPC Translator service: wire messages in, domain calls, wire messages out.

Requests arrive as raw bytes and are parsed here (``_parse``), so a message protobuf cannot parse
gets INVALID_ARGUMENT with a short message instead of grpc's UNKNOWN naming a Python class.

Errors: every ``ServiceError`` becomes the gRPC status of its code (``status_for``), with a
google.rpc.RetryInfo detail when retrying helps. Per-segment failures travel inside
``SegmentResult.status`` and never end the call. A stream that fails keeps reading (and dropping)
what its client still sends, up to ``error_drain_s``, before it ends: grpc-python's asyncio
client replaces the server's status with ``INTERNAL`` when one of its writes fails after the call
ended (grpc/grpc#36066), so ending while a client is mid-burst would lose the real status.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.errors import InvalidInput, LimitReached, ServiceError, ShuttingDown
from translate_svc.observability import metrics
from translate_svc.session import Draining, Resume, SessionManager, SpeechEvent, StreamEnded, StreamSession
from translate_svc.transport import convert
from translate_svc.types import InterimResult, SegmentResult

logger = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Translator"].full_name
M = TypeVar("M", bound=Message)


def status_for(err: ServiceError) -> grpc.Status:
    details = []
    if err.retry_after_ms is not None:
        delay = duration_pb2.Duration()
        delay.FromMilliseconds(err.retry_after_ms)
        packed = any_pb2.Any()
        packed.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
        details.append(packed)
    return rpc_status.to_status(
        status_pb2.Status(code=convert.RPC_CODES[err.code], message=err.message, details=details)
    )


async def _abort(context: grpc.aio.ServicerContext[Any, Any], err: ServiceError) -> None:
    st = status_for(err)
    await context.abort(st.code, st.details, st.trailing_metadata)


def _as_internal(exc: BaseException) -> ServiceError:
    logger.error("unexpected error in a handler", exc_info=exc)
    return ServiceError("internal error; the server log has the details")


def _parse(kind: type[M], raw: bytes) -> M:
    """Client bytes -> message; INVALID_ARGUMENT (not UNKNOWN) when protobuf cannot parse them."""
    try:
        message: M = kind.FromString(raw)
        return message
    except (DecodeError, ValueError, RuntimeError):
        raise InvalidInput(
            f"the request is not a valid {kind.DESCRIPTOR.full_name} message (protobuf could not parse it): "
            "generate the client from this server's translate.proto"
        ) from None


def unary_errors(handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Map ServiceError (and anything unexpected, as INTERNAL) to the call's gRPC status."""

    @functools.wraps(handler)
    async def wrapper(self: Any, raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            return await handler(self, raw, context)
        except ServiceError as e:
            await _abort(context, e)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            await _abort(context, _as_internal(e))

    return wrapper


class TranslatorServicer:
    def __init__(self, manager: SessionManager, *, error_drain_s: float = 2.0) -> None:
        self._m = manager
        self._error_drain_s = error_drain_s

    def handler(self) -> grpc.GenericRpcHandler:
        """The service's method handlers; requests stay bytes (parsed by ``_parse``)."""
        return grpc.method_handlers_generic_handler(
            SERVICE_NAME,
            {
                "ListLanguages": grpc.unary_unary_rpc_method_handler(
                    self.ListLanguages, response_serializer=pb.ListLanguagesResponse.SerializeToString
                ),
                "Translate": grpc.unary_unary_rpc_method_handler(
                    self.Translate, response_serializer=pb.TranslateResponse.SerializeToString
                ),
                "StreamingTranslate": grpc.stream_stream_rpc_method_handler(
                    self.StreamingTranslate, response_serializer=pb.StreamingTranslateResponse.SerializeToString
                ),
            },
        )

    @unary_errors
    async def ListLanguages(self, raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> pb.ListLanguagesResponse:
        _parse(pb.ListLanguagesRequest, raw)
        card = self._m.card
        return pb.ListLanguagesResponse(
            languages=[convert.language_to_pb(lang) for lang in card.languages],
            model=convert.model_card_to_pb(card),
            limits=convert.limits_to_pb(self._m.limits),
        )

    @unary_errors
    async def Translate(self, raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> pb.TranslateResponse:
        request = _parse(pb.TranslateRequest, raw)
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
        del request, raw  # the clip's bytes: not needed while the answer is built
        for r in clip.segments:
            metrics.observe_segment(r)
        response = pb.TranslateResponse(
            segments=[convert.segment_result_to_pb(r) for r in clip.segments],
            model=convert.model_card_to_pb(self._m.card),
            audio_duration_ms=clip.audio_duration_ms,
        )
        size, limit = response.ByteSize(), self._m.limits.max_message_bytes
        if size > limit:  # the up-front estimate (session._check_answer_size) was beaten
            raise InvalidInput(
                f"the answer is {size} bytes, over this server's {limit}-byte message limit: ask for fewer "
                "targets or a lower speech_sample_rate_hz, or use StreamingTranslate"
            )
        return response

    async def StreamingTranslate(
        self, raw_requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.StreamingTranslateResponse]:
        requests = _parsed(raw_requests)
        try:
            session = await self._open(requests)
        except ServiceError as e:
            await self._end_with(context, raw_requests, e)
            return
        reader = asyncio.create_task(self._read(requests, session), name=f"read-{session.session_id}")
        resume_pb = session.resume_pb
        metrics.STREAMS_ACTIVE.inc()
        error: ServiceError | None = None
        try:
            yield pb.StreamingTranslateResponse(
                started=pb.StreamStarted(
                    session_id=session.session_id,
                    config=pb.StreamingConfig(
                        format=convert.audio_format_to_pb(session.fmt),
                        source_language=session.task.source_language or "",
                        target_languages=session.task.target_languages,
                        output=convert.output_options_to_pb(session.task.output),
                        vad=convert.vad_settings_to_pb(session.vad_settings),
                        interim_interval_ms=session.interim_interval_ms,
                        resume=resume_pb,
                    ),
                    model=convert.model_card_to_pb(self._m.card),
                    limits=convert.limits_to_pb(self._m.limits),
                    resume_token=session.resume_token,
                )
            )
            async for ev in session.events():
                yield _event_to_pb(ev)
            await reader
        except ServiceError as e:
            error = e
        except asyncio.CancelledError:
            logger.info("stream cancelled by the client", extra={"session_id": session.session_id})
            raise
        except Exception as e:
            error = _as_internal(e)
        finally:
            metrics.STREAMS_ACTIVE.dec()
            # close first: a cancel landing in the await below must not skip it (leaked stream slot)
            session.close()
            if not reader.done():
                reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        if error is not None:
            await self._end_with(context, raw_requests, error)

    async def _end_with(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        raw_requests: AsyncIterator[bytes],
        error: ServiceError,
    ) -> None:
        """End the stream with ``error`` once the client stopped sending (or after ``error_drain_s``);
        what it still sends is dropped, unprocessed (the status says from where)."""
        drain = asyncio.create_task(_discard(raw_requests))
        try:
            await asyncio.wait({drain}, timeout=self._error_drain_s)
            await _abort(context, error)
        finally:
            drain.cancel()

    async def _open(self, requests: AsyncIterator[pb.StreamingTranslateRequest]) -> StreamSession:
        first = await anext(requests, None)
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
        resume = None
        if cfg.HasField("resume"):
            r = cfg.resume
            resume = Resume(r.resume_token, r.next_segment_id, r.offset_ms)
        session = self._m.open_stream(fmt, task, vad, interim_interval_ms=cfg.interim_interval_ms, resume=resume)
        session.resume_pb = cfg.resume if resume is not None else None
        return session

    async def _read(self, requests: AsyncIterator[pb.StreamingTranslateRequest], session: StreamSession) -> None:
        """Request side: feed audio, apply controls; half-close (or a limit) finishes the session."""
        idle_s = self._m.limits.idle_timeout_s
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    when = loop.time() + idle_s
                    if session.drain_deadline is not None:
                        when = min(when, session.drain_deadline)
                    async with asyncio.timeout_at(when) as session.read_timeout:
                        req = await anext(requests, None)
                except TimeoutError:
                    if session.drain_deadline is not None and loop.time() >= session.drain_deadline - 0.001:
                        at = session.audio_received_ms
                        await session.finish(
                            ShuttingDown(
                                "this server shut down: the stream's open speech was translated up to "
                                f"{at} ms; resume on another server (StreamingConfig.resume with this stream's "
                                f"resume_token, offset_ms {at}, next_segment_id = the next id)"
                            )
                        )
                        return
                    idle = LimitReached(
                        f"no message for {idle_s:g} s (limits.idle_timeout_seconds): the stream was closed after "
                        "its open speech was translated; send audio (or silence) at least that often",
                        reason="idle_timeout",
                    )
                    await session.finish(idle)
                    return
                if req is None:
                    break
                kind = req.WhichOneof("request")
                if kind == "audio":
                    await session.feed(req.audio)
                elif kind == "packet":
                    packet = req.packet
                    await session.feed(packet.data, packet.timestamp if packet.HasField("timestamp") else None)
                elif kind == "control":
                    if req.control != pb.FLUSH:
                        raise InvalidInput(f"unknown control {req.control}: the only control is FLUSH")
                    await session.flush()
                elif kind == "config":
                    raise InvalidInput("`config` was sent twice: send it once, as the first message")
                else:
                    raise InvalidInput("empty request message: set one of config, audio, packet or control")
            await session.finish()
        except LimitReached as e:
            await session.finish(e)
        except ServiceError as e:
            session.fail(e)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug must end the stream, not leave the client waiting
            session.fail(_as_internal(e))


async def _parsed(raw: AsyncIterator[bytes]) -> AsyncIterator[pb.StreamingTranslateRequest]:
    async for data in raw:
        yield _parse(pb.StreamingTranslateRequest, data)


async def _discard(raw_requests: AsyncIterator[bytes]) -> None:
    """Read and drop the rest of a failed stream's requests, unparsed."""
    try:
        async for _ in raw_requests:
            pass
    except Exception:  # the call ended (AbortError), or the iterator is already closed
        return


def _event_to_pb(
    ev: SpeechEvent | SegmentResult | InterimResult | Draining | StreamEnded,
) -> pb.StreamingTranslateResponse:
    if isinstance(ev, SegmentResult):
        metrics.observe_segment(ev)
        return pb.StreamingTranslateResponse(segment=convert.segment_result_to_pb(ev))
    if isinstance(ev, InterimResult):
        return pb.StreamingTranslateResponse(interim=convert.interim_to_pb(ev))
    if isinstance(ev, Draining):
        return pb.StreamingTranslateResponse(
            draining=pb.Draining(deadline_unix_ms=ev.deadline_unix_ms, remaining_ms=ev.remaining_ms)
        )
    if isinstance(ev, SpeechEvent):
        kind = pb.SpeechEvent.SPEECH_STARTED if ev.started else pb.SpeechEvent.SPEECH_ENDED
        return pb.StreamingTranslateResponse(speech_event=pb.SpeechEvent(type=kind, offset_ms=ev.offset_ms))
    return pb.StreamingTranslateResponse(ended=convert.stream_end_to_pb(ev))
