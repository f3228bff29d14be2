"""Stored glossaries as the SDK gives them (docs/client.md, "Stored glossaries"): typed values,
no protobuf."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GlossaryEntry:
    """Where the source says ``phrase`` as a whole word, the translation into ``target`` (a model
    code) says ``translation``; ``ignore_case``: match the phrase in any case."""

    phrase: str
    translation: str
    target: str
    ignore_case: bool = False


@dataclass(frozen=True)
class Glossary:
    """A stored glossary: ``entries`` only when asked for (``get_glossary(..., entries=True)``)."""

    id: str
    display_name: str
    entry_count: int
    targets: tuple[str, ...]
    revision: int
    created_ms: int
    updated_ms: int
    entries: tuple[GlossaryEntry, ...] = ()
