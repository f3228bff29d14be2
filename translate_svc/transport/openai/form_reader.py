"""A ``multipart/form-data`` request body read with bounds before anything is held whole
(``read_form``): the audio REST endpoints' (``audio_form.py`` checks its fields) and the detection
endpoint's (``detections.py``).

Bounds (docs/openai-compat.md, "The audio REST endpoints"): the ``file`` part at most the caller's
limit (``limits.max_message_bytes``, the clip limit of every door: over it, 413), counted as it is
read, so a body without ``Content-Length`` is refused as soon as it passes the limit; every other
part together at most 64 KiB; at most ``MAX_PARTS`` parts; the whole body, as decoded (a compressed
body's ``Content-Length`` says nothing of it), at most what ``Content-Length`` may say
(``_CountedBody``: 413 as soon as it passes). Each refusal is a ``FormError``: an ``InvalidInput``
with its HTTP status and the ``param`` it is about. A client that goes away while it sends is
``ClientLeft``, not an error of the server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from aiohttp import BodyPartReader, MultipartReader, StreamReader, web
from aiohttp.http_exceptions import ContentEncodingError, ContentLengthError, HttpProcessingError, LineTooLong

from translate_svc.errors import InvalidInput, shown
from translate_svc.transport.calls import SMALL_MESSAGE_BYTES
from translate_svc.transport.http.site import HTTP_MAX_FIELD_BYTES, HTTP_MAX_HEADERS

#: the parts a form may have, and what is read of one part at a time
MAX_PARTS = 64
READ_BYTES = 64 * 1024


class FormError(InvalidInput):
    """A request the endpoints refuse: its HTTP status, the field (``param``) and OpenAI's code."""

    def __init__(self, message: str, *, param: str | None = None, status: int = 400, code: str = "invalid_value"):
        super().__init__(message)
        self.param = param
        self.status = status
        self.wire_code = code


class ClientLeft(Exception):
    """The client went away while it sent its form (its connection reset, or closed before the
    body's end): nobody is left to answer."""


@dataclass
class Form:
    """A form as read: the file's bytes and every other field's values (text)."""

    file: bytes = b""
    filename: str | None = None
    has_file: bool = False
    values: dict[str, list[str]] = field(default_factory=dict)

    def one(self, name: str) -> str | None:
        got = self.values.get(name)
        return got[0] if got else None


async def read_form(request: web.Request, max_file_bytes: int) -> Form:
    """The form of ``request``, bounded as it is read (``FormError``)."""
    if request.content_type != "multipart/form-data":
        raise FormError(
            "send the audio as multipart/form-data with a `file` part (what the openai SDKs send)",
            param="file",
        )
    form = Form()
    small = 0
    body = _CountedBody(request.content, max_file_bytes + SMALL_MESSAGE_BYTES)
    try:
        # ``request.multipart()``'s reader, over the counted body (the part headers' bounds: the port's)
        reader = MultipartReader(
            request.headers,
            cast(StreamReader, body),
            max_field_size=HTTP_MAX_FIELD_BYTES,
            max_headers=HTTP_MAX_HEADERS,
        )
        for _ in range(MAX_PARTS + 1):
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader):
                raise FormError("a part of the form is itself multipart: send flat form fields")
            name = (part.name or "").removesuffix("[]")
            if name == "file":
                if form.has_file:
                    raise FormError("the form has two `file` parts: send one file per request", param="file")
                form.file = await _read(part, max_file_bytes, _too_large(max_file_bytes))
                form.filename, form.has_file = part.filename, True
                continue
            value = await _read(part, SMALL_MESSAGE_BYTES - small, _fields_too_large())
            small += len(value) + len(name)
            try:
                text = value.decode("utf-8")
            except UnicodeDecodeError:
                raise FormError(f"form field {shown(name)} is not UTF-8 text", param=name[:40]) from None
            form.values.setdefault(name, []).append(text)
        else:
            raise FormError(f"the form has more than {MAX_PARTS} parts: send the fields OpenAI's API documents")
    except FormError:
        raise
    except (ConnectionError, ContentLengthError) as e:  # reset, or closed before the Content-Length's end
        raise ClientLeft(type(e).__name__) from None
    except HttpProcessingError as e:  # aiohttp's: a part's head over its bounds, a body that does not decode
        raise FormError(_unreadable(e)) from None
    except (ValueError, RuntimeError, AssertionError, web.HTTPException):
        raise FormError("the body is not a multipart/form-data form this server can read") from None
    if not form.has_file:
        raise FormError(
            "`file` is required: send the audio file as the form's `file` part (WAV, FLAC, OGG, MP3 or WebM)",
            param="file",
        )
    return form


def _unreadable(e: HttpProcessingError) -> str:
    """What to fix in a body aiohttp could not read (its own message quotes the client's bytes: not shown)."""
    if isinstance(e, LineTooLong):
        return (
            f"a line of the form is too long (a part's header line: at most {HTTP_MAX_FIELD_BYTES} bytes): send "
            "each part with its Content-Disposition (and Content-Type) only, as the openai SDKs do"
        )
    if isinstance(e, ContentEncodingError):
        return (
            "the body does not decode as its Content-Encoding says: send it encoded as declared (gzip, deflate), "
            "or without Content-Encoding"
        )
    if "headers" in (e.message or "").lower():
        return (
            f"a part of the form has more than {HTTP_MAX_HEADERS} headers: send each part with its "
            "Content-Disposition (and Content-Type) only"
        )
    return "the body is not a multipart/form-data form this server can read"


class _CountedBody:
    """The request's body as the form's reader takes it (what ``MultipartReader`` calls of a
    ``StreamReader``), counted as decoded: past ``limit`` bytes, 413 at once. A plain body's
    ``Content-Length`` is checked before it is read; a compressed one's (``Content-Encoding``) says
    nothing of what it decodes to, and bytes outside the parts (before the first boundary, in the
    parts' heads) are counted by no part: this bounds them all, as ``Content-Length`` would."""

    def __init__(self, content: StreamReader, limit: int) -> None:
        self._content = content
        self._limit = limit
        self.taken = 0

    def _count(self, data: bytes) -> bytes:
        self.taken += len(data)
        if self.taken > self._limit:
            raise FormError(
                f"the request's body is over {self._limit} bytes as decoded, more than this server's clip limit "
                "(limits.max_message_bytes) and the other fields may hold: send a shorter or more compressed "
                "recording",
                param="file",
                status=413,
                code="file_too_large",
            )
        return data

    async def readline(self, *, max_line_length: int | None = None) -> bytes:
        return self._count(await self._content.readline(max_line_length=max_line_length))

    async def read(self, n: int = -1) -> bytes:
        return self._count(await self._content.read(n))

    def at_eof(self) -> bool:
        return self._content.at_eof()

    def unread_data(self, data: bytes) -> None:
        self.taken -= len(data)
        self._content.unread_data(data)


async def _read(part: BodyPartReader, limit: int, over: FormError) -> bytes:
    """One part's bytes, refused with ``over`` as soon as they pass ``limit``."""
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = await part.read_chunk(READ_BYTES)
        if not chunk:
            break
        total += len(chunk)
        if total > limit:
            raise over
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> FormError:
    return FormError(
        f"the file is larger than this server's clip limit of {limit} bytes (limits.max_message_bytes): "
        "send a shorter or more compressed recording (FLAC, OGG or MP3), or stream it over a realtime session",
        param="file",
        status=413,
        code="file_too_large",
    )


def _fields_too_large() -> FormError:
    return FormError(
        f"the form's fields other than `file` hold more than {SMALL_MESSAGE_BYTES} bytes together: send only "
        "the fields OpenAI's API documents",
        status=413,
        code="request_too_large",
    )
