"""A stored glossary and its checks: what a tenant keeps, the bounds it is kept within,
and its CSV form. Pure: no I/O beyond the bytes given, no event loop.

An entry is a glossary entry as a request's inline ``TRANSLATE`` term is one (``types.Term`` with
``glossary``): where the source says ``phrase`` as a whole word, the translation into
``target_language`` says ``translation``. A glossary holds entries for any number of target
languages; a request that names it takes the entries for its own targets.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import operator
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from translate_svc import words
from translate_svc.errors import InvalidInput, shown
from translate_svc.types import Term

#: a glossary id: what a request names (1-64 of a-z, 0-9, ``-``, ``_``, starting with a letter or digit)
ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
#: a display name, at most
MAX_NAME_CHARS = 200
#: the CSV header (``ignore_case`` optional: true/false, 1/0, yes/no; empty: false)
CSV_COLUMNS = ("phrase", "translation", "target_language", "ignore_case")
_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no", ""}


@dataclass(frozen=True)
class GlossaryEntry:
    phrase: str
    translation: str
    target_language: str
    ignore_case: bool = False

    def term(self) -> Term:
        return Term(
            phrase=self.phrase,
            glossary=True,
            translation=self.translation,
            target_language=self.target_language,
            ignore_case=self.ignore_case,
        )


@dataclass(frozen=True)
class Glossary:
    """One tenant's glossary as stored: ``revision`` counts its versions (1 when created, one more
    at each replace); times in Unix milliseconds."""

    tenant: str
    id: str
    display_name: str
    entries: tuple[GlossaryEntry, ...]
    revision: int = 1
    created_ms: int = 0
    updated_ms: int = 0

    @functools.cached_property  # read by the store, the reply and a list: walked once, in C
    def target_languages(self) -> tuple[str, ...]:
        return tuple(sorted(set(map(operator.attrgetter("target_language"), self.entries))))


@dataclass(frozen=True)
class GlossaryLimits:
    """What a glossary is kept within (``GlossarySettings``), and the term checks' own bounds."""

    max_entries: int
    max_glossaries: int
    max_per_request: int
    max_import_bytes: int
    max_term_chars: int
    #: stored entries one request takes, every glossary it names together (security finding J3)
    max_entries_per_request: int = 10_000
    #: bytes of one tenant's glossaries in the store (``stored_bytes``), and of every tenant's
    #: together (security finding J12)
    max_tenant_bytes: int = 64 * 1024 * 1024
    max_total_bytes: int = 1024**3
    #: an import's whole file comes within this of its call's start
    import_timeout_s: float = 60.0
    #: imports a process takes at once, in all and of one tenant (``imports.py``)
    max_imports: int = 4
    max_imports_per_tenant: int = 2


def check_id(glossary_id: str) -> str:
    if not ID_PATTERN.fullmatch(glossary_id):
        raise InvalidInput(
            f"glossary id {shown(glossary_id)} is not one: use 1-64 of a-z 0-9 - _, starting with a letter or digit"
        )
    return glossary_id


def check_name(name: str) -> str:
    if len(name) > MAX_NAME_CHARS or not name.isprintable():
        raise InvalidInput(f"display_name: at most {MAX_NAME_CHARS} printable characters")
    return name


def check_entries(entries: Sequence[GlossaryEntry], limits: GlossaryLimits, languages: Iterable[str]) -> None:
    """Every entry complete, printable, within ``max_term_chars``, for a text language of this
    server (``languages``), each phrase once per target; at most ``max_entries`` of them. About
    1 µs an entry: every check runs over the whole list at once in C (``str`` methods on the
    texts joined, ``map``, ``set``); only a list that fails is walked entry by entry, for the first
    entry at fault (a glossary's size of Python under the server's interpreter lock made a
    bystander's stream late). The book runs it on its own threads (``GlossaryBook.work``)."""
    if not entries:
        raise InvalidInput("a glossary needs at least one entry (phrase, translation, target_language)")
    if len(entries) > limits.max_entries:
        raise InvalidInput(
            f"{len(entries)} entries; a glossary holds at most {limits.max_entries} (glossaries.max_entries): "
            "split it, and name both in a request"
        )
    known = set(languages)
    texts = [e.phrase for e in entries] + [e.translation for e in entries]
    targets = [e.target_language for e in entries]
    keys = [f"{e.target_language}\0{words.uncached_key(e.phrase, ignore_case=e.ignore_case)}" for e in entries]
    fine = (
        all(map(str.strip, texts))
        and max(map(len, texts)) <= limits.max_term_chars
        and "".join(texts).isprintable()
        and known.issuperset(targets)
        and len(set(keys)) == len(keys)
    )
    if not fine:
        _first_at_fault(entries, limits, known, keys)


def _first_at_fault(entries: Sequence[GlossaryEntry], limits: GlossaryLimits, known: set[str], keys: list[str]) -> None:
    """``check_entries``' refusal for the first entry at fault, in the order it checks them."""
    seen: dict[str, int] = {}
    for n, e in enumerate(entries):
        for field, text in (("phrase", e.phrase), ("translation", e.translation)):
            if not text.strip():
                raise InvalidInput(f"entries[{n}].{field} is empty: give the words")
            if len(text) > limits.max_term_chars:
                raise InvalidInput(
                    f"entries[{n}].{field} is {len(text)} characters; at most {limits.max_term_chars} "
                    "(ServerLimits.max_term_chars)"
                )
            if not text.isprintable():
                raise InvalidInput(f"entries[{n}].{field} {shown(text)} holds control characters: send plain text")
        if e.target_language not in known:
            raise InvalidInput(
                f"entries[{n}].target_language {shown(e.target_language)} is not a text language of this server: "
                "use a model code from ListLanguages (e.g. spa, fra)"
            )
        if keys[n] in seen:
            raise InvalidInput(
                f"entries[{n}] repeats entries[{seen[keys[n]]}]: {shown(e.phrase)} for {shown(e.target_language)} "
                "is listed once"
            )
        seen[keys[n]] = n


def parse_csv(data: bytes, limits: GlossaryLimits) -> list[GlossaryEntry]:
    """Entries from CSV (UTF-8, a header row naming ``phrase``, ``translation``,
    ``target_language`` and optionally ``ignore_case``, in any order; RFC 4180 quoting). Its size
    is checked before it is read."""
    if len(data) > limits.max_import_bytes:
        raise InvalidInput(
            f"the CSV is {len(data)} bytes; at most {limits.max_import_bytes} (glossaries.max_import_bytes)"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InvalidInput(f"the CSV is not UTF-8 (byte {e.start}): save it as UTF-8") from None
    rows = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in next(rows)]
    except StopIteration:
        raise InvalidInput(
            "the CSV is empty: its first row names the columns phrase,translation,target_language"
        ) from None
    missing = [c for c in CSV_COLUMNS[:3] if c not in header]
    unknown = [h for h in header if h not in CSV_COLUMNS]
    if missing or unknown or len(set(header)) != len(header):
        raise InvalidInput(
            f"the CSV's first row is {shown(','.join(header), 80)}: name the columns "
            "phrase,translation,target_language (and optionally ignore_case), each once"
        )
    at = {name: header.index(name) for name in header}
    out: list[GlossaryEntry] = []
    try:
        for row in rows:
            if not any(cell.strip() for cell in row):
                continue  # a blank line
            if len(out) >= limits.max_entries:
                raise InvalidInput(
                    f"the CSV has more than {limits.max_entries} entries (glossaries.max_entries): split it"
                )
            if len(row) != len(header):
                raise InvalidInput(f"the CSV's line {rows.line_num} has {len(row)} cells; its header has {len(header)}")
            flag = row[at["ignore_case"]].strip().lower() if "ignore_case" in at else ""
            if flag not in _TRUE | _FALSE:
                raise InvalidInput(f"the CSV's line {rows.line_num}: ignore_case is {shown(flag)}: use true or false")
            out.append(
                GlossaryEntry(
                    phrase=row[at["phrase"]].strip(),
                    translation=row[at["translation"]].strip(),
                    target_language=row[at["target_language"]].strip(),
                    ignore_case=flag in _TRUE,
                )
            )
    except csv.Error as e:
        raise InvalidInput(f"the CSV cannot be read at line {rows.line_num}: {e}") from None
    return out


def to_csv(entries: Iterable[GlossaryEntry]) -> str:
    """The CSV ``parse_csv`` reads back (the CLI's export)."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for e in entries:
        writer.writerow((e.phrase, e.translation, e.target_language, "true" if e.ignore_case else "false"))
    return out.getvalue()


@dataclass(frozen=True)
class Summary:
    """A glossary without its entries (what a list shows)."""

    id: str
    display_name: str
    entry_count: int
    target_languages: tuple[str, ...]
    revision: int
    created_ms: int
    updated_ms: int

    @classmethod
    def of(cls, g: Glossary) -> Summary:
        return cls(g.id, g.display_name, len(g.entries), g.target_languages, g.revision, g.created_ms, g.updated_ms)


def entries_json(entries: Iterable[GlossaryEntry]) -> list[list[object]]:
    """Entries as stored (compact: one list per entry)."""
    return [[e.phrase, e.translation, e.target_language, e.ignore_case] for e in entries]


def stored_entries(entries: Iterable[GlossaryEntry]) -> str:
    """Entries as both stores keep them: ``entries_json`` as compact JSON, UTF-8 as it is."""
    return json.dumps(entries_json(entries), ensure_ascii=False, separators=(",", ":"))


def stored_bytes(display_name: str, stored: str) -> int:
    """What a glossary counts in its tenant's and the store's byte budgets (security finding J12): its
    stored entries (``stored_entries``) and its name, in UTF-8 bytes; the same in both stores."""
    return len(stored.encode()) + len(display_name.encode())


def entries_from_json(rows: Iterable[Sequence[object]]) -> tuple[GlossaryEntry, ...]:
    return tuple(GlossaryEntry(str(p), str(t), str(lang), bool(i)) for p, t, lang, i in rows)
