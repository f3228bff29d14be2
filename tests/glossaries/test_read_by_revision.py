"""A request's stored glossaries read by revision (issue 87 J3, ``glossaries/book.py``,
``glossaries/compiled.py``), over a real SQLite store in a temporary folder:

- a glossary's entries are read from the store and made into terms once per revision: the
  requests after the first read only its revision; a replace is seen by the next request at once,
  and so is a delete;
- the terms are those the book gave before (each entry's term, for the request's targets, in the
  stored order) and carry their keys, so ``with_stored`` keys only the request's own entries and
  drops what they say again, as it did;
- the stored entries one request takes are bounded together (``max_entries_per_request``), with
  a message that says what to do;
- two requests naming a revision not kept yet read it once.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from translate_svc.errors import InvalidInput, NotFound
from translate_svc.glossaries.book import GlossaryBook
from translate_svc.glossaries.compiled import StoredTerms
from translate_svc.glossaries.model import Glossary, GlossaryEntry, GlossaryLimits
from translate_svc.glossaries.sqlite_store import SqliteGlossaries
from translate_svc.session.task.change import with_stored
from translate_svc.types import Term, TranslationTask

pytestmark = [pytest.mark.unit, pytest.mark.asyncio]

LIMITS = GlossaryLimits(
    max_entries=100, max_glossaries=5, max_per_request=3, max_import_bytes=1 << 20, max_term_chars=40,
    max_entries_per_request=60,
)  # fmt: skip
LANGUAGES = ("eng", "spa", "fra")


class CountingStore(SqliteGlossaries):
    """The SQLite store, counting the whole reads (``get``) it is asked for."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir, timeout_s=5)
        self.gets = 0

    async def get(self, tenant: str, glossary_id: str) -> Glossary | None:
        self.gets += 1
        await asyncio.sleep(0.01)  # a read that takes a while: two requests meet in it
        return await super().get(tenant, glossary_id)


def entries(n: int, target: str = "spa", word: str = "term") -> list[GlossaryEntry]:
    return [GlossaryEntry(f"{word} {k}", f"{word}-{target} {k}", target) for k in range(n)]


@pytest.fixture
async def book(tmp_path: Path) -> Any:
    store = CountingStore(tmp_path)
    await store.start()
    book = GlossaryBook(store, LIMITS, lambda: LANGUAGES, threads=2, cache_entries=1000)
    yield book, store
    await book.close()
    await store.close()


async def test_a_revision_is_read_once_and_a_change_is_seen_at_once(book: Any) -> None:
    b, store = book
    await b.create("acme", "g", "", [*entries(3), *entries(2, "fra")])
    first = await b.terms("acme", ["g"], ["spa"], "eng")
    again = await b.terms("acme", ["g"], ["spa"], "eng")
    assert store.gets == 1
    assert list(first) == list(again) == [e.term() for e in entries(3)]
    assert isinstance(first, StoredTerms) and len(first.keys) == 3
    both = await b.terms("acme", ["g"], ["spa", "fra"], "eng")
    assert list(both) == [e.term() for e in [*entries(3), *entries(2, "fra")]] and store.gets == 1

    await b.replace("acme", "g", "", entries(4, word="new"))
    assert list(await b.terms("acme", ["g"], ["spa"], "eng")) == [e.term() for e in entries(4, word="new")]
    assert store.gets == 2
    await b.delete("acme", "g")
    with pytest.raises(NotFound):
        await b.terms("acme", ["g"], ["spa"], "eng")


async def test_another_server_s_replace_is_seen_by_its_revision(book: Any, tmp_path: Path) -> None:
    """Another worker (or pod) replaces it: this book's kept revision is not the store's any more."""
    b, store = book
    await b.create("acme", "g", "", entries(3))
    await b.terms("acme", ["g"], ["spa"], "eng")
    other = SqliteGlossaries(tmp_path, timeout_s=5)
    await other.start()
    try:
        g = Glossary("acme", "g", "", tuple(entries(2, word="theirs")))
        await other.replace(g, 0, LIMITS)
    finally:
        await other.close()
    assert list(await b.terms("acme", ["g"], ["spa"], "eng")) == [e.term() for e in entries(2, word="theirs")]
    assert store.gets == 2


async def test_a_glossary_deleted_and_created_again_elsewhere_is_read_again(book: Any, tmp_path: Path) -> None:
    """Another worker deletes it and creates one of the same id: revision 1 again, another glossary."""
    b, store = book
    await b.create("acme", "g", "", entries(3))
    await b.terms("acme", ["g"], ["spa"], "eng")
    await asyncio.sleep(0.005)  # another millisecond
    other = SqliteGlossaries(tmp_path, timeout_s=5)
    await other.start()
    try:
        assert await other.delete("acme", "g")
        now = int(time.time() * 1000)
        await other.create(Glossary("acme", "g", "", tuple(entries(2, word="again")), 1, now, now), LIMITS)
    finally:
        await other.close()
    assert list(await b.terms("acme", ["g"], ["spa"], "eng")) == [e.term() for e in entries(2, word="again")]
    assert store.gets == 2


async def test_requests_naming_an_unread_revision_read_it_once(book: Any) -> None:
    b, store = book
    await b.create("acme", "g", "", entries(20))
    got = await asyncio.gather(*(b.terms("acme", ["g"], ["spa"], "eng") for _ in range(5)))
    assert store.gets == 1 and all(list(g) == list(got[0]) for g in got)


async def test_the_stored_entries_of_one_request_are_bounded_together(book: Any) -> None:
    b, _ = book
    for name in ("a", "b"):
        await b.create("acme", name, "", [*entries(40, word=name), *entries(40, "fra", word=name)])
    assert len(await b.terms("acme", ["a"], ["spa"], "eng")) == 40
    with pytest.raises(InvalidInput) as e:
        await b.terms("acme", ["a", "b"], ["spa"], "eng")
    assert e.value.message == (
        "the glossaries named hold more than 60 entries for this request's targets together (80 by 'b'); "
        "a request takes at most 60 stored entries (glossaries.max_entries_per_request): name fewer "
        "glossaries, or split them by subject"
    )
    with pytest.raises(InvalidInput):
        await b.terms("acme", ["a"], ["spa", "fra"], "eng")  # 80 of one glossary's, for two targets


async def test_own_entries_win_as_before(book: Any) -> None:
    b, _ = book
    await b.create("acme", "g", "", [*entries(3), GlossaryEntry("Acme Cloud", "Nube", "spa", ignore_case=True)])
    stored = await b.terms("acme", ["g"], ["spa"], "eng")
    own = Term("acme  cloud", glossary=True, translation="Mine", target_language="spa", ignore_case=True)
    task = TranslationTask("eng", ("spa",), terms=(Term("boost"), own))
    merged = with_stored(task, stored)
    assert merged.terms == (Term("boost"), own, *[e.term() for e in entries(3)]) and merged.stored_terms == 3
    assert with_stored(task, list(stored)) == merged  # keyed here, as before, without the book's keys
    plain = TranslationTask("eng", ("spa",), terms=(Term("boost"),))
    assert with_stored(plain, stored).stored_terms == 4
