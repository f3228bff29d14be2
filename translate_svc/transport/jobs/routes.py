"""Background jobs on the HTTP port (docs/api.md "Jobs"):

- ``POST /v1/jobs``: a new job from a JSON body (``source_language``, ``target_languages``,
  ``glossaries``, ``format``: ``{encoding, sample_rate_hz, channels}``, and every output and ear
  option a ``Translate`` call takes: ``options.py``; an unknown key is 400 naming it). With ``url``
  (https): the job is queued at once (202) and the worker that claims it fetches the audio first
  (``jobs/intake.py``, the shared fetch rules: ``running`` with no ``duration_ms`` yet while it
  fetches); without: 201 and the audio is uploaded in parts:
- ``PUT /v1/jobs/{id}/audio``: one part, at ``Content-Range: bytes START-END/*`` (or ``?offset=``;
  neither: where the upload ends), at most ``jobs.max_part_bytes``; a part that does not start
  where the upload ends is 409 (GET the job: ``received_bytes``), so a lost answer is safe to retry;
- ``POST /v1/jobs/{id}/complete``: the upload is whole: its audio is checked and the job queued (202);
- ``GET /v1/jobs`` (``?limit=N``, 1..200, default 50; ``?page_token=``, or ``after=``: the last
  page's ``next_page_token``): the tenant's jobs, newest first, a page at a time (``jobs/listing.py``);
- ``GET /v1/jobs/{id}`` (``?wait=S``: until it ends, at most 60 s): its state and progress;
- ``POST /v1/jobs/{id}/cancel``; ``DELETE /v1/jobs/{id}``: the job and what it keeps;
- ``POST /v1/jobs/{id}/edits`` (``{"edits": [{"segment_id", "target_language", "text", "voice",
  "speed"}, ...]}``): a done job's segments said again, only those (``jobs/edits.py``); the answer
  says what each edit changed, before and after;
- ``GET /v1/jobs/{id}/results`` (``?format=json`` (default), ``srt`` or ``vtt`` with ``language=``);
- ``GET /v1/jobs/{id}/dubbed/{language}``: a target's dubbed track (WAV);
- ``GET /v1/jobs/{id}/video`` (``?languages=``, ``original=``, ``mix=dub|duck``, ``mix_gain_db=``,
  ``subtitles=``): a done video job's dubbed video, in its upload's container
  (``jobs/video.py``), made to a file first (its ``Content-Length`` known), then sent and deleted.

Each request needs a token with the ``jobs`` permission (never implied by ``*``) and
sees its own tenant's jobs only (another tenant's job is 404). It is admitted as its token's and
tenant's unary call before anything of it is read (``http/admission.py``), and one that holds its
connection (a long poll, a part, a download) as one of the tenant's
``limits.http_max_held_requests_per_tenant`` too: 429 beyond. A part is written to a file as it
comes, at ``limits.http_min_transfer_bytes_per_s`` at least (408), then appended; a download is
cut at that rate. A tenant's jobs not finished, their audio hours and the bytes they keep are
capped (``jobs=``, ``job_hours=`` or the server's defaults, ``jobs.max_bytes_per_tenant``): over
any, 429. Event loop only.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import hdrs, web

from translate_svc.errors import Conflict, InvalidInput, ServiceError
from translate_svc.jobs import cues
from translate_svc.jobs.desk import JobDesk
from translate_svc.jobs.request import fit_default
from translate_svc.transport.api_log import logged
from translate_svc.transport.calls import REQUEST_ID, call_info
from translate_svc.transport.door import DoorContext
from translate_svc.transport.http.admission import RequestAdmission, receive_to_file, send_chunks
from translate_svc.transport.http.body import read_body
from translate_svc.transport.http.caller import WORDING, Caller, authorize_token
from translate_svc.transport.http.door import Served
from translate_svc.transport.http.responses import refused
from translate_svc.transport.jobs import options, render
from translate_svc.transport.tokens import Permission, bearer

#: a request's handler once it is admitted: (request, caller) -> the answer
Handler = Callable[[web.Request, Caller], Awaitable[web.StreamResponse]]

PATH = "/v1/jobs"
SMALL = 64 * 1024
#: a job's create with subtitles to voice (``jobs/cues.py``)
CREATE = cues.MAX_CHARS + SMALL
#: a request of edits at most (``edits.MAX_EDITS`` of ``edits.MAX_TEXT_CHARS``, with room for JSON)
EDITS = 256 * 1024
_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class JobRoutes:
    """``/v1/jobs`` (an ``http.door.RouteSet``) over the process's ``JobDesk``."""

    def __init__(self, ctx: DoorContext, desk: JobDesk) -> None:
        self._tokens = ctx.tokens
        self.desk = desk
        self._settings = ctx.settings.jobs
        self._timeout_s = ctx.settings.limits.http_header_timeout_s
        self._admission = RequestAdmission(ctx.sessions, ctx.settings.limits)

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post(PATH, self._admitted("jobs.create", self._create))
        router.add_get(PATH, self._admitted("jobs.list", self._list))
        router.add_put(PATH + "/{id}/audio", self._admitted("jobs.upload", self._part, held=lambda r: True))
        router.add_post(PATH + "/{id}/complete", self._admitted("jobs.complete", self._complete))
        router.add_get(PATH + "/{id}", self._admitted("jobs.get", self._status, held=_long_poll))
        router.add_post(PATH + "/{id}/cancel", self._admitted("jobs.cancel", self._cancel))
        router.add_post(PATH + "/{id}/edits", self._admitted("jobs.edit", self._edit, held=lambda r: True))
        router.add_delete(PATH + "/{id}", self._admitted("jobs.delete", self._delete))
        router.add_get(PATH + "/{id}/results", self._admitted("jobs.results", self._results, held=lambda r: True))
        router.add_get(
            PATH + "/{id}/dubbed/{language}", self._admitted("jobs.dubbed", self._dubbed, held=lambda r: True)
        )
        router.add_get(PATH + "/{id}/video", self._admitted("jobs.video", self._video, held=lambda r: True))

    def _admitted(
        self, method: str, handler: Handler, held: Callable[[web.Request], bool] = lambda r: False
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """``handler`` for a caller whose token has the ``jobs`` permission, admitted as its unary
        call (and, where ``held`` says so, one of its tenant's held requests) before anything of
        the request is read; the jobs API off: 400 saying how, before anything is taken. Its
        access line names ``method``."""

        async def admitted(request: web.Request) -> web.StreamResponse:
            caller = self._caller(request)
            if isinstance(caller, web.Response):
                return caller
            call = call_info(request.headers.get(REQUEST_ID), method, request.remote or "")
            try:
                with logged(call, caller.tenant.name) as line:
                    self.desk.jobs  # noqa: B018 (off: 400 saying how, before the body is read)
                    async with self._admission.admitted(caller, held=held(request)):
                        response = await handler(request, caller)
                    line.answered(response.status)
                    return response
            except ServiceError as e:
                return refused(e)

        return admitted

    def describe(self, served: Served) -> list[str]:
        return [f"jobs on {served.url(PATH)}"] if self.desk.on else []

    async def stop(self) -> None:
        await self.desk.stop()

    def _caller(self, request: web.Request) -> Caller | web.Response:
        token = bearer(request.headers.get(hdrs.AUTHORIZATION))
        return authorize_token(self._tokens, None, token, Permission.JOBS, WORDING, "the jobs API")

    async def _create(self, request: web.Request, caller: Caller) -> web.StreamResponse:
        body = await read_body(
            request,
            CREATE,
            self._timeout_s,
            too_large="a job's request is at most 64 KiB, and 2 MiB more of subtitles",
            what="a job's create",
        )
        if isinstance(body, web.Response):
            return body
        asked = options.from_json(_object(body), fit_default(self._settings))
        job = await self.desk.create(caller.tenant, self.desk.spec(asked), asked.url, asked.subtitles)
        out = job.to_json()
        if asked.url is not None:
            return web.json_response(out, status=202)
        out["upload"] = {
            "method": "PUT",
            "path": f"{PATH}/{job.job_id}/audio",
            "max_part_bytes": self._settings.max_part_bytes,
        }
        return web.json_response(out, status=201)

    async def _part(self, request: web.Request, caller: Caller) -> web.StreamResponse:
        # the part is checked against the upload before it is read: one sent again, or to a job
        # no longer uploading, is refused unread
        job = await self.desk.get(caller.tenant, request.match_info["id"])
        offset, length = _offset(request, job.received_bytes)
        job = await self.desk.uploading(caller.tenant, job.job_id, offset)
        limit = self._settings.max_part_bytes
        path = self.desk.part_path(job)
        writes = self._admission.part_writes(caller)
        try:
            got = await receive_to_file(
                request,
                path,
                limit=limit,
                timeout_s=self._settings.part_timeout_s,
                rate=self._admission.rate(),
                too_large=f"a part is at most {limit} bytes (jobs.max_part_bytes): send smaller parts",
                timeout_words="jobs.part_timeout_s",
                what="a job's part",
                write=writes,
            )
            if isinstance(got, web.Response):
                return got
            if length is not None and length != got:
                raise InvalidInput(f"Content-Range says {length} bytes, the part has {got}")
            received = await self.desk.part(caller.tenant, job, offset, path)
        except FileNotFoundError:  # the job was deleted while its part came
            raise Conflict("the job is no longer uploading (deleted?): its part was not kept") from None
        finally:
            await writes(functools.partial(_unlink, path))
        return web.json_response({"id": job.job_id, "received_bytes": received})

    async def _complete(self, request: web.Request, caller: Caller) -> web.StreamResponse:
        job = await self.desk.complete(caller.tenant, request.match_info["id"])
        return web.json_response(job.to_json(), status=202)

    async def _list(self, request: web.Request, caller: Caller) -> web.StreamResponse:
        page = await self.desk.list(caller.tenant, _limit(request), _page_token(request))
        return web.json_response({"jobs": [job.to_json() for job in page.jobs], "next_page_token": page.next_token})

    async def _status(self, request: web.Request, caller: Caller) -> web.StreamResponse:
        job = await self.desk.get(caller.tenant, request.match_info["id"], _wait_s(request))
        return web.json_response(job.to_json())

    async def _cancel(self, request: web.Request, caller: Caller) -> web.StreamResponse:
        job = await self.desk.cancel(caller.tenant, request.match_info["id"])
        return web.json_response(job.to_json())

    async def _edit(self, request: web.Request, caller: Caller) -> web.StreamResponse:
        body = await read_body(
            request, EDITS, self._timeout_s, too_large="a job's edits are at most 256 KiB", what="a job's edits"
        )
        if isinstance(body, web.Response):
            return body
        edits = options.edits_from_json(_object(body))
        done = await self.desk.edit(caller.tenant, request.match_info["id"], edits)
        return web.json_response({"id": request.match_info["id"], "edited": [e.to_json() for e in done]})

    async def _delete(self, request: web.Request, caller: Caller) -> web.StreamResponse:
        await self.desk.delete(caller.tenant, request.match_info["id"])
        return web.Response(status=204)

    async def _results(self, request: web.Request, caller: Caller) -> web.StreamResponse:
        job = await self.desk.get(caller.tenant, request.match_info["id"])
        kind = request.query.get("format", "json")
        if kind == "json":
            return await self._stream(request, render.json_chunks(self.desk.jobs.store, job), "application/json")
        if kind not in ("srt", "vtt"):
            raise InvalidInput("format: json, srt or vtt")
        if not request.query.get("language"):
            raise InvalidInput(f"format={kind} needs language= (a target, or 'transcript')")
        text = await render.subtitles(self.desk.jobs.store, job, request.query["language"], kind)
        return web.Response(text=text, content_type="application/x-subrip" if kind == "srt" else "text/vtt")

    async def _dubbed(self, request: web.Request, caller: Caller) -> web.StreamResponse:
        loudness = options.loudness_from_query(request.query)
        job = await self.desk.get(caller.tenant, request.match_info["id"])
        size, chunks = await render.dubbed(
            self.desk.jobs.store,
            job,
            request.match_info["language"],
            self._settings.dub_overflow,
            self._admission.file_reads(caller),
            self.desk.jobs.credentials,
            loudness=loudness,
            maker=self.desk.jobs.videos,
        )
        return await self._stream(request, chunks, "audio/wav", size)

    async def _video(self, request: web.Request, caller: Caller) -> web.StreamResponse:
        ask = options.video_from_query(request.query)
        job = await self.desk.get(caller.tenant, request.match_info["id"])
        made = await self.desk.jobs.videos.make(self.desk.jobs.store, job, ask, self._settings.dub_overflow)
        reads = self._admission.file_reads(caller)
        try:
            return await self._stream(request, render.file_chunks(made.path, reads), made.kind.content_type, made.size)
        finally:
            await render.remove(made.path, reads)

    async def _stream(
        self, request: web.Request, chunks: AsyncIterator[bytes], content_type: str, size: int | None = None
    ) -> web.StreamResponse:
        headers = {"Content-Type": content_type}
        if size is not None:
            headers["Content-Length"] = str(size)
        return await send_chunks(request, chunks, headers, self._admission.rate(), what="a job's results")


def _long_poll(request: web.Request) -> bool:
    """A status request that waits (``?wait=``): it holds its connection."""
    try:
        return _wait_s(request) > 0
    except InvalidInput:
        return False


def _wait_s(request: web.Request) -> float:
    try:
        return max(0.0, float(request.query.get("wait", "0")))
    except ValueError:
        raise InvalidInput("wait: seconds to wait for the job to end (at most 60)") from None


def _limit(request: web.Request) -> int | None:
    limit = request.query.get("limit")
    if limit is None:
        return None
    if not limit.isdigit() or len(limit) > 6:
        raise InvalidInput("limit: how many jobs a page holds (a whole number, 1..200)")
    return int(limit)


def _page_token(request: web.Request) -> str:
    """The page to continue after: ``page_token`` or ``after`` (the same; not two different ones)."""
    token, after = request.query.get("page_token", ""), request.query.get("after", "")
    if token and after and token != after:
        raise InvalidInput("page_token and after name the same cursor: send one of them")
    return token or after


def _unlink(path: Any) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _object(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except RecursionError:  # deep nesting (security finding J9): a client's doing, not the server's
        raise InvalidInput("the body nests too deep: send a flat JSON object") from None
    except ValueError:
        raise InvalidInput("the body is not JSON: send a JSON object") from None
    if not isinstance(doc, dict):
        raise InvalidInput('the body is not a JSON object: send {"target_languages": [...], ...}')
    return doc


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
