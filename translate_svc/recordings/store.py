"""The recordings on disk: listed, read back (decrypted), deleted, and swept past their retention.

``<recordings.dir>/<tenant>/<recording id>/`` holds ``manifest.json`` (plain JSON: ids, times,
languages, each file's name, plaintext length, SHA-256 and whether it is whole; the recording's
data key wrapped with its tenant's key; never a word or a sample) and the files, each sealed
(``sealed.py``). A tenant is a directory: a request of one tenant looks in its own directory
only, so another tenant's recording is not found (never "forbidden": its existence is not told).

Thread-safe (files only; no state of its own besides the key ring, which is).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from translate_svc.recordings.keys import KeyRing, Wrapped
from translate_svc.recordings.sealed import unseal
from translate_svc.recordings.writer import MANIFEST, SEALED_SUFFIX
from translate_svc.session.tenants.tenant import TENANT_NAME

logger = logging.getLogger(__name__)

#: a recording's id: its session's (32 hex digits)
RECORDING_ID = re.compile(r"[0-9a-f]{32}")
DAY_S = 86_400.0


def public(manifest: dict[str, Any]) -> dict[str, Any]:
    """A manifest as its tenant's callers (and the ``recording.ready`` hook) see it: without its key."""
    return {k: v for k, v in manifest.items() if k != "key"}


class RecordingStore:
    def __init__(self, directory: Path, keys: KeyRing) -> None:
        self.directory = directory
        self.keys = keys

    def path(self, tenant: str, recording_id: str) -> Path | None:
        """The recording's directory, when ``tenant`` and ``recording_id`` are well formed."""
        if not TENANT_NAME.fullmatch(tenant) or not RECORDING_ID.fullmatch(recording_id):
            return None
        return self.directory / tenant / recording_id

    def manifest(self, tenant: str, recording_id: str) -> dict[str, Any] | None:
        """The recording's manifest (with its key), or None: no such recording of ``tenant``."""
        where = self.path(tenant, recording_id)
        if where is None:
            return None
        try:
            manifest: dict[str, Any] = json.loads((where / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return manifest if manifest.get("tenant") == tenant else None

    def listing(self, tenant: str) -> list[dict[str, Any]]:
        """The tenant's recordings' manifests (without keys), oldest first."""
        if not TENANT_NAME.fullmatch(tenant):
            return []
        try:
            ids = sorted(p.name for p in (self.directory / tenant).iterdir() if RECORDING_ID.fullmatch(p.name))
        except OSError:
            return []
        found = [m for m in (self.manifest(tenant, i) for i in ids) if m is not None]
        return [public(m) for m in sorted(found, key=lambda m: float(m.get("created_at", 0)))]

    def read(self, tenant: str, recording_id: str, name: str) -> tuple[dict[str, Any], Iterator[bytes]] | None:
        """A file of the recording (its manifest entry, and its plaintext a chunk at a time), or
        None: no such recording or file of ``tenant``. The iterator raises ``SealedError`` (an
        altered file), ``Truncated`` (a file cut by a failure) or ``NoKey``."""
        manifest = self.manifest(tenant, recording_id)
        if manifest is None:
            return None
        entry = next((f for f in manifest.get("files", ()) if f.get("name") == name), None)
        where = self.path(tenant, recording_id)
        if entry is None or where is None:
            return None
        return entry, self._plain(tenant, recording_id, manifest, where / (name + SEALED_SUFFIX), name)

    def _plain(
        self, tenant: str, recording_id: str, manifest: dict[str, Any], path: Path, name: str
    ) -> Iterator[bytes]:
        key = manifest["key"]
        wrapped = Wrapped(key["id"], base64.b64decode(key["nonce"]), base64.b64decode(key["wrapped"]))
        data_key = self.keys.unwrap(tenant, recording_id, wrapped)
        with open(path, "rb") as f:
            yield from unseal(f, data_key, name)

    def delete(self, tenant: str, recording_id: str) -> bool:
        """Delete the recording; False: ``tenant`` has none of that id."""
        if self.manifest(tenant, recording_id) is None:
            return False
        where = self.path(tenant, recording_id)
        assert where is not None
        shutil.rmtree(where, ignore_errors=True)
        return True

    def sweep(
        self,
        retention_days: Callable[[str, dict[str, Any]], float],
        *,
        live: Callable[[], set[str]] = set,
        now: float | None = None,
    ) -> list[tuple[str, str]]:
        """Delete every recording past its retention: ``retention_days(tenant, manifest)`` days
        after it ended (or began, if its end was never written: a process that died), unless it is
        being written in this process (``live``: ids). Returns the (tenant, id) pairs deleted."""
        now = time.time() if now is None else now
        deleted: list[tuple[str, str]] = []
        try:
            tenants = [p for p in self.directory.iterdir() if p.is_dir() and TENANT_NAME.fullmatch(p.name)]
        except OSError:
            return deleted
        for tenant_dir in tenants:
            tenant = tenant_dir.name
            try:
                ids = [p.name for p in tenant_dir.iterdir() if RECORDING_ID.fullmatch(p.name)]
            except OSError:
                continue
            for rid in ids:
                manifest = self.manifest(tenant, rid)
                if manifest is None or rid in live():
                    continue
                since = manifest.get("ended_at") or manifest.get("created_at") or 0.0
                if float(since) + retention_days(tenant, manifest) * DAY_S <= now:
                    shutil.rmtree(tenant_dir / rid, ignore_errors=True)
                    deleted.append((tenant, rid))
        return deleted
