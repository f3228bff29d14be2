"""How a request names stored glossaries, and what a server says it keeps: wire-neutral, so every
door reads them here (the gRPC door for its calls, the glossaries' own service) and none imports
another door for them."""

from __future__ import annotations

from collections.abc import Sequence

from translate_svc.errors import InvalidInput
from translate_svc.glossaries.book import NO_GLOSSARIES
from translate_svc.glossaries.imports import IMPORT_MESSAGE_BYTES
from translate_svc.glossaries.model import GlossaryLimits

#: glossary ids one request may list before they are looked at (the server's own cap,
#: ``glossaries.max_per_request``, is checked when they are read)
MAX_GLOSSARY_IDS = 32


def glossary_ids(ids: Sequence[str]) -> tuple[str, ...]:
    """A request's ``glossaries``, bounded before they are converted (each is checked when read)."""
    if len(ids) > MAX_GLOSSARY_IDS:
        raise InvalidInput(
            f"glossaries names {len(ids)} glossaries; name at most a few (ServerLimits.max_glossaries_per_request)"
        )
    return tuple(str(i)[:80] for i in ids)


def glossary_limits(g: GlossaryLimits | None) -> dict[str, int]:
    """``ServerLimits``' stored-glossary fields (all 0: none are kept)."""
    kept = g is not None
    g = g or NO_GLOSSARIES
    return {
        "max_glossary_entries_stored": g.max_entries,
        "max_glossaries": g.max_glossaries,
        "max_glossaries_per_request": g.max_per_request,
        "glossary_import_bytes": g.max_import_bytes,
        "glossary_import_message_bytes": IMPORT_MESSAGE_BYTES if kept else 0,
        "glossary_import_timeout_ms": round(g.import_timeout_s * 1000) if kept else 0,
    }
