"""Stored glossaries' settings (``translate_svc/glossaries/``, docs/api.md "Stored
glossaries"): ``Settings.glossaries``."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field


class GlossarySettings(BaseModel):
    """A tenant's glossaries, kept by the service and named by id in a request."""

    #: serve the Glossaries service (gRPC) and ``/v1/glossaries`` (HTTP port) and take
    #: ``glossaries`` in requests; off: both answer FAILED_PRECONDITION saying how to turn it on
    enabled: bool = False
    #: where one node keeps them (an SQLite file, ``glossaries.sqlite3``, shared by its workers).
    #: Needed when enabled without ``cluster.redis_url``; with it they are in Redis (every pod)
    data_dir: Path | None = None
    #: entries of one glossary, at most (each one phrase, its translation and its target language)
    max_entries: int = Field(10_000, ge=1, le=100_000)
    #: glossaries of one tenant, at most
    max_glossaries: int = Field(100, ge=1, le=10_000)
    #: glossaries one request names, at most
    max_per_request: int = Field(4, ge=1, le=32)
    #: stored entries one request takes, at most: those of every glossary it names for its
    #: targets, together (security finding J3; its inline entries count apart, limits.max_glossary_entries)
    max_entries_per_request: int = Field(10_000, ge=1, le=100_000)
    #: the largest file (a CSV or a TBX; or entries, as protobuf or JSON) one create, replace or
    #: import sends (16 MiB holds a 10,000-entry TBX as terminology tools export it; a
    #: gRPC CreateGlossary is one message, within limits.max_receive_message_bytes: larger files go
    #: over ImportGlossary, in chunks)
    max_import_bytes: int = Field(16 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    #: a create's, replace's or import's whole file must come within this of its call's start
    #: (the REST body, ImportGlossary's messages), and at limits.http_min_transfer_bytes_per_s
    #: on average after its first seconds (else 408 / DEADLINE_EXCEEDED)
    import_timeout_s: float = Field(60.0, gt=0, le=3600)
    #: creates, replaces and imports whose files one process holds at once (each up to
    #: max_import_bytes), in all and of one tenant; beyond, refused at once with a retry delay
    #: (429 / RESOURCE_EXHAUSTED). A gRPC CreateGlossary or ReplaceGlossary takes none:
    #: its one message is within the port's receive limit, read by gRPC before it is admitted
    max_imports: int = Field(4, ge=1, le=256)
    max_imports_per_tenant: int = Field(2, ge=1, le=256)
    #: bytes one tenant's glossaries take in the store, at most: their entries as stored (compact
    #: JSON) and their names (security finding J12; RESOURCE_EXHAUSTED beyond)
    max_tenant_bytes: int = Field(64 * 1024 * 1024, ge=64 * 1024, le=16 * 1024**3)
    #: bytes every tenant's glossaries take together in one store, at most: a node's SQLite file,
    #: or with cluster.redis_url the Redis every pod shares (security finding J12)
    max_total_bytes: int = Field(1024**3, ge=64 * 1024, le=256 * 1024**3)
    #: threads of the glossaries' own that parse and check creates and imports and read stored
    #: glossaries into terms (never the event loop's, nor the loop's default executor)
    threads: int = Field(2, ge=1, le=16)
    #: processes of the glossaries' own that parse a create's, replace's or import's file (TBX,
    #: CSV, a JSON body), at a lower priority than the server's threads and outside its
    #: interpreter lock, started at the first file (0: parsed on ``threads``, where a 10,000-entry
    #: TBX's half second of Python makes real-time streams wait; translate_svc/sandbox/)
    parse_processes: int = Field(2, ge=0, le=16)
    #: each parse process's address space (``RLIMIT_AS``), MB: a file whose parse would take more
    #: is refused (400) naming it, and only its process ends. About 110 MB of it are the process's
    #: own (Python and the parsers); a 9 MB TBX of 10,000 entries takes about 30 MB more
    parse_memory_mb: int = Field(512, ge=256, le=64 * 1024)
    #: stored entries a process keeps read and checked, by glossary and revision, for the requests
    #: that name them (0: none kept; each request then reads its glossaries' entries anew)
    cache_entries: int = Field(50_000, ge=0, le=1_000_000)
    #: a store call (SQLite or Redis) that takes longer fails UNAVAILABLE, never hangs a call
    timeout_s: float = Field(2.0, gt=0, le=60)
