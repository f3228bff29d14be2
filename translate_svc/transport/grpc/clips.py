"""Clips' messages on the gRPC door, besides ``Translate``'s one: ``TranslateChunked``'s later
messages (``continuation``), and ``DetectSynthetic``'s one message read and parsed (its clip, and at
most a small message's bytes beside it) into the detection core's ``DetectRequest``
(``session/calls/detect.py`` admits, reads within the deadline, searches) and its answer rendered."""

from __future__ import annotations

from collections.abc import AsyncIterator

from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.errors import InvalidInput
from translate_svc.session.calls.detect import DetectRequest, DetectResult
from translate_svc.transport.calls import SMALL_MESSAGE_BYTES
from translate_svc.transport.grpc import convert
from translate_svc.transport.rpc import audio_path, parse_beside_audio

_AUDIO = (audio_path(pb.DetectSyntheticRequest, "audio.content"),)


async def read_detect(raw_requests: AsyncIterator[bytes], unparsable: str) -> DetectRequest:
    """The call's one ``DetectSyntheticRequest``; its bytes held once at a time (as a clip's)."""
    messages = aiter(raw_requests)
    raw = await anext(messages, None)
    if raw is None:
        raise InvalidInput("the call carried no DetectSyntheticRequest: send one")
    request = parse_beside_audio(
        pb.DetectSyntheticRequest,
        raw,
        None,
        beside_limit=SMALL_MESSAGE_BYTES,
        audio=_AUDIO,
        most_fields=4,
        too_large="send a shorter or more compressed clip",
        beside_hint="beside its audio a DetectSyntheticRequest holds only audio.format",
        unparsable=unparsable,
    )
    del raw
    if await anext(messages, None) is not None:  # read to the end: see TranslatorServicer._read_clip
        raise InvalidInput("DetectSynthetic takes one DetectSyntheticRequest: send one message")
    if not request.HasField("audio") or not request.audio.content:
        raise InvalidInput("audio.content is empty: send the clip's bytes in audio.content")
    content = request.audio.content
    request.audio.ClearField("content")
    return DetectRequest(content, convert.audio_format(request.audio.format, "audio.format"))


def render_detect(result: DetectResult) -> pb.DetectSyntheticResponse:
    out = pb.DetectSyntheticResponse(
        probability=result.probability,
        marked=result.marked,
        conclusive=result.conclusive,
        spans=[pb.MarkedSpan(start_ms=a, end_ms=b) for a, b in result.spans_ms],
        watermarker=result.watermarker,
        audio_duration_ms=result.audio_duration_ms,
    )
    c = result.credentials
    if c is not None:
        out.content_credentials.CopyFrom(
            pb.ContentCredentials(
                state=c.state,
                generated=c.generated,
                model=c.model or "",
                source_sha256=c.source_sha256 or "",
                created=c.created or "",
                issuer=c.issuer or "",
                signer=c.signer or "",
                failures=list(c.failures),
            )
        )
    return out


def continuation(request: pb.TranslateRequest) -> bytes:
    """A TranslateChunked message after the first: the clip's next bytes, and nothing else."""
    others = [f.name for f, _ in request.ListFields() if f.name != "audio"]
    others += [f"audio.{f.name}" for f, _ in request.audio.ListFields() if f.name != "content"]
    if others:
        raise InvalidInput(
            f"a TranslateChunked message after the first carries only audio.content (the clip's next bytes); "
            f"this one sets {', '.join(others[:4])}: send the request's other fields in the first message"
        )
    return request.audio.content
