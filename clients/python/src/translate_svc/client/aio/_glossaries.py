"""The client's stored-glossary calls (the server's ``Glossaries`` service; the token needs the
``glossaries`` permission): a mixin of ``AsyncTranslateClient``, whose ``_unary`` makes each call
(retried on the next address as every unary call is). A CSV or TBX file goes over
``ImportGlossary`` in chunks (issue 91), so a file of any size the server takes
(``glossary_import_bytes``, 16 MiB by default: a 10,000-entry TBX) passes its per-message receive
limit; an older server without it gets the file in one ``CreateGlossary``/``ReplaceGlossary``
message. Event loop only."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.client.errors import TranslateError
from translate_svc.client.glossary_types import Glossary, GlossaryEntry

logger = logging.getLogger(__name__)

#: the ``Glossaries`` service's stub, for ``_unary``
SERVICE = "Glossaries"
#: a file travels over ImportGlossary in chunks of this much: within every server's per-message
#: limit (``ServerLimits.glossary_import_message_bytes``, 64 KiB) with the message's framing
IMPORT_CHUNK_BYTES = 60 * 1024


def _bytes(value: bytes | str | Path) -> bytes:
    return value.read_bytes() if isinstance(value, Path) else value.encode() if isinstance(value, str) else value


def _content(
    entries: Sequence[GlossaryEntry] | None,
    csv: bytes | str | Path | None,
    tbx: bytes | str | Path | None = None,
    source_language: str = "",
    target_languages: Sequence[str] = (),
) -> pb.GlossaryContent:
    if sum(x is not None for x in (entries, csv, tbx)) != 1:
        raise ValueError("give entries=, csv= or tbx=, one of them")
    if (source_language or target_languages) and tbx is None:
        raise ValueError("source_language= and target_languages= go with tbx=")
    if tbx is not None:
        if not source_language:
            raise ValueError("tbx= needs source_language= (the language of its phrases: a TBX names none)")
        return pb.GlossaryContent(
            tbx=pb.TbxImport(data=_bytes(tbx), source_language=source_language, target_languages=list(target_languages))
        )
    if csv is not None:
        return pb.GlossaryContent(csv=_bytes(csv))
    assert entries is not None
    return pb.GlossaryContent(
        entries=pb.GlossaryEntries(
            entries=[
                pb.GlossaryEntry(
                    phrase=e.phrase, translation=e.translation, target_language=e.target, ignore_case=e.ignore_case
                )
                for e in entries
            ]
        )
    )


def _import_messages(
    content: pb.GlossaryContent, header: pb.GlossaryImportHeader
) -> Iterator[pb.ImportGlossaryRequest]:
    """A file's ``ImportGlossary`` messages: ``header`` (its format and TBX fields from
    ``content``), then the file in chunks."""
    first = pb.GlossaryImportHeader()
    first.CopyFrom(header)
    if content.WhichOneof("content") == "tbx":
        first.format = pb.GLOSSARY_FILE_TBX
        first.source_language = content.tbx.source_language
        first.target_languages.extend(content.tbx.target_languages)
        data = content.tbx.data
    else:
        first.format = pb.GLOSSARY_FILE_CSV
        data = content.csv
    yield pb.ImportGlossaryRequest(header=first)
    for at in range(0, len(data), IMPORT_CHUNK_BYTES):
        yield pb.ImportGlossaryRequest(data=data[at : at + IMPORT_CHUNK_BYTES])


def glossary(msg: pb.Glossary) -> Glossary:
    return Glossary(
        id=msg.glossary_id,
        display_name=msg.display_name,
        entry_count=msg.entry_count,
        targets=tuple(msg.target_languages),
        revision=msg.revision,
        created_ms=msg.create_time_unix_ms,
        updated_ms=msg.update_time_unix_ms,
        entries=tuple(GlossaryEntry(e.phrase, e.translation, e.target_language, e.ignore_case) for e in msg.entries),
    )


class GlossaryCalls:
    """``create_glossary``, ``list_glossaries``, ``get_glossary``, ``replace_glossary`` and
    ``delete_glossary``. Another tenant's glossary is NOT_FOUND (``TranslateError``)."""

    if TYPE_CHECKING:  # AsyncTranslateClient's

        async def _unary(
            self,
            method: str,
            request: Any,
            timeout_s: float | None,
            *,
            messages: Callable[[], Iterator[Any]] | None = None,
            service: str = "Translator",
        ) -> Any: ...

        async def _lacks(self, method: str, timeout_s: float | None, *, service: str = "Translator") -> bool: ...

    async def _kept(self, method: str, request: Any, header: pb.GlossaryImportHeader, timeout_s: float | None) -> Any:
        """``request`` (a create's or replace's): its CSV or TBX over ``ImportGlossary`` in chunks
        (``header`` says which glossary); its entries, and any content on a server without
        ImportGlossary (UNIMPLEMENTED; or INTERNAL while chunks were in flight, then asked again
        with no message), in one ``method`` message."""
        content: pb.GlossaryContent = request.content
        if content.WhichOneof("content") in ("csv", "tbx"):
            try:
                return await self._unary(
                    "ImportGlossary",
                    None,
                    timeout_s,
                    messages=lambda: _import_messages(content, header),
                    service=SERVICE,
                )
            except TranslateError as e:
                if e.code not in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.INTERNAL):
                    raise
                if e.code == grpc.StatusCode.INTERNAL and not await self._lacks(
                    "ImportGlossary", timeout_s, service=SERVICE
                ):
                    raise
            logger.info("the server has no ImportGlossary (an older server): sending the file in one %s", method)
        return await self._unary(method, request, timeout_s, service=SERVICE)

    async def create_glossary(
        self,
        glossary_id: str,
        *,
        entries: Sequence[GlossaryEntry] | None = None,
        csv: bytes | str | Path | None = None,
        tbx: bytes | str | Path | None = None,
        source_language: str = "",
        target_languages: Sequence[str] = (),
        display_name: str = "",
        timeout_s: float | None = None,
    ) -> Glossary:
        """A new glossary of ``entries``, of a CSV (bytes, text or a file: a header row naming
        phrase,translation,target_language and optionally ignore_case), or of a TBX file (``tbx``,
        TBX-Basic/v2 or v3, with ``source_language``: the language its phrases are said in, a
        model code or a tag such as "en"; ``target_languages``: only these of its languages)."""
        request = pb.CreateGlossaryRequest(
            glossary_id=glossary_id,
            display_name=display_name,
            content=_content(entries, csv, tbx, source_language, target_languages),
        )
        header = pb.GlossaryImportHeader(glossary_id=glossary_id, display_name=display_name)
        return glossary(await self._kept("CreateGlossary", request, header, timeout_s))

    async def list_glossaries(self, *, timeout_s: float | None = None) -> list[Glossary]:
        resp = await self._unary("ListGlossaries", pb.ListGlossariesRequest(), timeout_s, service=SERVICE)
        return [glossary(g) for g in resp.glossaries]

    async def get_glossary(
        self, glossary_id: str, *, entries: bool = False, timeout_s: float | None = None
    ) -> Glossary:
        request = pb.GetGlossaryRequest(glossary_id=glossary_id, include_entries=entries)
        return glossary(await self._unary("GetGlossary", request, timeout_s, service=SERVICE))

    async def replace_glossary(
        self,
        glossary_id: str,
        *,
        entries: Sequence[GlossaryEntry] | None = None,
        csv: bytes | str | Path | None = None,
        tbx: bytes | str | Path | None = None,
        source_language: str = "",
        target_languages: Sequence[str] = (),
        display_name: str = "",
        revision: int = 0,
        timeout_s: float | None = None,
    ) -> Glossary:
        """Its name and every entry replaced at once (``entries``, ``csv`` or ``tbx`` as
        ``create_glossary`` takes them); ``revision``: the one read (ABORTED if it
        changed meanwhile; 0: replace whatever is there)."""
        request = pb.ReplaceGlossaryRequest(
            glossary_id=glossary_id,
            display_name=display_name,
            content=_content(entries, csv, tbx, source_language, target_languages),
            revision=revision,
        )
        header = pb.GlossaryImportHeader(
            glossary_id=glossary_id, display_name=display_name, replace=True, revision=revision
        )
        return glossary(await self._kept("ReplaceGlossary", request, header, timeout_s))

    async def delete_glossary(self, glossary_id: str, *, timeout_s: float | None = None) -> None:
        await self._unary(
            "DeleteGlossary", pb.DeleteGlossaryRequest(glossary_id=glossary_id), timeout_s, service=SERVICE
        )
