"""A glossary's entries from TBX (ISO 30042 TermBase eXchange): TBX-Basic / TBX v2
(``martif`` > ``text`` > ``body`` > ``termEntry`` > ``langSet xml:lang`` > ``tig``/``ntig`` >
``term``) and TBX v3 (``tbx`` > ... > ``conceptEntry`` > ``langSec xml:lang`` > ``termSec`` >
``term``). Pure: no I/O beyond the bytes given, no event loop.

A TBX file names no source language, so an import names one (``source``, as a model code or a
BCP-47 tag): each term entry (a concept) yields, for each of its other languages (or the
``targets`` asked for), one glossary entry per source term (every synonym, deprecated ones too:
a speaker may say them) translated as the target language's preferred term (the first whose
``administrativeStatus`` says preferred, else the first not deprecated, else the first) -- what a
CSV row says (phrase, translation, target_language) for each pair. ``xml:lang`` tags become model
codes as the client's ``--from es`` does (``languages.bcp47_candidates``: ``en-US`` -> ``eng``,
``zh-TW`` -> ``cmn_Hant``).

Parsed with the standard library's expat, safely: the bytes are bounded first; a DOCTYPE may name
an external DTD (TBX-Basic files do) which is never read, but an internal subset, any entity
declaration and any reference to an entity not predefined are refused, so nothing expands and
nothing is fetched; elements nest at most ``MAX_DEPTH`` deep (security finding J4: a 4 MiB file of nothing
but opening tags held about 130 MB while expat read it, so a dozen imports at once took 1.5 GB).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from xml.parsers import expat

from translate_svc.errors import InvalidInput, shown
from translate_svc.glossaries.model import GlossaryEntry, GlossaryLimits
from translate_svc.languages import bcp47_candidates

XML_LANG = "http://www.w3.org/XML/1998/namespace lang"
#: the elements by their local name (TBX v3's are in a namespace; TBX v2's in none)
ROOTS = ("martif", "tbx")
ENTRY = ("termEntry", "conceptEntry")
LANG = ("langSet", "langSec")
TERM_GROUP = ("tig", "ntig", "termSec")
#: ``administrativeStatus`` values, by rank (lower: preferred as a translation)
_PREFERRED = {"preferredterm-admn-sts", "preferred", "preferredterm"}
_AVOID = {"deprecatedterm-admn-sts", "supersededterm-admn-sts", "deprecated", "deprecatedterm", "supersededterm"}
#: how deep elements nest, at most: a TBX term is 7 deep (martif > text > body > termEntry > langSet
#: > tig > term), its notes and inline markup a few more
MAX_DEPTH = 32


class _Refused(Exception):
    """Raised inside an expat handler (expat passes it through ``Parse``)."""


@dataclass
class _Term:
    text: list[str] = field(default_factory=list)
    rank: int = 1
    line: int = 0


@dataclass
class _Lang:
    tag: str
    line: int
    terms: list[_Term] = field(default_factory=list)


@dataclass
class _Entry:
    name: str
    line: int
    langs: list[_Lang] = field(default_factory=list)


def _local(name: str) -> str:
    return name.rsplit(" ", 1)[-1]


def _model_code(tag: str, known: set[str]) -> str | None:
    if tag in known:
        return tag
    return next((c for c in bcp47_candidates(tag) if c in known), None)


def _read_entries(data: bytes, max_entries: int) -> tuple[str, list[_Entry]]:
    """The TBX's dialect (``martif`` or ``tbx``) and its term entries, in order."""
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    entries: list[_Entry] = []
    stack: list[str] = []
    root: list[str] = []
    status: list[str] = []  # the text of an open termNote type="administrativeStatus"
    state: dict[str, object] = {}

    def where() -> int:
        return parser.CurrentLineNumber

    def doctype(name: str, system_id: str | None, public_id: str | None, internal: int) -> None:
        if internal:
            raise _Refused(
                f"the TBX's DOCTYPE (line {where()}) declares things of its own: an internal DTD subset is "
                "refused (no entities are expanded); remove it, or the DOCTYPE"
            )

    def entity_decl(*_: object) -> None:
        raise _Refused(f"the TBX declares an entity (line {where()}): entities are refused; remove the declaration")

    def skipped(name: str, is_parameter: int) -> None:
        raise _Refused(
            f"the TBX refers to the entity {shown(name)} (line {where()}), which is not declared: "
            "write the characters themselves"
        )

    def external(*_: object) -> int:
        raise _Refused(f"the TBX refers to an external entity (line {where()}): nothing is fetched; remove it")

    def start(name: str, attrs: dict[str, str]) -> None:
        if len(stack) >= MAX_DEPTH:
            raise _Refused(
                f"the TBX nests elements more than {MAX_DEPTH} deep at line {where()}: a TBX term is 7 deep "
                "(martif > text > body > termEntry > langSet > tig > term); send a TBX file"
            )
        local = _local(name)
        if not stack:
            if local not in ROOTS:
                raise _Refused(
                    f"the file's root element is {shown(local)}, not martif (TBX-Basic, TBX v2) or tbx (TBX v3): "
                    "send a TBX file"
                )
            root.append(local)
        stack.append(local)
        entry = state.get("entry")
        if local in ENTRY:
            if entry is not None:
                raise _Refused(f"line {where()}: a {local} inside another term entry")
            if len(entries) >= max_entries:
                raise _Refused(
                    f"the TBX has more than {max_entries} term entries at line {where()} "
                    "(glossaries.max_entries): split it"
                )
            ident = attrs.get("id", "")
            named = f"{local} {shown(ident)}" if ident else f"{local} #{len(entries) + 1}"
            state["entry"] = _Entry(f"{named} (line {where()})", where())
        elif local in LANG:
            if not isinstance(entry, _Entry):
                raise _Refused(f"line {where()}: a {local} outside a term entry (termEntry or conceptEntry)")
            tag = attrs.get(XML_LANG, "").strip()
            if not tag:
                raise _Refused(f"{entry.name}: its {local} at line {where()} has no xml:lang: name its language")
            state["lang"] = _Lang(tag, where())
        elif local == "term":
            lang = state.get("lang")
            if not isinstance(lang, _Lang) or not isinstance(entry, _Entry):
                raise _Refused(f"line {where()}: a term outside a langSet/langSec of a term entry")
            if "term" in state:
                raise _Refused(f"{entry.name}: a term inside a term at line {where()}")
            term = _Term(line=where())
            state["term"] = term
            lang.terms.append(term)
        elif local == "termNote" and attrs.get("type") == "administrativeStatus" and "lang" in state:
            status.clear()
            state["note"] = True

    def end(name: str) -> None:
        local = stack.pop()
        if local == "term":
            state.pop("term", None)
        elif local == "termNote" and state.pop("note", None):
            value = "".join(status).strip().lower()
            lang = state.get("lang")
            if isinstance(lang, _Lang) and lang.terms:  # the note of the group's last term
                lang.terms[-1].rank = 0 if value in _PREFERRED else 2 if value in _AVOID else 1
        elif local in LANG:
            lang, entry = state.pop("lang", None), state.get("entry")
            if isinstance(lang, _Lang) and isinstance(entry, _Entry):
                entry.langs.append(lang)
        elif local in ENTRY:
            entry = state.pop("entry", None)
            if isinstance(entry, _Entry):
                entries.append(entry)

    def text(data: str) -> None:
        term = state.get("term")
        if isinstance(term, _Term):
            term.text.append(data)
        elif state.get("note"):
            status.append(data)

    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = entity_decl
    parser.UnparsedEntityDeclHandler = entity_decl
    parser.SkippedEntityHandler = skipped
    parser.ExternalEntityRefHandler = external
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    try:
        parser.Parse(data, True)
    except _Refused as e:
        raise InvalidInput(str(e)) from None
    except expat.ExpatError as e:
        raise InvalidInput(
            f"the TBX is not well-formed XML at line {e.lineno}, column {e.offset + 1}: {expat.ErrorString(e.code)}"
        ) from None
    except (LookupError, ValueError):  # an encoding expat cannot read (``encoding="cp932"``, "bogus")
        raise InvalidInput(
            "the TBX's XML declaration names an encoding this server does not read: save it as UTF-8 "
            "(or UTF-16, or ISO-8859-1)"
        ) from None
    return root[0], entries


def parse_tbx(
    data: bytes,
    limits: GlossaryLimits,
    languages: Iterable[str],
    source: str,
    targets: Sequence[str] = (),
) -> list[GlossaryEntry]:
    """Entries from a TBX file (see the module) for the glossary's ``source`` -> each target
    (``targets``; empty: every other language of each entry). Bad input: ``InvalidInput`` naming
    the term entry and its line."""
    if len(data) > limits.max_import_bytes:
        raise InvalidInput(
            f"the TBX is {len(data)} bytes; at most {limits.max_import_bytes} (glossaries.max_import_bytes)"
        )
    known = set(languages)
    if not source.strip():
        raise InvalidInput(
            "a TBX import names its source language (the language its phrases are said in), "
            "e.g. source_language=eng: TBX files name none"
        )
    src = _model_code(source.strip(), known)
    if src is None:
        raise InvalidInput(
            f"source_language {shown(source)} is not a language of this server: use a model code from "
            "ListLanguages (e.g. eng) or a BCP-47 tag (en)"
        )
    wanted: list[str] = []
    for t in targets:
        code = _model_code(t.strip(), known)
        if code is None:
            raise InvalidInput(
                f"target_languages: {shown(t)} is not a language of this server: use a model code from "
                "ListLanguages (e.g. spa) or a BCP-47 tag (es)"
            )
        if code == src:
            raise InvalidInput(f"target_languages: {shown(t)} is the source language: name the others")
        wanted.append(code)
    _, found = _read_entries(data, limits.max_entries)
    if not found:
        raise InvalidInput("the TBX has no term entry (termEntry or conceptEntry): nothing to import")
    out: list[GlossaryEntry] = []
    seen: dict[tuple[str, str], str] = {}
    codes: dict[str, str | None] = {}  # each tag mapped once
    for entry in found:
        by_code: dict[str, list[_Term]] = {}
        for lang in entry.langs:
            if lang.tag not in codes:
                codes[lang.tag] = _model_code(lang.tag, known)
            code = codes[lang.tag]
            if code is None:
                if wanted:
                    continue  # a language not asked for, and not the source
                raise InvalidInput(
                    f"{entry.name}: its langSet at line {lang.line} is xml:lang={shown(lang.tag)}, not a language "
                    "of this server: name the targets to import (target_languages), or remove that language"
                )
            by_code.setdefault(code, []).extend(lang.terms)
        if not by_code.get(src):
            raise InvalidInput(
                f"{entry.name} has no term in the source language {src}: every entry needs one "
                f"(its languages: {', '.join(lang.tag for lang in entry.langs) or 'none'})"
            )
        goals = wanted or [c for c in by_code if c != src]
        present = [c for c in goals if by_code.get(c)]
        if not present:
            raise InvalidInput(
                f"{entry.name} has no term in a target language ({', '.join(goals) or 'none besides the source'}): "
                "every entry needs its translation"
            )
        phrases = list(dict.fromkeys(_words(t, entry, limits) for t in by_code[src]))
        for code in present:
            best = min(by_code[code], key=lambda t: t.rank)  # min keeps the first of a rank
            translation = _words(best, entry, limits)
            for phrase in phrases:
                if len(out) >= limits.max_entries:
                    raise InvalidInput(
                        f"the TBX yields more than {limits.max_entries} entries by {entry.name} "
                        "(glossaries.max_entries): split it"
                    )
                key = (code, phrase)
                if key in seen and seen[key] != entry.name:
                    raise InvalidInput(
                        f"{entry.name} repeats {shown(phrase)} for {code}, which {seen[key]} has: "
                        "a phrase is translated once per language"
                    )
                if key not in seen:
                    seen[key] = entry.name
                    out.append(GlossaryEntry(phrase, translation, code))
    return out


def _words(term: _Term, entry: _Entry, limits: GlossaryLimits) -> str:
    text = " ".join("".join(term.text).split())
    if not text:
        raise InvalidInput(f"{entry.name}: its term at line {term.line} is empty: give the words")
    if len(text) > limits.max_term_chars:
        raise InvalidInput(
            f"{entry.name}: its term at line {term.line} is {len(text)} characters; at most "
            f"{limits.max_term_chars} (ServerLimits.max_term_chars)"
        )
    return text
