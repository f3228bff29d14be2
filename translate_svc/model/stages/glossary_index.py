"""Where a row's glossary entries are said in its source (security finding J3): each (terms, language)'s
entries as one ``words.PhraseIndex`` (an Aho-Corasick automaton), so a row asks one pass of its
source instead of one ``find`` per entry (a stored glossary brings thousands: a row of a
10,000-entry glossary took about 18 ms of this thread in finds, and the event loop shared the GIL
with it).

An index is built on a thread of its own (``glossary-index``; pyahocorasick's ``make_automaton``
lets the GIL go), never on the model thread: until it is built, a row looks for each entry as
before (``RowEntries.index`` None), so a glossary seen once costs what it always did, and one seen
again (the next segment of the stream, another call naming it) costs one pass. Kept twice, both
bounded by the phrases' characters they hold (``MAX_INDEXED_CHARS``; an index takes about 50 bytes
a character), least recently used dropped first:

- by the terms tuple's identity: a stream's every segment (and a text call's every text) passes
  the task's one tuple, so a row costs a dictionary look-up;
- by the entries' phrases and cases: another call naming the same stored glossary (a new task, a
  new tuple), or a job decoded from the engine process's wire (new objects every time), finds the
  index built for the first (the key costs about 0.2 µs an entry to make, once per tuple).

Thread-safe (a lock around the tables; an index is read-only once built).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from translate_svc.types import Term
from translate_svc.words import PhraseIndex

logger = logging.getLogger(__name__)

#: phrase characters kept indexed, in each table (a full stored glossary of 10,000 entries of 20
#: characters is 200,000; an index takes about 50 bytes a character)
MAX_INDEXED_CHARS = 1_000_000
#: indexes waiting for the builder at once; a row whose index cannot be queued looks for each entry
MAX_BUILDS_WAITING = 8

K = TypeVar("K")
V = TypeVar("V")


class ContentKey:
    """An index's key by content: the language, and each entry's phrase and whether it folds
    case. Its hash is computed once (a tuple's is not kept, and this one has thousands of items)."""

    __slots__ = ("_hash", "chars", "value")

    def __init__(self, language: str, entries: Sequence[Term]) -> None:
        self.value = (language, tuple((t.phrase, t.folds_case) for t in entries))
        self._hash = hash(self.value)
        #: what an index of it weighs
        self.chars = sum(len(t.phrase) for t in entries)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return self is other or (
            isinstance(other, ContentKey) and self._hash == other._hash and self.value == other.value
        )


@dataclass(frozen=True, eq=False)
class RowEntries:
    """A row's glossary entries (its terms for one target language, in their order) and their
    index (``PhraseIndex`` numbers them in that order; None: not built yet)."""

    entries: tuple[Term, ...]
    index: PhraseIndex | None


class _Lru(Generic[K, V]):
    """A table of at most ``most`` worth of values (each weighs what ``weight`` says), least
    recently used dropped first; the one just put stays, however heavy. Not locked."""

    def __init__(self, most: int, weight: Callable[[V], int]) -> None:
        self._most, self._weight = most, weight
        self._table: OrderedDict[K, V] = OrderedDict()
        self._held = 0

    def get(self, key: K) -> V | None:
        value = self._table.get(key)
        if value is not None:
            self._table.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        old = self._table.pop(key, None)
        if old is not None:
            self._held -= self._weight(old)
        self._table[key] = value
        self._held += self._weight(value)
        while self._held > self._most and len(self._table) > 1:
            _, dropped = self._table.popitem(last=False)
            self._held -= self._weight(dropped)


class GlossaryIndexes:
    """The indexes of the rows seen (see the module). ``background``: built on the builder's
    thread (False: at once, on the asking thread: tests). Thread-safe."""

    def __init__(self, most: int = MAX_INDEXED_CHARS, *, background: bool = True) -> None:
        self._lock = threading.Lock()
        self._background = background
        self._builder: ThreadPoolExecutor | None = None
        #: by id(terms) and language: the terms (held, so that the id stays theirs), their entries
        #: and their content's key
        self._by_identity: _Lru[tuple[int, str], tuple[Sequence[Term], tuple[Term, ...], ContentKey]] = _Lru(
            most, lambda held: held[2].chars
        )
        self._by_content: _Lru[ContentKey, PhraseIndex] = _Lru(most, lambda index: index.chars)
        self._building: set[ContentKey] = set()

    def row(self, terms: Sequence[Term], language: str) -> RowEntries:
        """The entries of ``terms`` for ``language`` and their index (None until it is built; its
        build is asked for on the first ask)."""
        ident = (id(terms), language)
        with self._lock:
            found = self._by_identity.get(ident)
        if found is not None and found[0] is terms:
            _, entries, key = found
        else:
            entries = tuple(t for t in terms if t.glossary and t.target_language == language)
            key = ContentKey(language, entries)
            with self._lock:
                self._by_identity.put(ident, (terms, entries, key))
        if not entries:
            return RowEntries(entries, None)
        with self._lock:
            index = self._by_content.get(key)
        if index is None:
            index = self._build(key)
        return RowEntries(entries, index)

    def _build(self, key: ContentKey) -> PhraseIndex | None:
        """Build ``key``'s index: at once (not ``background``), or ask the builder and return None."""
        if not self._background:
            index = PhraseIndex(key.value[1])
            with self._lock:
                self._by_content.put(key, index)
            return index
        with self._lock:
            if key in self._building or len(self._building) >= MAX_BUILDS_WAITING:
                return None
            self._building.add(key)
            if self._builder is None:
                self._builder = ThreadPoolExecutor(1, thread_name_prefix="glossary-index")
        self._builder.submit(self._built, key)
        return None

    def _built(self, key: ContentKey) -> None:
        try:
            index = PhraseIndex(key.value[1])
        except Exception:  # a row keeps looking for each entry; nothing else depends on it
            logger.exception("a glossary index could not be built (%d entries)", len(key.value[1]))
            with self._lock:
                self._building.discard(key)
            return
        with self._lock:
            self._by_content.put(key, index)
            self._building.discard(key)


#: the process's indexes (every model thread's rows)
INDEXES = GlossaryIndexes()
