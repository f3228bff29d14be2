"""The client's stored-glossary calls (the server's ``Glossaries`` service; the token needs the
``glossaries`` permission): a mixin of ``AsyncTranslateClient``, whose ``_unary`` makes each call
(retried on the next address as every unary call is). Event loop only."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.client.glossary_types import Glossary, GlossaryEntry

#: the ``Glossaries`` service's stub, for ``_unary``
SERVICE = "Glossaries"


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
        return glossary(await self._unary("CreateGlossary", request, timeout_s, service=SERVICE))

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
        return glossary(await self._unary("ReplaceGlossary", request, timeout_s, service=SERVICE))

    async def delete_glossary(self, glossary_id: str, *, timeout_s: float | None = None) -> None:
        await self._unary(
            "DeleteGlossary", pb.DeleteGlossaryRequest(glossary_id=glossary_id), timeout_s, service=SERVICE
        )
