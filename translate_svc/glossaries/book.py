"""A tenant's stored glossaries as the doors and the drivers use them (issue 73): the checks of
each change, and the terms a request's ``glossaries`` ids stand for.

Every operation takes the caller's tenant: a glossary is found only under its own tenant, so
another tenant's id is NOT_FOUND, as one that does not exist (never PERMISSION_DENIED: that would
say it exists). Event loop only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

from translate_svc.errors import InvalidInput, NotFound, NotInstalled, shown
from translate_svc.glossaries.model import (
    Glossary,
    GlossaryEntry,
    GlossaryLimits,
    Summary,
    check_entries,
    check_id,
    check_name,
)
from translate_svc.glossaries.store import GlossaryStore
from translate_svc.types import Term

#: the limits of a server that keeps no glossaries (nothing is checked against them)
NO_GLOSSARIES = GlossaryLimits(max_entries=0, max_glossaries=0, max_per_request=0, max_import_bytes=0, max_term_chars=0)

OFF = (
    "this server keeps no glossaries: its operator turns them on with glossaries.enabled (and "
    "glossaries.data_dir, or cluster.redis_url); meanwhile send the entries as TRANSLATE terms"
)


class GlossaryBook:
    """The glossaries of every tenant, in ``store`` (None: this server keeps none: every operation
    and every request naming one is refused FAILED_PRECONDITION). ``languages``: the model's text
    languages (an entry's target is one)."""

    def __init__(
        self, store: GlossaryStore | None, limits: GlossaryLimits, languages: Callable[[], Iterable[str]]
    ) -> None:
        self.store = store
        self.limits = limits
        self._languages = languages

    def languages(self) -> Iterable[str]:
        """The model's text languages (an entry's target is one)."""
        return self._languages()

    def kept_limits(self) -> GlossaryLimits | None:
        """The limits a client is told (None: this server keeps no glossaries)."""
        return self.limits if self.store is not None else None

    def kept(self) -> GlossaryStore:
        if self.store is None:
            raise NotInstalled(OFF)
        return self.store

    async def create(
        self, tenant: str, glossary_id: str, display_name: str, entries: Sequence[GlossaryEntry]
    ) -> Glossary:
        store = self.kept()
        check_id(glossary_id)
        check_name(display_name)
        check_entries(entries, self.limits, self._languages())
        now = int(time.time() * 1000)
        glossary = Glossary(tenant, glossary_id, display_name, tuple(entries), 1, now, now)
        await store.create(glossary, self.limits.max_glossaries)
        return glossary

    async def get(self, tenant: str, glossary_id: str) -> Glossary:
        check_id(glossary_id)
        found = await self.kept().get(tenant, glossary_id)
        if found is None:
            raise NotFound(_missing(glossary_id))
        return found

    async def list(self, tenant: str) -> list[Summary]:
        return await self.kept().list(tenant)

    async def replace(
        self,
        tenant: str,
        glossary_id: str,
        display_name: str,
        entries: Sequence[GlossaryEntry],
        expected_revision: int = 0,
    ) -> Glossary:
        store = self.kept()
        check_id(glossary_id)
        check_name(display_name)
        if expected_revision < 0:
            raise InvalidInput("revision is negative: send the revision read (0: replace whatever is there)")
        check_entries(entries, self.limits, self._languages())
        now = int(time.time() * 1000)
        return await store.replace(
            Glossary(tenant, glossary_id, display_name, tuple(entries), 0, now, now), expected_revision
        )

    async def delete(self, tenant: str, glossary_id: str) -> None:
        check_id(glossary_id)
        if not await self.kept().delete(tenant, glossary_id):
            raise NotFound(_missing(glossary_id))

    async def terms(
        self, tenant: str, glossary_ids: Sequence[str], targets: Sequence[str], source: str = ""
    ) -> tuple[Term, ...]:
        """The glossary entries a request's ``glossaries`` stand for: each named glossary's entries
        for the request's targets (not its source language), read now. A glossary with no entry for
        any of them could not act: refused, as an inline entry for another language is."""
        if not glossary_ids:
            return ()
        store = self.kept()
        if len(glossary_ids) > self.limits.max_per_request:
            raise InvalidInput(
                f"{len(glossary_ids)} glossaries named; at most {self.limits.max_per_request} per request "
                "(glossaries.max_per_request): merge them"
            )
        if len(set(glossary_ids)) != len(glossary_ids):
            raise InvalidInput("glossaries names one glossary more than once: name each once")
        wanted = set(targets) - {source}
        out: list[Term] = []
        for glossary_id in glossary_ids:
            check_id(glossary_id)
            found = await store.get(tenant, glossary_id)
            if found is None:
                raise NotFound(_missing(glossary_id))
            mine = [e.term() for e in found.entries if e.target_language in wanted]
            if not mine:
                raise InvalidInput(
                    f"glossary {shown(glossary_id)} has no entry for {', '.join(sorted(wanted)) or 'no target'} "
                    f"(its entries are for {', '.join(found.target_languages)}): translate into one of them, "
                    "or do not name it"
                )
            out += mine
        return tuple(out)


def _missing(glossary_id: str) -> str:
    return f"no glossary {shown(glossary_id)} for this caller's tenant: ListGlossaries shows its glossaries"
