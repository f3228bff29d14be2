"""The tenants' recording keys, from ``recordings.key_file``: each recording's data key is wrapped
(AES-256-GCM) with its tenant's current key, and the key's id is stored beside it.

The key file, one key a line (``#`` starts a comment)::

    # tenant  key id   base64 of 32 random bytes (head -c 32 /dev/urandom | base64)
    acme      2026-01  q8m1...=
    acme      2026-07  Xw4T...=

A tenant's last line is its current key: new recordings use it. Earlier lines still decrypt the
recordings made with them, so a key is rotated by appending a line, and retired (its recordings
unreadable from then on) by removing it once they are past retention. The file is re-read when
it changes (one ``stat`` a second at most); a file that becomes unusable keeps the last good keys
and logs an error. Only this module and ``sealed.py`` handle key bytes; they are never logged.

Thread-safe: the writer thread wraps, the event loop and the decrypting threads unwrap.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from translate_svc.session.tenants.tenant import TENANT_NAME

logger = logging.getLogger(__name__)

_KEY_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


class KeyFileError(Exception):
    """The key file cannot be used; one line naming the file and line, never a key."""


class NoKey(Exception):
    """No key for this tenant, or not the key a recording was made with."""


@dataclass(frozen=True)
class Wrapped:
    """A recording's data key as stored: wrapped with its tenant's key ``key_id``."""

    key_id: str
    nonce: bytes
    ciphertext: bytes


def parse_keys(text: str, source: str) -> dict[str, list[tuple[str, bytes]]]:
    """Each tenant's (key id, key) pairs, oldest first; ``KeyFileError`` on the first bad line."""
    keys: dict[str, list[tuple[str, bytes]]] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        where = f"{source} line {number}"
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 3:
            raise KeyFileError(f"{where}: write <tenant> <key id> <base64 of 32 bytes>")
        tenant, key_id, encoded = parts
        if not TENANT_NAME.fullmatch(tenant):
            raise KeyFileError(f"{where}: {tenant[:24]!r} is not a tenant name")
        if not 0 < len(key_id) <= 40 or not set(key_id) <= _KEY_ID_CHARS:
            raise KeyFileError(f"{where}: a key id is 1 to 40 letters, digits, '.', '_' or '-'")
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != 32:
            raise KeyFileError(f"{where}: the key must be 32 bytes in base64 (head -c 32 /dev/urandom | base64)")
        known = keys.setdefault(tenant, [])
        if any(k == key_id for k, _ in known):
            raise KeyFileError(f"{where}: tenant {tenant!r} has key id {key_id!r} on another line")
        known.append((key_id, key))
    return keys


def _aad(tenant: str, recording_id: str, key_id: str) -> bytes:
    return f"translate-svc recording data key\n{tenant}\n{recording_id}\n{key_id}".encode()


class KeyRing:
    """The key file's keys, re-read when it changes. The constructor raises ``KeyFileError``."""

    def __init__(self, path: Path, *, check_interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self.path = path
        self._interval = check_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._seen = self._stat()
        self._keys = parse_keys(self._read(), f"recordings.key_file {path}")
        self._next_check = clock() + check_interval_s
        self._failing: str | None = None

    def _stat(self) -> tuple[int, int, int, int]:
        try:
            st = os.stat(self.path)
        except OSError as e:
            raise KeyFileError(f"cannot read recordings.key_file {self.path}: {e.strerror or e}") from None
        return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)

    def _read(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise KeyFileError(
                f"cannot read recordings.key_file {self.path}: {getattr(e, 'strerror', None) or e}"
            ) from None

    def _current(self) -> dict[str, list[tuple[str, bytes]]]:
        with self._lock:
            now = self._clock()
            if now >= self._next_check:
                self._next_check = now + self._interval
                try:
                    sig = self._stat()
                    if sig != self._seen:
                        self._keys = parse_keys(self._read(), f"recordings.key_file {self.path}")
                        self._seen, self._failing = sig, None
                        logger.info("recordings: reloaded the keys of %d tenants", len(self._keys))
                except KeyFileError as e:
                    self._seen = None  # type: ignore[assignment]  # read again at the next check
                    if str(e) != self._failing:
                        logger.error("%s; keeping the keys loaded before", e)
                    self._failing = str(e)
            return self._keys

    def has_key(self, tenant: str) -> bool:
        return bool(self._current().get(tenant))

    def wrap(self, tenant: str, recording_id: str, data_key: bytes) -> Wrapped:
        """``data_key`` wrapped with the tenant's current key (``NoKey`` if it has none)."""
        keys = self._current().get(tenant)
        if not keys:
            raise NoKey(f"recordings.key_file has no key for tenant {tenant!r}")
        key_id, key = keys[-1]
        nonce = os.urandom(12)
        return Wrapped(key_id, nonce, AESGCM(key).encrypt(nonce, data_key, _aad(tenant, recording_id, key_id)))

    def unwrap(self, tenant: str, recording_id: str, wrapped: Wrapped) -> bytes:
        """A recording's data key (``NoKey``: its tenant's key ``wrapped.key_id`` is not in the file,
        or does not open it)."""
        key = dict(self._current().get(tenant, ())).get(wrapped.key_id)
        if key is None:
            raise NoKey(f"recordings.key_file has no key {wrapped.key_id!r} for tenant {tenant!r}")
        try:
            return AESGCM(key).decrypt(wrapped.nonce, wrapped.ciphertext, _aad(tenant, recording_id, wrapped.key_id))
        except InvalidTag:
            raise NoKey(f"key {wrapped.key_id!r} of tenant {tenant!r} does not open this recording's key") from None
