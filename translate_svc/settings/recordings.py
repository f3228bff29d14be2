"""The recordings' settings (``Settings.recordings``): where, with which keys, and for how long."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, model_validator


class RecordingsSettings(BaseModel):
    """Recordings (``translate_svc/recordings/``, docs/security.md): what a tenant whose
    line says ``record=text|audio`` keeps of its sessions, encrypted, for its ``retention_days``."""

    #: where recordings are written (``<dir>/<tenant>/<recording id>/``); None: nothing is recorded,
    #: whatever the tokens file says (start-up warns when a tenant asks for recordings)
    dir: Path | None = None
    #: the tenants' keys: one per line, ``<tenant> <key id> <base64 of 32 random bytes>``; a
    #: tenant's last line is its current key (new recordings), earlier ones still decrypt
    key_file: Path | None = None
    #: a tenant that records and states no ``retention_days`` keeps its recordings this long
    default_retention_days: float = Field(30.0, gt=0, le=36_500)
    #: audio and text waiting for the writer thread, every recording of the process together: a
    #: recording whose next piece would go past it ends, marked incomplete (never the call)
    queue_max_bytes: int = Field(64 * 1024 * 1024, ge=64 * 1024, le=1 << 34)
    #: the sweeper deletes recordings past their retention this often (and once at start)
    sweep_interval_s: float = Field(3600.0, gt=0, le=86_400)

    @model_validator(mode="after")
    def _check(self) -> RecordingsSettings:
        if self.dir is not None and self.key_file is None:
            raise ValueError(
                "recordings.dir needs recordings.key_file: recordings are encrypted with the tenants' keys"
            )
        return self
