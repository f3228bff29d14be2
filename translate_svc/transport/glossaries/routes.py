"""Stored glossaries on the HTTP port, as the gRPC ``Glossaries`` service has them:

- ``GET /v1/glossaries``: the tenant's glossaries, by id, without entries (``{"glossaries": [...]}``)
- ``POST /v1/glossaries``: a new one, 201: a JSON body ``{"id", "display_name", "entries": [{phrase,
  translation, target_language, ignore_case}]}``, or a CSV body (``Content-Type: text/csv``) with
  ``?id=`` (and ``display_name=``), or a TBX body (``Content-Type: application/x-tbx+xml``, or
  ``?format=tbx``) with ``?id=``, ``source_language=`` and optionally ``target_languages=a,b``
- ``GET /v1/glossaries/{id}`` (``?entries=true``: with its entries)
- ``PUT /v1/glossaries/{id}``: its name and entries replaced (JSON ``{"display_name", "entries",
  "revision"}``, or CSV or TBX with ``?revision=``); 409 when ``revision`` is not the current one
- ``DELETE /v1/glossaries/{id}``: 204

Each request needs a token with the ``glossaries`` permission (401 without a valid token, 403
without the permission) and sees its own tenant's glossaries only: another tenant's id is 404, as
one that does not exist. Each is admitted as a unary call of its token and tenant before its body
is read (``SessionManager.admit_unary``, as the gRPC ``Glossaries`` service and the MCP endpoint
are: security finding J2; 429 over ``limits.max_unary_calls_per_token`` or ``_per_tenant``). A create or
replace then takes one of the process's import slots (``glossaries.max_imports``, and
``max_imports_per_tenant``; 429 beyond), and its body (a file of up to 10,000 entries and
more: at most ``glossaries.max_import_bytes`` and 64 KiB) is read within
``glossaries.import_timeout_s`` at the port's minimum rate (``imports.py``; 408 when late, 413
when over), then parsed and checked on the glossaries' own threads (``GlossaryBook.work``), never on
the event loop. Event loop only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import hdrs, web

from translate_svc.errors import InvalidInput, ServiceError, TooSlow, shown
from translate_svc.glossaries.book import GlossaryBook
from translate_svc.glossaries.model import GlossaryEntry, parse_csv
from translate_svc.glossaries.tbx import parse_tbx
from translate_svc.transport.api_log import logged
from translate_svc.transport.calls import REQUEST_ID, call_info
from translate_svc.transport.door import DoorContext
from translate_svc.transport.glossaries import convert
from translate_svc.transport.glossaries.imports import BodyTooLarge, Clock, read_body
from translate_svc.transport.http.caller import WORDING, Caller, authorize_token
from translate_svc.transport.http.door import Served
from translate_svc.transport.http.responses import http_error, refused
from translate_svc.transport.tokens import Permission, bearer

logger = logging.getLogger(__name__)

PATH = "/v1/glossaries"
#: each route's method in the access log, by (HTTP method, names a glossary)
_METHODS = {
    ("GET", False): "glossaries.list",
    ("POST", False): "glossaries.create",
    ("GET", True): "glossaries.get",
    ("PUT", True): "glossaries.replace",
    ("DELETE", True): "glossaries.delete",
}
#: a body's format by its Content-Type (``?format=`` says it for any type, e.g. application/xml)
FORMATS = {"text/csv": "csv", "application/x-tbx+xml": "tbx", "application/tbx+xml": "tbx"}
#: what a body holds beyond its entries
SMALL = 64 * 1024


class GlossaryRoutes:
    """``/v1/glossaries`` (an ``http.door.RouteSet``) over the sessions' ``GlossaryBook``."""

    def __init__(self, ctx: DoorContext) -> None:
        self._tokens = ctx.tokens
        self._m = ctx.sessions
        limits = ctx.settings.limits
        #: a body's minimum rate (``imports.Clock``): the port's, after its header timeout
        self._rate = (limits.http_min_transfer_bytes_per_s, limits.http_header_timeout_s)

    @property
    def _book(self) -> GlossaryBook:
        return self._m.glossaries

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get(PATH, self._list)
        router.add_post(PATH, self._create)
        router.add_get(PATH + "/{id}", self._get)
        router.add_put(PATH + "/{id}", self._replace)
        router.add_delete(PATH + "/{id}", self._delete)

    def describe(self, served: Served) -> list[str]:
        return [f"glossaries on {served.url(PATH)}"] if self._book.store is not None else []

    async def stop(self) -> None:
        """Nothing held open."""

    def _caller(self, request: web.Request) -> Caller | web.Response:
        token = bearer(request.headers.get(hdrs.AUTHORIZATION))
        return authorize_token(self._tokens, None, token, Permission.GLOSSARIES, WORDING, "the glossaries API")

    async def _serve(self, request: web.Request, answer: Callable[[Caller], Awaitable[web.Response]]) -> web.Response:
        """The caller checked, then ``answer`` admitted as a unary call of its tenant and token
        (before the body is read); our errors as their refusals; its access line."""
        caller = self._caller(request)
        if isinstance(caller, web.Response):
            return caller
        token = caller.token.sha256 if caller.token is not None else None
        method = _METHODS.get((request.method, "id" in request.match_info), "glossaries")
        try:
            with logged(
                call_info(request.headers.get(REQUEST_ID), method, request.remote or ""), caller.tenant.name
            ) as line:
                async with self._m.admit_unary(caller.tenant, token):
                    response = await answer(caller)
                line.answered(response.status)
                return response
        except ServiceError as e:
            return refused(e)

    async def _content(
        self, request: web.Request, tenant: str
    ) -> tuple[dict[str, Any], list[GlossaryEntry]] | web.Response:
        """A create's or replace's body, in one of the process's import slots from its first byte
        to its entries: its JSON fields, and its entries (from JSON, CSV or TBX), parsed in the
        glossaries' parse processes."""
        book = self._book
        limits = book.limits
        clock = Clock.starting(
            limits, *self._rate, "limits.http_min_transfer_bytes_per_s, limits.http_header_timeout_s"
        )
        with book.imports.taken(tenant):
            try:
                body = await read_body(request, limits.max_import_bytes + SMALL, clock)
            except BodyTooLarge:
                message = f"a glossary's body is at most {limits.max_import_bytes} bytes (glossaries.max_import_bytes)"
                return http_error(413, message, "request_too_large")
            except TooSlow as e:
                return http_error(408, e.message, "request_timeout")
            except ConnectionError as e:
                logger.info("a glossary's create or replace: its client went away while it sent (%s)", type(e).__name__)
                return web.Response(status=499)
            return await self._parsed(request, body)

    async def _parsed(self, request: web.Request, body: bytes) -> tuple[dict[str, Any], list[GlossaryEntry]]:
        book = self._book
        limits = book.limits
        kind = _format(request)
        if kind == "csv":
            return dict(request.query), await book.parse(parse_csv, body, limits)
        if kind == "tbx":
            q = request.query
            targets = [t for v in q.getall("target_languages", []) for t in v.split(",") if t.strip()]
            languages = list(book.languages())
            source = q.get("source_language", "")
            return dict(q), await book.parse(parse_tbx, body, limits, languages, source, targets)
        return await book.parse(convert.content_from_json, body, limits)

    async def _list(self, request: web.Request) -> web.Response:
        async def answer(caller: Caller) -> web.Response:
            found = await self._book.list(caller.tenant.name)
            return web.json_response({"glossaries": [convert.summary_json(s) for s in found]})

        return await self._serve(request, answer)

    async def _create(self, request: web.Request) -> web.Response:
        async def answer(caller: Caller) -> web.Response:
            self._book.kept()
            got = await self._content(request, caller.tenant.name)
            if isinstance(got, web.Response):
                return got
            doc, entries = got
            made = await self._book.create(caller.tenant.name, _text(doc, "id"), _text(doc, "display_name"), entries)
            return web.json_response(convert.glossary_json(made), status=201)

        return await self._serve(request, answer)

    async def _get(self, request: web.Request) -> web.Response:
        async def answer(caller: Caller) -> web.Response:
            found = await self._book.get(caller.tenant.name, request.match_info["id"])
            if request.query.get("entries") != "true":
                return web.json_response(convert.glossary_json(found))
            body = await self._book.work(lambda: json.dumps(convert.glossary_json(found, entries=True)))
            return web.Response(text=body, content_type="application/json")  # 10,000 entries: off the loop

        return await self._serve(request, answer)

    async def _replace(self, request: web.Request) -> web.Response:
        async def answer(caller: Caller) -> web.Response:
            self._book.kept()
            got = await self._content(request, caller.tenant.name)
            if isinstance(got, web.Response):
                return got
            doc, entries = got
            revision = doc.get("revision", 0)
            if isinstance(revision, str) and revision.isdigit():
                revision = int(revision)  # from a CSV's query
            if not isinstance(revision, int) or isinstance(revision, bool):
                raise InvalidInput("revision: the whole number read (0: replace whatever is there)")
            new = await self._book.replace(
                caller.tenant.name, request.match_info["id"], _text(doc, "display_name"), entries, revision
            )
            return web.json_response(convert.glossary_json(new))

        return await self._serve(request, answer)

    async def _delete(self, request: web.Request) -> web.Response:
        async def answer(caller: Caller) -> web.Response:
            await self._book.delete(caller.tenant.name, request.match_info["id"])
            return web.Response(status=204)

        return await self._serve(request, answer)


def _format(request: web.Request) -> str:
    """``csv``, ``tbx`` or ``json``: ``?format=`` if given, else by the Content-Type."""
    named = request.query.get("format")
    if named is None:
        return FORMATS.get(request.content_type, "json")
    if named not in ("json", "csv", "tbx"):
        raise InvalidInput(f"format={shown(named)}: use json, csv or tbx (or leave it out: the Content-Type says)")
    return named


def _text(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key, "")
    if not isinstance(value, str):
        raise InvalidInput(f"{key}: a string")
    return value
