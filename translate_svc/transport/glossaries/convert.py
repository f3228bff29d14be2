"""Stored glossaries' wire forms: protobuf (the gRPC service) and JSON (the HTTP routes) to and
from the domain's ``GlossaryEntry``, ``Glossary`` and ``Summary``. Pure."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.errors import InvalidInput
from translate_svc.glossaries.model import Glossary, GlossaryEntry, GlossaryLimits, Summary, parse_csv
from translate_svc.glossaries.tbx import parse_tbx


def entries_from_pb(
    content: pb.GlossaryContent, limits: GlossaryLimits, languages: Iterable[str]
) -> list[GlossaryEntry]:
    """``languages``: the server's text languages (a TBX's tags become them). Entries are counted
    before any is converted (the CSV's and the TBX's bytes before they are read)."""
    kind = content.WhichOneof("content")
    if kind == "entries" and len(content.entries.entries) > limits.max_entries:
        raise InvalidInput(
            f"{len(content.entries.entries)} entries; a glossary holds at most {limits.max_entries} "
            "(glossaries.max_entries): split it, and name both in a request"
        )
    if kind == "csv":
        return parse_csv(content.csv, limits)
    if kind == "tbx":
        tbx = content.tbx
        return parse_tbx(tbx.data, limits, languages, tbx.source_language, list(tbx.target_languages))
    if kind == "entries":
        return [
            GlossaryEntry(e.phrase, e.translation, e.target_language, e.ignore_case) for e in content.entries.entries
        ]
    raise InvalidInput("content is empty: send entries, csv (a header row phrase,translation,target_language), or tbx")


def entry_to_pb(e: GlossaryEntry) -> pb.GlossaryEntry:
    return pb.GlossaryEntry(
        phrase=e.phrase, translation=e.translation, target_language=e.target_language, ignore_case=e.ignore_case
    )


def glossary_to_pb(g: Glossary, *, entries: bool = False) -> pb.Glossary:
    out = summary_to_pb(Summary.of(g))
    if entries:
        out.entries.extend(entry_to_pb(e) for e in g.entries)
    return out


def summary_to_pb(s: Summary) -> pb.Glossary:
    return pb.Glossary(
        glossary_id=s.id,
        display_name=s.display_name,
        entry_count=s.entry_count,
        target_languages=s.target_languages,
        revision=s.revision,
        create_time_unix_ms=s.created_ms,
        update_time_unix_ms=s.updated_ms,
    )


def summary_json(s: Summary) -> dict[str, Any]:
    return {
        "id": s.id,
        "object": "glossary",
        "display_name": s.display_name,
        "entry_count": s.entry_count,
        "target_languages": list(s.target_languages),
        "revision": s.revision,
        "created_at_ms": s.created_ms,
        "updated_at_ms": s.updated_ms,
    }


def glossary_json(g: Glossary, *, entries: bool = False) -> dict[str, Any]:
    out = summary_json(Summary.of(g))
    if entries:
        out["entries"] = [entry_json(e) for e in g.entries]
    return out


def entry_json(e: GlossaryEntry) -> dict[str, Any]:
    return {
        "phrase": e.phrase,
        "translation": e.translation,
        "target_language": e.target_language,
        "ignore_case": e.ignore_case,
    }


#: a JSON string, escapes and all (linear: no nested repetition)
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
#: what one entry of a JSON body holds at most: its object and four members (a ``{``, four ``:``
#: and four ``,`` with the one before it), and what the body around the entries may hold
_PER_ENTRY, _AROUND = 9, 64


def count_json_values(body: bytes) -> int:
    """The JSON structure in ``body`` outside its strings: its objects, members and elements
    after the first (``{``, ``:`` and ``,``), counted without making a Python object of any: what
    ``json.loads`` would make is about this many objects (a 16 MiB body of ``{}`` is 5.6 million).
    Arrays alone only nest (``[[[``: each holds one), which the decoder's own depth bounds."""
    bare = _STRING.sub(b"", body)
    return sum(bare.count(c) for c in (b"{", b":", b","))


def content_from_json(body: bytes, limits: GlossaryLimits) -> tuple[dict[str, Any], list[GlossaryEntry]]:
    """A JSON create's or replace's body: its other fields, and its entries (``entries_from_json``). Its
    values are counted before it is parsed (``count_json_values``): a body that holds more than
    ``glossaries.max_entries`` entries could is refused before ``json.loads`` makes them. In the
    glossaries' parse processes: 4 MiB of JSON is tens of ms of Python."""
    values, most = count_json_values(body), limits.max_entries * _PER_ENTRY + _AROUND
    if values > most:
        raise InvalidInput(
            f"the body's JSON holds {values} objects, members and elements; a glossary of at most "
            f"{limits.max_entries} entries (glossaries.max_entries) holds at most {most}: send "
            '{"id", "display_name", "entries": [{"phrase", "translation", "target_language", "ignore_case"}]} '
            f"with at most {limits.max_entries} entries"
        )
    try:
        doc = json.loads(body)
    except RecursionError:  # the decoder's own bound on nesting (security finding J9: was a 500)
        raise InvalidInput(
            'the body\'s JSON nests too deep: a glossary is {"id", "display_name", "entries": [{"phrase", '
            '"translation", "target_language", "ignore_case"}]}, three levels'
        ) from None
    except ValueError:
        raise InvalidInput(
            "the body is not JSON: send JSON, CSV with Content-Type: text/csv, or TBX with "
            "Content-Type: application/x-tbx+xml (or ?format=tbx)"
        ) from None
    if not isinstance(doc, dict):
        raise InvalidInput('the body is not a JSON object: send {"id", "display_name", "entries": [...]}')
    entries = entries_from_json(doc.pop("entries", None), limits)
    return doc, entries  # the fields without the entries' dicts: the answer is loaded under the server's lock


def entries_from_json(rows: object, limits: GlossaryLimits) -> list[GlossaryEntry]:
    """``entries`` of a JSON body: a list of objects with phrase, translation, target_language and
    optionally ignore_case."""
    if not isinstance(rows, list):
        raise InvalidInput("entries: send a list of {phrase, translation, target_language, ignore_case}")
    if len(rows) > limits.max_entries:
        raise InvalidInput(
            f"{len(rows)} entries; a glossary holds at most {limits.max_entries} (glossaries.max_entries)"
        )
    out = []
    for n, row in enumerate(rows):
        if not isinstance(row, dict) or not all(isinstance(row.get(k), str) for k in _TEXT):
            raise InvalidInput(f"entries[{n}]: an object with the strings phrase, translation and target_language")
        flag = row.get("ignore_case", False)
        if not isinstance(flag, bool) or set(row) - {*_TEXT, "ignore_case"}:
            raise InvalidInput(f"entries[{n}]: only phrase, translation, target_language and ignore_case (a boolean)")
        out.append(GlossaryEntry(row["phrase"], row["translation"], row["target_language"], flag))
    return out


_TEXT: Sequence[str] = ("phrase", "translation", "target_language")


def import_entries(
    header: pb.GlossaryImportHeader, data: bytes, limits: GlossaryLimits, languages: list[str]
) -> list[GlossaryEntry]:
    """The entries of an import's file, as ``header.format`` says to read it (in the glossaries'
    parse processes: a 10,000-entry TBX takes about half a second of Python)."""
    if header.format == pb.GLOSSARY_FILE_CSV:
        if header.source_language or header.target_languages:
            raise InvalidInput("source_language and target_languages are for a TBX file: leave them out for a CSV")
        return parse_csv(data, limits)
    if header.format == pb.GLOSSARY_FILE_TBX:
        return parse_tbx(data, limits, languages, header.source_language, list(header.target_languages))
    raise InvalidInput("header.format: say which the file is, GLOSSARY_FILE_CSV or GLOSSARY_FILE_TBX")
