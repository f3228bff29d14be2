"""``POST /v1/audio/detections`` on the HTTP port: does a clip carry the watermark this service adds
to the speech it makes? Our endpoint beside OpenAI's audio ones, in their manner: a
``multipart/form-data`` body with a ``file`` part (any audio file the clip core reads; other fields
are refused), read with the same bounds (``form_reader.read_form``), over the detection core
(``session/calls/detect.py``, gRPC ``DetectSynthetic``'s): the same admission, read deadline,
limits and access line (method ``audio.detections``).

The answer is JSON: ``{"object": "audio.detection", "marked", "conclusive", "probability", "spans":
[{"start", "end"}] (seconds), "watermarker", "duration"}``. Errors as the audio endpoints': 400 for a
bad form or clip, 401/403 for tokens (a token with ``translate``), 408 for a body slower than the
read deadline, 413 over the clip limit, 429 at a cap, 503 while draining. Event loop only.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from translate_svc.errors import ServiceError
from translate_svc.session.calls.detect import DetectDriver, DetectRequest, DetectResult
from translate_svc.session.manager import SessionManager
from translate_svc.transport.calls import REQUEST_ID, SMALL_MESSAGE_BYTES, call_info
from translate_svc.transport.http.caller import Authorizer
from translate_svc.transport.http.errors import error_body, refusal
from translate_svc.transport.http.responses import answer
from translate_svc.transport.openai.form_reader import ClientLeft, FormError, read_form
from translate_svc.transport.tokens.file import Permission
from translate_svc.types import AudioEncoding, AudioFormat

logger = logging.getLogger(__name__)

PATH = "/v1/audio/detections"
METHOD = "audio.detections"


class DetectionApi:
    """The endpoint's route. ``callers``: the HTTP port's caller check."""

    def __init__(self, manager: SessionManager, callers: Authorizer) -> None:
        self._m = manager
        self._callers = callers

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post(PATH, self.serve)

    async def serve(self, request: web.Request) -> web.StreamResponse:
        caller = self._callers.authorize_request(
            request, what="a detection", protocol=None, secret_ok=False, needed=Permission.TRANSLATE
        )
        if isinstance(caller, web.Response):
            return caller
        limit = self._m.limits.max_message_bytes
        if request.content_length is not None and request.content_length > limit + SMALL_MESSAGE_BYTES:
            return _error(
                413,
                f"the request's body is {request.content_length} bytes, over this server's clip limit of {limit} "
                "bytes for the file (limits.max_message_bytes): send a shorter or more compressed recording",
                "file_too_large",
                param="file",
            )
        call = call_info(request.headers.get(REQUEST_ID), METHOD, request.remote or "")
        driver = DetectDriver(self._m, tenant=caller.tenant, call=call)
        try:
            found = await driver.run(lambda: _read(request, limit), lambda r: r)
        except FormError as e:
            return _error(e.status, e.message, e.wire_code, param=e.param)
        except ServiceError as e:
            refused = refusal(e)  # the port's one table: 429 or 503 with Retry-After, 400, 500...
            if e.reason == "clip_read_timeout":
                return web.json_response(refused.body, status=408)
            return answer(refused)
        return web.json_response(body(found))


async def _read(request: web.Request, limit: int) -> DetectRequest:
    """The form: one ``file`` part and nothing else."""
    try:
        form = await read_form(request, limit)
    except ClientLeft as e:  # no one to answer: the call ends as cancelled (its access line says so)
        logger.info("a detection's client went away while it sent its form (%s)", e)
        raise asyncio.CancelledError from None
    if not form.has_file or not form.file:
        raise FormError("the form has no audio: send it in a `file` part", param="file")
    if form.values:
        other = sorted(form.values)[0]
        raise FormError(f"a detection takes only a `file` part, not {other!r}: drop it", param=other[:40])
    return DetectRequest(form.file, AudioFormat(AudioEncoding.CONTAINER))


def body(found: DetectResult) -> dict[str, Any]:
    return {
        "object": "audio.detection",
        "marked": found.marked,
        "conclusive": found.conclusive,
        "probability": found.probability,
        "spans": [{"start": a / 1000, "end": b / 1000} for a, b in found.spans_ms],
        "watermarker": found.watermarker,
        "duration": found.audio_duration_ms / 1000,
        "content_credentials": found.credentials_json(),
    }


def _error(status: int, message: str, code: str, *, param: str | None = None) -> web.Response:
    return web.json_response(error_body(message, code, "invalid_request_error", param=param), status=status)
