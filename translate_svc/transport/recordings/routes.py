"""The recordings API: a tenant's recordings listed, fetched (decrypted) and deleted, on the HTTP port.

- ``GET /v1/recordings``: the tenant's recordings' manifests, oldest first (``{"recordings": [...]}``)
- ``GET /v1/recordings/{id}``: one manifest
- ``GET /v1/recordings/{id}/files/{name}``: one file, decrypted, streamed (``X-Recording-File-Complete``
  says whether it is whole: a file a failure cut is sent as far as it authenticates);
  ``?format=flac``: an audio file as FLAC, the translated speech's with content credentials
  (``recordings/export.py``)
- ``DELETE /v1/recordings/{id}``: 204

Each request needs a token with the ``recordings`` permission (``Authorization: Bearer``; 401 without
a valid token, 403 without the permission) and sees its own tenant's recordings only: another
tenant's id is answered 404, as an id that does not exist (whether it exists is not told). The store
is read (and files decrypted, a chunk at a time) on the process's file-read pool, as the caller's
tenant's calls (``session/work.py``): never the loop's default executor. Event loop only.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from aiohttp import hdrs, web

from translate_svc.marking.credentials import Made
from translate_svc.observability import metrics
from translate_svc.recordings.export import OGG, export_flac, language_of
from translate_svc.recordings.keys import NoKey
from translate_svc.recordings.sealed import SealedError, Truncated
from translate_svc.recordings.service import Recordings
from translate_svc.recordings.store import public
from translate_svc.recordings.writer import SOURCE_FILE
from translate_svc.session.work import OnPool
from translate_svc.transport.door import DoorContext
from translate_svc.transport.http.caller import WORDING, Caller, authorize_token
from translate_svc.transport.http.door import Served
from translate_svc.transport.http.responses import http_error
from translate_svc.transport.tokens.authorization import bearer
from translate_svc.transport.tokens.file import Permission

logger = logging.getLogger(__name__)

PATH = "/v1/recordings"
_TYPES = {".ogg": "audio/ogg", ".jsonl": "application/x-ndjson"}
#: an exported file's bytes per write
_EXPORT_CHUNK = 256 * 1024
_NOT_FOUND = "no recording of this id for your tenant: list yours with GET /v1/recordings"


def _not_found() -> web.Response:
    return http_error(404, _NOT_FOUND, "recording_not_found")


class RecordingRoutes:
    """The recordings API (an ``http.door.RouteSet``) over ``recordings``' store."""

    def __init__(self, ctx: DoorContext, recordings: Recordings) -> None:
        self._tokens = ctx.tokens
        self._recordings = recordings
        self._store = recordings.store
        self._reads = ctx.sessions.work.file_reads
        self._signer = ctx.sessions.content_signer
        self._sessions = ctx.sessions

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get(PATH, self._list)
        router.add_get(PATH + "/{id}", self._manifest)
        router.add_get(PATH + "/{id}/files/{name}", self._file)
        router.add_delete(PATH + "/{id}", self._delete)

    def describe(self, served: Served) -> list[str]:
        return [f"recordings on {served.url(PATH)}"]

    async def stop(self) -> None:
        """Nothing held open."""

    def _caller(self, request: web.Request) -> Caller | web.Response:
        token = bearer(request.headers.get(hdrs.AUTHORIZATION))
        return authorize_token(self._tokens, None, token, Permission.RECORDINGS, WORDING, "the recordings API")

    async def _list(self, request: web.Request) -> web.Response:
        caller = self._caller(request)
        if isinstance(caller, web.Response):
            return caller
        reads = OnPool(self._reads, caller.tenant.name)
        found = await reads(functools.partial(self._store.listing, caller.tenant.name))
        return web.json_response({"recordings": found})

    async def _manifest(self, request: web.Request) -> web.Response:
        caller = self._caller(request)
        if isinstance(caller, web.Response):
            return caller
        reads = OnPool(self._reads, caller.tenant.name)
        manifest = await reads(functools.partial(self._store.manifest, caller.tenant.name, request.match_info["id"]))
        return web.json_response(public(manifest)) if manifest is not None else _not_found()

    async def _delete(self, request: web.Request) -> web.Response:
        caller = self._caller(request)
        if isinstance(caller, web.Response):
            return caller
        rid = request.match_info["id"]
        if rid in self._recordings.live:
            return http_error(409, "this recording is still being written: delete it once its session ended", "busy")
        reads = OnPool(self._reads, caller.tenant.name)
        if not await reads(functools.partial(self._store.delete, caller.tenant.name, rid)):
            return _not_found()
        metrics.RECORDINGS_DELETED.labels("api").inc()
        logger.info("recording %s of tenant %s deleted through the API", rid, caller.tenant.name)
        return web.Response(status=204)

    async def _file(self, request: web.Request) -> web.StreamResponse:
        caller = self._caller(request)
        if isinstance(caller, web.Response):
            return caller
        name = request.match_info["name"]
        reads = OnPool(self._reads, caller.tenant.name)
        if "format" in request.query:
            return await self._export(request, caller.tenant.name, name, request.query["format"])
        found = await reads(functools.partial(self._store.read, caller.tenant.name, request.match_info["id"], name))
        if found is None:
            return _not_found()
        entry, chunks = found
        try:
            first = await reads(functools.partial(_next, chunks))
        except NoKey:
            return _key_retired()
        except SealedError as e:
            if not isinstance(e, Truncated) and entry.get("complete"):
                logger.error("recording file %s of tenant %s does not authenticate", name, caller.tenant.name)
                return _corrupt()
            first = b""  # a file a failure cut before its first whole chunk: nothing authentic to send
        response = web.StreamResponse(
            headers={
                hdrs.CONTENT_TYPE: _TYPES.get(name[name.rfind(".") :], "application/octet-stream"),
                "X-Recording-File-Complete": "true" if entry.get("complete") else "false",
            }
        )
        await response.prepare(request)
        chunk = first
        while chunk is not None:
            await response.write(chunk)
            try:
                chunk = await reads(functools.partial(_next, chunks))
            except SealedError as e:  # cut by a failure (its manifest and header say so), or altered
                if not isinstance(e, Truncated) and entry.get("complete"):
                    logger.error("recording file %s of tenant %s does not authenticate", name, caller.tenant.name)
                break
        await response.write_eof()
        return response

    async def _export(self, request: web.Request, tenant: str, name: str, fmt: str) -> web.StreamResponse:
        """``?format=flac``: an audio file as FLAC, translated speech signed (``recordings/export.py``)."""
        if fmt != "flac" or not name.endswith(OGG):
            return http_error(
                400,
                'format: "flac" exports a recording\'s audio (its .ogg files) as FLAC, its translated speech '
                "with content credentials; leave it out for the file as stored",
                "bad_format",
                param="format",
            )
        rid = request.match_info["id"]
        reads = OnPool(self._reads, tenant)
        manifest = await reads(functools.partial(self._store.manifest, tenant, rid))
        found = await reads(functools.partial(self._store.read, tenant, rid, name))
        folder = self._store.path(tenant, rid)
        if manifest is None or found is None or folder is None:
            return _not_found()
        entry, chunks = found
        made = None
        language = language_of(name)
        if language is not None:  # the service's speech (the source audio is a person's: never signed)
            files = manifest.get("files", ())
            source = next((f.get("sha256") for f in files if f.get("name") == SOURCE_FILE), None)
            made = Made(f"{rid}-{name.removesuffix(OGG)}.flac", self._sessions.card.info.name, source, (language,))
        try:
            out = await reads(functools.partial(export_flac, chunks, folder, self._signer, made))
        except NoKey:
            return _key_retired()
        except SealedError:
            logger.error("recording file %s of tenant %s does not authenticate", name, tenant)
            return _corrupt()
        try:
            size = (await reads(out.stat)).st_size
            response = web.StreamResponse(
                headers={
                    hdrs.CONTENT_TYPE: "audio/flac",
                    hdrs.CONTENT_LENGTH: str(size),
                    "X-Recording-File-Complete": "true" if entry.get("complete") else "false",
                }
            )
            await response.prepare(request)
            f = await reads(functools.partial(_open, out))
            try:
                while chunk := await reads(functools.partial(f.read, _EXPORT_CHUNK)):
                    await response.write(chunk)
            finally:
                await reads(f.close)
            await response.write_eof()
            return response
        finally:
            await reads(functools.partial(out.unlink, missing_ok=True))


def _open(path: Path) -> BinaryIO:
    return open(path, "rb")


def _key_retired() -> web.Response:
    return http_error(
        410,
        "the key this recording was made with is no longer in recordings.key_file: it cannot be decrypted",
        "recording_key_retired",
    )


def _corrupt() -> web.Response:
    return http_error(500, "the stored file does not authenticate: it was altered", "recording_corrupt", "server_error")


def _next(chunks: Iterator[bytes]) -> bytes | None:
    return next(chunks, None)
