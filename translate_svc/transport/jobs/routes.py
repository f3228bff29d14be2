"""Background jobs on the HTTP port (issue 73, docs/api.md "Jobs"):

- ``POST /v1/jobs``: a new job from a JSON body (``source_language``, ``target_languages``,
  ``speech``, ``transcript``, ``word_timings``, ``glossaries``, ``format``: ``{encoding,
  sample_rate_hz, channels}``). With ``url`` (https): the job is queued at once (202) and the
  runner that claims it fetches the audio first (``jobs/intake.py``, the shared fetch rules:
  ``running`` with no ``duration_ms`` yet while it fetches); without: 201 and the audio is
  uploaded in parts:
- ``PUT /v1/jobs/{id}/audio``: one part, at ``Content-Range: bytes START-END/*`` (or ``?offset=``;
  neither: where the upload ends), at most ``jobs.max_part_bytes``; a part that does not start
  where the upload ends is 409 (GET the job: ``received_bytes``), so a lost answer is safe to retry;
- ``POST /v1/jobs/{id}/complete``: the upload is whole: its audio is checked and the job queued (202);
- ``GET /v1/jobs/{id}`` (``?wait=S``: until it ends, at most 60 s): its state and progress;
- ``POST /v1/jobs/{id}/cancel``;
- ``GET /v1/jobs/{id}/results`` (``?format=json`` (default), ``srt`` or ``vtt`` with ``language=``);
- ``GET /v1/jobs/{id}/dubbed/{language}``: a target's dubbed track (WAV).

Each request needs a token with the ``translate`` permission and sees its own tenant's jobs only
(another tenant's job is 404). A tenant's jobs not finished and their audio hours are capped by its
tokens-file line (``jobs=``, ``job_hours=``): over either, 429. Event loop only.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import hdrs, web

from translate_svc.errors import InvalidInput, ServiceError
from translate_svc.transport.door import DoorContext
from translate_svc.transport.http.body import read_body
from translate_svc.transport.http.caller import WORDING, Caller, authorize_token
from translate_svc.transport.http.door import Served
from translate_svc.transport.http.responses import refused
from translate_svc.transport.jobs import render
from translate_svc.transport.jobs.desk import JobDesk
from translate_svc.transport.tokens import Permission, bearer
from translate_svc.types import AudioEncoding

PATH = "/v1/jobs"
SMALL = 64 * 1024
_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_ENCODINGS = "container (a WAV, FLAC, OGG or MP3 file), linear16, float32, mulaw or alaw"


class JobRoutes:
    """``/v1/jobs`` (an ``http.door.RouteSet``) over the process's ``JobDesk``."""

    def __init__(self, ctx: DoorContext, desk: JobDesk) -> None:
        self._tokens = ctx.tokens
        self.desk = desk
        self._settings = ctx.settings.jobs
        self._timeout_s = ctx.settings.limits.http_header_timeout_s

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post(PATH, self._create)
        router.add_put(PATH + "/{id}/audio", self._part)
        router.add_post(PATH + "/{id}/complete", self._complete)
        router.add_get(PATH + "/{id}", self._status)
        router.add_post(PATH + "/{id}/cancel", self._cancel)
        router.add_get(PATH + "/{id}/results", self._results)
        router.add_get(PATH + "/{id}/dubbed/{language}", self._dubbed)

    def describe(self, served: Served) -> list[str]:
        return [f"jobs on {served.url(PATH)}"] if self.desk.on else []

    async def stop(self) -> None:
        await self.desk.stop()

    def _caller(self, request: web.Request) -> Caller | web.Response:
        token = bearer(request.headers.get(hdrs.AUTHORIZATION))
        return authorize_token(self._tokens, None, token, Permission.TRANSLATE, WORDING, "the jobs API")

    async def _create(self, request: web.Request) -> web.StreamResponse:
        caller = self._caller(request)
        if isinstance(caller, web.Response):
            return caller
        try:
            self.desk.jobs  # noqa: B018 (off: 400 saying how, before the body is read)
            body = await read_body(
                request, SMALL, self._timeout_s, too_large="a job's request is at most 64 KiB", what="a job's create"
            )
            if isinstance(body, web.Response):
                return body
            doc = _object(body)
            url = doc.get("url")
            if url is not None and not isinstance(url, str):
                raise InvalidInput("url: an https:// URL (a string), or leave it out and upload the audio")
            job = await self.desk.create(caller.tenant, self._spec(doc), url)
        except ServiceError as e:
            return refused(e)
        out = job.to_json()
        if url is not None:
            return web.json_response(out, status=202)
        out["upload"] = {
            "method": "PUT",
            "path": f"{PATH}/{job.job_id}/audio",
            "max_part_bytes": self._settings.max_part_bytes,
        }
        return web.json_response(out, status=201)

    def _spec(self, doc: dict[str, Any]) -> Any:
        fmt = doc.get("format") or {}
        if not isinstance(fmt, dict):
            raise InvalidInput('format: {"encoding", "sample_rate_hz", "channels"}')
        try:
            encoding = AudioEncoding(str(fmt.get("encoding", "container")).upper())
        except ValueError:
            raise InvalidInput(f"format.encoding: {_ENCODINGS}") from None
        rate, channels = fmt.get("sample_rate_hz", 0), fmt.get("channels", 1)
        if not isinstance(rate, int) or not isinstance(channels, int):
            raise InvalidInput("format.sample_rate_hz and format.channels: whole numbers")
        targets, glossaries = doc.get("target_languages", []), doc.get("glossaries", [])
        if not _strings(targets) or not _strings(glossaries):
            raise InvalidInput("target_languages and glossaries: lists of strings")
        source = doc.get("source_language", "")
        if not isinstance(source, str):
            raise InvalidInput("source_language: a language code (a string)")
        flags = {k: doc.get(k, True) for k in ("speech", "transcript", "word_timings")}
        if not all(isinstance(v, bool) for v in flags.values()):
            raise InvalidInput("speech, transcript and word_timings: true or false")
        return self.desk.spec(
            encoding=encoding,
            sample_rate_hz=rate,
            channels=channels,
            source_language=source,
            target_languages=targets,
            glossaries=glossaries,
            **flags,
        )

    async def _part(self, request: web.Request) -> web.StreamResponse:
        caller = self._caller(request)
        if isinstance(caller, web.Response):
            return caller
        try:
            job = await self.desk.get(caller.tenant, request.match_info["id"])
            offset, length = _offset(request, job.received_bytes)
            limit = self._settings.max_part_bytes
            data = await read_body(
                request,
                limit,
                self._settings.part_timeout_s,
                too_large=f"a part is at most {limit} bytes (jobs.max_part_bytes): send smaller parts",
                what="a job's part",
            )
            if isinstance(data, web.Response):
                return data
            if length is not None and length != len(data):
                raise InvalidInput(f"Content-Range says {length} bytes, the part has {len(data)}")
            received = await self.desk.part(caller.tenant, job.job_id, offset, data)
        except ServiceError as e:
            return refused(e)
        return web.json_response({"id": job.job_id, "received_bytes": received})

    async def _complete(self, request: web.Request) -> web.StreamResponse:
        caller = self._caller(request)
        if isinstance(caller, web.Response):
            return caller
        try:
            job = await self.desk.complete(caller.tenant, request.match_info["id"])
        except ServiceError as e:
            return refused(e)
        return web.json_response(job.to_json(), status=202)

    async def _status(self, request: web.Request) -> web.StreamResponse:
        caller = self._caller(request)
        if isinstance(caller, web.Response):
            return caller
        try:
            wait = request.query.get("wait", "0")
            try:
                wait_s = max(0.0, float(wait))
            except ValueError:
                raise InvalidInput("wait: seconds to wait for the job to end (at most 60)") from None
            job = await self.desk.get(caller.tenant, request.match_info["id"], wait_s)
        except ServiceError as e:
            return refused(e)
        return web.json_response(job.to_json())

    async def _cancel(self, request: web.Request) -> web.StreamResponse:
        caller = self._caller(request)
        if isinstance(caller, web.Response):
            return caller
        try:
            job = await self.desk.cancel(caller.tenant, request.match_info["id"])
        except ServiceError as e:
            return refused(e)
        return web.json_response(job.to_json())

    async def _results(self, request: web.Request) -> web.StreamResponse:
        caller = self._caller(request)
        if isinstance(caller, web.Response):
            return caller
        try:
            job = await self.desk.get(caller.tenant, request.match_info["id"])
            kind = request.query.get("format", "json")
            if kind == "json":
                return await _stream(request, render.json_chunks(self.desk.jobs.store, job), "application/json")
            if kind not in ("srt", "vtt"):
                raise InvalidInput("format: json, srt or vtt")
            if not request.query.get("language"):
                raise InvalidInput(f"format={kind} needs language= (a target, or 'transcript')")
            text = await render.subtitles(self.desk.jobs.store, job, request.query["language"], kind)
        except ServiceError as e:
            return refused(e)
        return web.Response(text=text, content_type="application/x-subrip" if kind == "srt" else "text/vtt")

    async def _dubbed(self, request: web.Request) -> web.StreamResponse:
        caller = self._caller(request)
        if isinstance(caller, web.Response):
            return caller
        try:
            job = await self.desk.get(caller.tenant, request.match_info["id"])
            size, chunks = await render.dubbed(self.desk.jobs.store, job, request.match_info["language"])
        except ServiceError as e:
            return refused(e)
        return await _stream(request, chunks, "audio/wav", size)


async def _stream(
    request: web.Request, chunks: AsyncIterator[bytes], content_type: str, size: int | None = None
) -> web.StreamResponse:
    headers = {"Content-Type": content_type}
    if size is not None:
        headers["Content-Length"] = str(size)
    response = web.StreamResponse(headers=headers)
    await response.prepare(request)
    async for chunk in chunks:
        await response.write(chunk)
    await response.write_eof()
    return response


def _object(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError:
        raise InvalidInput("the body is not JSON: send a JSON object") from None
    if not isinstance(doc, dict):
        raise InvalidInput('the body is not a JSON object: send {"target_languages": [...], ...}')
    return doc


def _strings(value: object) -> bool:
    return isinstance(value, list) and len(value) <= 64 and all(isinstance(v, str) and len(v) <= 64 for v in value)


def _offset(request: web.Request, received: int) -> tuple[int, int | None]:
    """Where a part starts (``Content-Range``, else ``?offset=``, else where the upload ends) and,
    from ``Content-Range``, its length."""
    header = request.headers.get(hdrs.CONTENT_RANGE)
    if header is not None:
        m = _RANGE.fullmatch(header.strip())
        if m is None or int(m[2]) < int(m[1]):
            raise InvalidInput("Content-Range: bytes START-END/TOTAL (or /*), END inclusive")
        return int(m[1]), int(m[2]) - int(m[1]) + 1
    offset = request.query.get("offset")
    if offset is None:
        return received, None
    if not offset.isdigit():
        raise InvalidInput("offset: the byte the part starts at (a whole number)")
    return int(offset), None
