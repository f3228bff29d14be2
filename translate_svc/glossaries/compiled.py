"""Stored glossaries read once per revision (security finding J3): a glossary's entries as the terms a
request takes (``Compiled``), kept by tenant, id and revision (``CompiledCache``), and what a
request is given (``StoredTerms``: the terms, each with its key).

Before, every request that named a glossary read its entries from the store, decoded their JSON,
made a term of each and keyed each (about 85 ms of the event loop for 10,000 entries, per
request). Now a request reads the revision of each glossary it names (one small read), and the
entries are read, decoded and made into terms only for a revision not kept yet, off the event
loop (``book.py``); the terms of one revision are shared by every request that names it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from translate_svc.glossaries.model import Glossary
from translate_svc.types import Term
from translate_svc.words import uncached_key


def term_key(term: Term) -> str:
    """What two glossary entries share when they say the same thing (``session/task/checks.py``'s
    ``with_stored``: an inline entry of the same key wins): the target and the phrase's key."""
    return f"{term.target_language}\0{uncached_key(term.phrase, ignore_case=term.ignore_case)}"


@dataclass(frozen=True, eq=False)
class Compiled:
    """One revision of one glossary as a request takes it: its entries as terms, in their stored
    order, and each one's ``term_key``. Read-only: shared by every request naming it."""

    #: its revision and when it was written (``GlossaryStore.version``)
    version: tuple[int, int]
    terms: tuple[Term, ...]
    keys: tuple[str, ...]
    #: the target languages of its entries, sorted
    targets: tuple[str, ...]

    @classmethod
    def of(cls, glossary: Glossary) -> Compiled:
        """Made off the event loop (about 3 µs an entry)."""
        terms = tuple(e.term() for e in glossary.entries)
        version = (glossary.revision, glossary.updated_ms)
        return cls(version, terms, tuple(term_key(t) for t in terms), glossary.target_languages)

    def for_targets(self, wanted: set[str]) -> tuple[Sequence[Term], Sequence[str]]:
        """Its terms (and their keys) for the ``wanted`` targets, in their stored order: its own
        tuples, unless some of its targets are not wanted."""
        if wanted.issuperset(self.targets):
            return self.terms, self.keys
        kept = [n for n, t in enumerate(self.terms) if t.target_language in wanted]
        return [self.terms[n] for n in kept], [self.keys[n] for n in kept]


class StoredTerms(tuple[Term, ...]):
    """The stored glossaries' terms one request takes (a tuple, as ``GlossaryBook.terms`` has
    always returned), with each one's ``term_key`` (``keys``, in the same order), so that the
    request's own entries are matched against them without keying thousands again."""

    keys: tuple[str, ...]

    def __new__(cls, terms: Iterable[Term], keys: Iterable[str]) -> StoredTerms:
        self = super().__new__(cls, terms)
        self.keys = tuple(keys)
        return self


class CompiledCache:
    """The glossaries read, by (tenant, id), each at the version read last, holding at most
    ``most`` entries (least recently used dropped first; 0: nothing is kept). A glossary's newer
    version replaces its older one. Event loop only."""

    def __init__(self, most: int) -> None:
        self._most = most
        self._table: OrderedDict[tuple[str, str], Compiled] = OrderedDict()
        self.held = 0

    def get(self, tenant: str, glossary_id: str, version: tuple[int, int]) -> Compiled | None:
        found = self._table.get((tenant, glossary_id))
        if found is None or found.version != version:
            return None
        self._table.move_to_end((tenant, glossary_id))
        return found

    def put(self, tenant: str, glossary_id: str, compiled: Compiled) -> None:
        if len(compiled.terms) > self._most:
            return
        old = self._table.pop((tenant, glossary_id), None)
        if old is not None:
            self.held -= len(old.terms)
        self._table[(tenant, glossary_id)] = compiled
        self.held += len(compiled.terms)
        while self.held > self._most:
            _, dropped = self._table.popitem(last=False)
            self.held -= len(dropped.terms)

    def drop(self, tenant: str, glossary_id: str) -> None:
        old = self._table.pop((tenant, glossary_id), None)
        if old is not None:
            self.held -= len(old.terms)
