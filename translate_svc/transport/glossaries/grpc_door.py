"""The ``Glossaries`` gRPC service on the gRPC port (``rpc.PortServices``): it shares the port's TLS,
token interceptor (each method needs the ``glossaries`` permission), call limits and lifetime.
Each method is unary on the wire and served request-streaming, as the Translator's are: admitted
as a unary call of its caller before its request is read, which must come within
``limits.request_read_timeout_s`` and be at most ``glossaries.max_import_bytes`` and 64 KiB. A
create's or replace's request is parsed, and its entries converted and checked, on the
glossaries' own threads (``GlossaryBook.work``; security finding J4), never on the event loop.

``ImportGlossary`` is client-streaming on the wire too: a header, then a CSV's or TBX's
bytes in chunks, so a file larger than the port's receive limit (4 MiB; a 10,000-entry TBX as
terminology tools export it is 5-10 MB) comes in one call. Admitted as a unary call, then one of
the process's import slots, before its first message is read; its messages, size and time are
bounded as ``imports.py`` says.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.errors import ServiceError
from translate_svc.glossaries.book import GlossaryBook
from translate_svc.glossaries.model import GlossaryEntry
from translate_svc.session.manager import SessionManager
from translate_svc.transport.api_log import Method, logged_method
from translate_svc.transport.door import DoorContext
from translate_svc.transport.glossaries import convert
from translate_svc.transport.glossaries.imports import Clock, drop_rest, read_import
from translate_svc.transport.rpc import (
    call_deadline,
    call_of,
    caller_of,
    parse_message,
    read_request,
    token_key,
    unary_errors,
)
from translate_svc.transport.rpc_errors import status_for
from translate_svc.transport.tokens import Permission, TokenStore

M = TypeVar("M", bound=Message)

SERVICE = pb.DESCRIPTOR.services_by_name["Glossaries"].full_name
METHODS = ("CreateGlossary", "GetGlossary", "ListGlossaries", "ReplaceGlossary", "DeleteGlossary", "ImportGlossary")
METHOD_PERMISSIONS: Mapping[str, Permission] = {f"/{SERVICE}/{m}": Permission.GLOSSARIES for m in METHODS}
#: what a request holds beyond its content
SMALL = 64 * 1024


async def _abort(context: grpc.aio.ServicerContext[Any, Any], err: ServiceError) -> None:
    st = status_for(err)
    await context.abort(st.code, st.details, st.trailing_metadata)


_errors = unary_errors(_abort)
#: each call's access line, its code the refusal's
_logged = logged_method(call_of, lambda door: caller_of(door._tokens).tenant.name)


def _unary(handler: Method) -> Method:
    return _errors(_logged(handler))


class GlossariesDoor:
    """The service of one process. Event loop only."""

    def __init__(self, ctx: DoorContext) -> None:
        self._m: SessionManager = ctx.sessions
        self._tokens: TokenStore | None = ctx.tokens
        self._drain_s = ctx.settings.server.error_drain_s
        #: an import's minimum rate (``imports.Clock``): the port's HTTP rate, after its read timeout
        self._rate = (ctx.settings.limits.http_min_transfer_bytes_per_s, ctx.settings.limits.request_read_timeout_s)
        self.permissions: Mapping[str, Permission] = METHOD_PERMISSIONS

    @property
    def _book(self) -> GlossaryBook:
        return self._m.glossaries

    def handlers(self) -> Sequence[grpc.GenericRpcHandler]:
        unary = grpc.stream_unary_rpc_method_handler
        return (
            grpc.method_handlers_generic_handler(
                SERVICE,
                {
                    "CreateGlossary": unary(self.CreateGlossary, response_serializer=pb.Glossary.SerializeToString),
                    "GetGlossary": unary(self.GetGlossary, response_serializer=pb.Glossary.SerializeToString),
                    "ListGlossaries": unary(
                        self.ListGlossaries, response_serializer=pb.ListGlossariesResponse.SerializeToString
                    ),
                    "ReplaceGlossary": unary(self.ReplaceGlossary, response_serializer=pb.Glossary.SerializeToString),
                    "DeleteGlossary": unary(
                        self.DeleteGlossary, response_serializer=pb.DeleteGlossaryResponse.SerializeToString
                    ),
                    "ImportGlossary": unary(self.ImportGlossary, response_serializer=pb.Glossary.SerializeToString),
                },
            ),
        )

    def describe(self) -> list[str]:
        return ["stored glossaries (Glossaries) on the same port"] if self._book.store is not None else []

    async def _serve(
        self,
        raw_requests: AsyncIterator[bytes],
        kind: type[M],
        limit: int,
        answer: Callable[[str, M], Awaitable[Message]],
    ) -> Message:
        """Admit the call as its caller's unary call, read its one request by the deadline, answer."""
        limit_s = self._m.limits.request_read_timeout_s
        deadline = call_deadline(limit_s)
        caller = caller_of(self._tokens)
        async with self._m.admit_unary(caller.tenant, token_key(caller)):
            raw = await read_request(raw_requests, deadline, limit_s, kind.DESCRIPTOR.name)
            parse = functools.partial(
                parse_message,
                kind,
                raw,
                limit,
                too_large="send a large file over ImportGlossary (in chunks), or split it",
                unparsable=": generate the client from this server's translate.proto",
            )
            msg = parse() if limit <= SMALL else await self._book.work(parse)  # 4 MiB: off the loop
            return await answer(caller.tenant.name, msg)

    async def _entries(self, content: pb.GlossaryContent) -> list[GlossaryEntry]:
        """A create's or replace's entries, converted on the glossaries' threads (a 5,000-entry
        TBX takes 0.2-0.4 s of Python: not on the event loop the streams share)."""
        book = self._book
        return await book.work(convert.entries_from_pb, content, book.limits, list(book.languages()))

    def _content_limit(self) -> int:
        return self._book.limits.max_import_bytes + SMALL

    @_unary
    async def CreateGlossary(self, raw: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]) -> Message:
        async def answer(tenant: str, msg: pb.CreateGlossaryRequest) -> Message:
            self._book.kept()
            entries = await self._entries(msg.content)
            made = await self._book.create(tenant, msg.glossary_id, msg.display_name, entries)
            return convert.glossary_to_pb(made)

        return await self._serve(raw, pb.CreateGlossaryRequest, self._content_limit(), answer)

    @_unary
    async def GetGlossary(self, raw: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]) -> Message:
        async def answer(tenant: str, msg: pb.GetGlossaryRequest) -> Message:
            found = await self._book.get(tenant, msg.glossary_id)
            if not msg.include_entries:
                return convert.glossary_to_pb(found)
            return await self._book.work(convert.glossary_to_pb, found, entries=True)  # off the loop

        return await self._serve(raw, pb.GetGlossaryRequest, SMALL, answer)

    @_unary
    async def ListGlossaries(self, raw: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]) -> Message:
        async def answer(tenant: str, msg: pb.ListGlossariesRequest) -> Message:
            found = await self._book.list(tenant)
            return pb.ListGlossariesResponse(glossaries=[convert.summary_to_pb(s) for s in found])

        return await self._serve(raw, pb.ListGlossariesRequest, SMALL, answer)

    @_unary
    async def ReplaceGlossary(self, raw: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]) -> Message:
        async def answer(tenant: str, msg: pb.ReplaceGlossaryRequest) -> Message:
            self._book.kept()
            entries = await self._entries(msg.content)
            new = await self._book.replace(tenant, msg.glossary_id, msg.display_name, entries, msg.revision)
            return convert.glossary_to_pb(new)

        return await self._serve(raw, pb.ReplaceGlossaryRequest, self._content_limit(), answer)

    @_unary
    async def DeleteGlossary(self, raw: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]) -> Message:
        async def answer(tenant: str, msg: pb.DeleteGlossaryRequest) -> Message:
            await self._book.delete(tenant, msg.glossary_id)
            return pb.DeleteGlossaryResponse()

        return await self._serve(raw, pb.DeleteGlossaryRequest, SMALL, answer)

    @_unary
    async def ImportGlossary(self, raw: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]) -> Message:
        """A header, then the file in chunks: admitted, then an import slot, then read, parsed on
        the glossaries' parse processes and kept as a create or a replace."""
        book = self._book
        limits = book.limits
        clock = Clock.starting(
            limits, *self._rate, "limits.http_min_transfer_bytes_per_s, ServerLimits.request_read_timeout_ms"
        )
        caller = caller_of(self._tokens)
        tenant = caller.tenant.name
        try:
            async with self._m.admit_unary(caller.tenant, token_key(caller)):
                book.kept()
                with book.imports.taken(tenant):
                    header, data = await read_import(raw, limits, clock)
                    entries = await book.parse(convert.import_entries, header, data, limits, list(book.languages()))
                    del data
                if header.replace:
                    made = await book.replace(tenant, header.glossary_id, header.display_name, entries, header.revision)
                else:
                    made = await book.create(tenant, header.glossary_id, header.display_name, entries)
                return convert.glossary_to_pb(made)
        except ServiceError:
            # a client still sending would see its own write fail (INTERNAL), not this status
            # (grpc/grpc#36066): what it still sends is read and dropped first, for a bounded time
            await drop_rest(raw, self._drain_s)
            raise
