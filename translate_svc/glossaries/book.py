"""A tenant's stored glossaries as the doors and the drivers use them: the checks of
each change, and the terms a request's ``glossaries`` ids stand for.

Every operation takes the caller's tenant: a glossary is found only under its own tenant, so
another tenant's id is NOT_FOUND, as one that does not exist (never PERMISSION_DENIED: that would
say it exists). Event loop only.

Nothing of a glossary's size runs on the event loop (security findings J3, J4): a create's or replace's
entries are checked and a glossary read for a request made into terms on a few threads of the
book's own (``work``, ``glossaries.threads``; never the loop's default executor, which every
other thread hop of the process shares); a door's file (TBX, CSV, a JSON body) is parsed in
processes of the book's own (``parse``, ``glossaries.parse_processes``: a parse's Python under
this process's interpreter lock made a bystander's stream late), sandboxed
(``translate_svc/sandbox/``: each within ``glossaries.parse_memory_mb`` of address space and
``PARSE_CPU_S`` of CPU, so a file whose parse would take more is refused naming it, and the
process ends with its call); a request's glossaries are kept
read by revision (``compiled.py``), and the stored entries one request takes are bounded
together (``glossaries.max_entries_per_request``).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from translate_svc.errors import InvalidInput, NotFound, NotInstalled, shown
from translate_svc.glossaries.compiled import Compiled, CompiledCache, StoredTerms
from translate_svc.glossaries.imports import ImportSlots
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
from translate_svc.sandbox.pool import OverLimit, Sandbox, SandboxLimits
from translate_svc.types import Term

P = ParamSpec("P")
T = TypeVar("T")

#: the limits of a server that keeps no glossaries (nothing is checked against them)
NO_GLOSSARIES = GlossaryLimits(max_entries=0, max_glossaries=0, max_per_request=0, max_import_bytes=0, max_term_chars=0)

#: the CPU one parse may take (a 10,000-entry TBX of 9 MB takes about a second)
PARSE_CPU_S = 60.0

OFF = (
    "this server keeps no glossaries: its operator turns them on with glossaries.enabled (and "
    "glossaries.data_dir, or cluster.redis_url); meanwhile send the entries as TRANSLATE terms"
)


class GlossaryBook:
    """The glossaries of every tenant, in ``store`` (None: this server keeps none: every operation
    and every request naming one is refused FAILED_PRECONDITION). ``languages``: the model's text
    languages (an entry's target is one); ``threads``: the book's own, for the work of a
    glossary's size; ``parse_processes``: its processes that parse files (0: its threads), each
    within ``parse_memory_mb`` of address space; ``cache_entries``: the entries it keeps read by
    revision."""

    def __init__(
        self,
        store: GlossaryStore | None,
        limits: GlossaryLimits,
        languages: Callable[[], Iterable[str]],
        *,
        threads: int = 2,
        parse_processes: int = 2,
        parse_memory_mb: int = 512,
        cache_entries: int = 50_000,
    ) -> None:
        self.store = store
        self.limits = limits
        self._languages = languages
        self._threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self._parsers = None
        if parse_processes:
            bounds = SandboxLimits(
                parse_processes,
                parse_processes,
                parse_memory_mb,
                idle_s=600.0,
                what="glossary parses",
                settings=("glossaries.parse_processes", "glossaries.parse_processes", "glossaries.parse_memory_mb"),
            )
            self._parsers = Sandbox(bounds, self.work)
        self._cache = CompiledCache(cache_entries)
        #: the creates, replaces and imports whose files this process holds at once
        self.imports = ImportSlots(limits.max_imports, limits.max_imports_per_tenant)
        #: a revision being read for one request, which another naming it meanwhile waits for
        self._reading: dict[tuple[str, str, int, int], asyncio.Future[Compiled]] = {}

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

    async def work(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn`` on the book's threads (parsing a body, checking entries, reading a glossary
        into terms): at most ``threads`` at once, the rest waiting their turn; the loop goes on."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="glossary-work")
        call = functools.partial(fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    async def parse(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn`` (a module-level parser of a file: TBX, CSV, JSON) in the glossaries' parse
        processes (never under this process's interpreter lock); on the book's threads where there
        are none (``parse_processes`` 0). A file whose parse needs more than a process may take
        is refused (INVALID_ARGUMENT) naming the bound."""
        if self._parsers is None:
            return await self.work(fn, *args, **kwargs)
        try:
            return await self._parsers.run(None, PARSE_CPU_S, fn, *args, **kwargs)
        except OverLimit as e:
            raise InvalidInput(_too_much(e, self._parsers.limits.memory_mb)) from None

    async def close(self) -> None:
        """Its threads and processes end (a call still waiting for one fails)."""
        if self._parsers is not None:
            await self._parsers.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    async def create(
        self, tenant: str, glossary_id: str, display_name: str, entries: Sequence[GlossaryEntry]
    ) -> Glossary:
        store = self.kept()
        check_id(glossary_id)
        check_name(display_name)
        await self.work(check_entries, entries, self.limits, list(self._languages()))
        now = int(time.time() * 1000)
        glossary = Glossary(tenant, glossary_id, display_name, tuple(entries), 1, now, now)
        await store.create(glossary, self.limits)
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
        await self.work(check_entries, entries, self.limits, list(self._languages()))
        now = int(time.time() * 1000)
        new = await store.replace(
            Glossary(tenant, glossary_id, display_name, tuple(entries), 0, now, now), expected_revision, self.limits
        )
        self._cache.drop(tenant, glossary_id)
        return new

    async def delete(self, tenant: str, glossary_id: str) -> None:
        check_id(glossary_id)
        if not await self.kept().delete(tenant, glossary_id):
            raise NotFound(_missing(glossary_id))
        self._cache.drop(tenant, glossary_id)

    async def terms(
        self, tenant: str, glossary_ids: Sequence[str], targets: Sequence[str], source: str = ""
    ) -> tuple[Term, ...]:
        """The glossary entries a request's ``glossaries`` stand for: each named glossary's entries
        for the request's targets (not its source language), as of its revision now. A glossary
        with no entry for any of them could not act: refused, as an inline entry for another
        language is; more than ``max_entries_per_request`` of them together: refused. The result
        is a ``StoredTerms`` (each term with its key)."""
        if not glossary_ids:
            return ()
        store = self.kept()
        most = self.limits.max_entries_per_request
        if len(glossary_ids) > self.limits.max_per_request:
            raise InvalidInput(
                f"{len(glossary_ids)} glossaries named; at most {self.limits.max_per_request} per request "
                "(glossaries.max_per_request): merge them"
            )
        if len(set(glossary_ids)) != len(glossary_ids):
            raise InvalidInput("glossaries names one glossary more than once: name each once")
        wanted = set(targets) - {source}
        terms: list[Sequence[Term]] = []
        keys: list[Sequence[str]] = []
        taken = 0
        for glossary_id in glossary_ids:
            check_id(glossary_id)
            compiled = await self._compiled(store, tenant, glossary_id)
            mine, mine_keys = compiled.for_targets(wanted)
            if not mine:
                raise InvalidInput(
                    f"glossary {shown(glossary_id)} has no entry for {', '.join(sorted(wanted)) or 'no target'} "
                    f"(its entries are for {', '.join(compiled.targets)}): translate into one of them, "
                    "or do not name it"
                )
            taken += len(mine)
            if taken > most:
                raise InvalidInput(
                    f"the glossaries named hold more than {most} entries for this request's targets together "
                    f"({taken} by {shown(glossary_id)}); a request takes at most {most} stored entries "
                    "(glossaries.max_entries_per_request): name fewer glossaries, or split them by subject"
                )
            terms.append(mine)
            keys.append(mine_keys)
        return StoredTerms(itertools.chain.from_iterable(terms), itertools.chain.from_iterable(keys))

    async def _compiled(self, store: GlossaryStore, tenant: str, glossary_id: str) -> Compiled:
        """The glossary as of its revision now: kept, or read (once, whoever else asks meanwhile)
        and made into terms off the loop."""
        version = await store.version(tenant, glossary_id)
        if version is None:
            raise NotFound(_missing(glossary_id))
        kept = self._cache.get(tenant, glossary_id, version)
        if kept is not None:
            return kept
        key = (tenant, glossary_id, *version)
        reading = self._reading.get(key)
        if reading is None:
            reading = self._reading[key] = asyncio.ensure_future(self._read(store, tenant, glossary_id))
            reading.add_done_callback(lambda done: self._reading.pop(key, None) and None)
            reading.add_done_callback(_retrieved)
        return await asyncio.shield(reading)  # a request that leaves does not end the others' read

    async def _read(self, store: GlossaryStore, tenant: str, glossary_id: str) -> Compiled:
        found = await store.get(tenant, glossary_id)
        if found is None:
            raise NotFound(_missing(glossary_id))
        compiled = await self.work(Compiled.of, found)
        self._cache.put(tenant, glossary_id, compiled)
        return compiled


def _retrieved(done: asyncio.Future[Compiled]) -> None:
    """Every request that waited for a read surfaces its failure; one nobody waits for any more
    is not logged as never retrieved."""
    if not done.cancelled():
        done.exception()


def _missing(glossary_id: str) -> str:
    return f"no glossary {shown(glossary_id)} for this caller's tenant: ListGlossaries shows its glossaries"


def _too_much(e: OverLimit, memory_mb: int) -> str:
    """A parse that its process's bounds ended, in a glossary's words."""
    if e.kind == "memory":
        said = f"needs more than {memory_mb} MB of memory to parse (glossaries.parse_memory_mb)"
    elif e.kind == "cpu":
        said = f"takes more than {PARSE_CPU_S:.0f} s of CPU to parse"
    else:
        said = "crashed its parser"
    return f"the glossary's file {said}: split it into smaller glossaries, or check that it is the format it says"
