"""Stored glossaries' settings (issue 73, ``translate_svc/glossaries/``, docs/api.md "Stored
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
    #: the largest CSV (or entries, as protobuf or JSON) one create or replace sends
    max_import_bytes: int = Field(4 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    #: a store call (SQLite or Redis) that takes longer fails UNAVAILABLE, never hangs a call
    timeout_s: float = Field(2.0, gt=0, le=60)
