"""TLS for the gRPC port: server credentials that follow their certificate files.

cert-manager (and any Kubernetes Secret volume) replaces the certificate, key and CA files in place
while the server runs; a server that read them once would serve an expired certificate until it is
restarted. ``CertificateReloader`` hands gRPC a certificate-configuration fetcher instead
(``grpc.dynamic_ssl_server_credentials``): gRPC calls it before each new TLS handshake, and it
returns new material only when the files changed. The check is one ``stat`` per file at most once
per ``check_interval_s``, so a flood of connections costs nothing; the files are read only when a
stat signature changed. Connections already open keep the certificate they were made with.

Material is validated with the standard ``ssl`` module before gRPC sees it (PEM parses, key matches
certificate, the CA file holds a certificate): at start-up a bad file is a one-line
``TlsConfigError``; during a rotation it is logged and the current material stays in use (a
rotation that writes the certificate and the key one after the other is briefly mismatched; the
next check after the second write picks the pair up).
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

logger = logging.getLogger(__name__)

#: (device, inode, mtime in ns, size) of each file: changes when a file is rewritten or a symlink
#: (Kubernetes' ``..data``) is swapped to a new file
_Signature = tuple[tuple[int, int, int, int], ...]


class TlsConfigError(Exception):
    """A TLS file is missing, unreadable, not PEM, or the key does not match the certificate.

    The message is one line that names the setting and the file, for the start-up error.
    """


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path
    #: when set, clients must present a certificate signed by one of these CAs (mTLS)
    client_ca: Path | None = None

    def named(self) -> list[tuple[str, Path]]:
        """(setting name, path) of each file, for messages."""
        files = [("server.tls_cert_file", self.cert), ("server.tls_key_file", self.key)]
        if self.client_ca is not None:
            files.append(("server.tls_client_ca_file", self.client_ca))
        return files


@dataclass(frozen=True)
class TlsMaterial:
    """The bytes of one consistent, validated set of files."""

    cert: bytes
    key: bytes
    client_ca: bytes | None

    def configuration(self) -> Any:
        """As gRPC's ``ServerCertificateConfiguration``."""
        return grpc.ssl_server_certificate_configuration([(self.key, self.cert)], root_certificates=self.client_ca)


class _Changing(Exception):
    """The files changed while they were read: try again at the next check."""


def _signature(files: TlsFiles) -> _Signature:
    sig = []
    for name, path in files.named():
        try:
            st = os.stat(path)
        except OSError as e:
            raise TlsConfigError(f"TLS: cannot read {name} {path}: {e.strerror or e}") from None
        sig.append((st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(sig)


def _read_all(files: TlsFiles) -> list[bytes]:
    out = []
    for name, path in files.named():
        try:
            out.append(path.read_bytes())
        except OSError as e:
            raise TlsConfigError(f"TLS: cannot read {name} {path}: {e.strerror or e}") from None
    return out


def _no_password() -> bytes:
    # without a callback OpenSSL would prompt on the terminal for an encrypted key
    return b""


def _validate(files: TlsFiles) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(files.cert, files.key, password=_no_password)
    except ssl.SSLError as e:
        if e.reason == "KEY_VALUES_MISMATCH":
            raise TlsConfigError(
                f"TLS: the private key server.tls_key_file {files.key} does not match "
                f"the certificate server.tls_cert_file {files.cert}"
            ) from None
        raise TlsConfigError(
            f"TLS: server.tls_cert_file {files.cert} / server.tls_key_file {files.key} must be a PEM certificate "
            f"(chain) and its unencrypted PEM private key ({e.reason or e})"
        ) from None
    except OSError as e:
        raise TlsConfigError(f"TLS: cannot read {files.cert} / {files.key}: {e.strerror or e}") from None
    if files.client_ca is not None:
        try:
            ctx.load_verify_locations(cafile=files.client_ca)
        except (ssl.SSLError, OSError) as e:
            reason = getattr(e, "reason", None) or getattr(e, "strerror", None) or e
            raise TlsConfigError(
                f"TLS: server.tls_client_ca_file {files.client_ca} must hold PEM CA certificates ({reason})"
            ) from None


def load_material(files: TlsFiles) -> TlsMaterial:
    """Read and validate the files as one consistent set.

    ``ssl`` validates files by path, so the bytes are read before and after validation; if they
    differ a writer was busy (``_Changing``) and the caller tries again later.
    """
    before = _read_all(files)
    _validate(files)
    if _read_all(files) != before:
        raise _Changing
    return TlsMaterial(before[0], before[1], before[2] if files.client_ca is not None else None)


class CertificateReloader:
    """The current TLS material of the server, re-read when its files change.

    Thread safety: gRPC calls ``fetch`` from its own threads (one call per new handshake, possibly
    several at once); a lock serialises the checks. The constructor raises ``TlsConfigError`` when
    the files cannot be used, so a bad configuration fails start-up.
    """

    def __init__(
        self, files: TlsFiles, *, check_interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.files = files
        self._interval = check_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._seen = _signature(files)
        try:
            self.material = load_material(files)
        except _Changing:
            raise TlsConfigError(
                f"TLS: {files.cert} / {files.key} changed while being read at start-up; start again"
            ) from None
        self._next_check = clock() + check_interval_s
        #: rotations picked up since start (tests and logs)
        self.rotations = 0

    @property
    def mutual(self) -> bool:
        return self.files.client_ca is not None

    def credentials(self) -> grpc.ServerCredentials:
        """Server credentials that call ``fetch`` before each handshake; mTLS requires and verifies
        a client certificate (gRPC's REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY)."""
        return grpc.dynamic_ssl_server_credentials(
            self.material.configuration(), self.fetch, require_client_authentication=self.mutual
        )

    def fetch(self) -> Any:
        """gRPC's certificate-configuration fetcher: new configuration, or None for "unchanged"."""
        try:
            material = self.check()
        except Exception:  # never let a reload bug break handshakes: keep serving the current material
            logger.exception("TLS: checking the certificate files failed; keeping the current certificate")
            return None
        return None if material is None else material.configuration()

    def check(self) -> TlsMaterial | None:
        """New material if the files changed since the last look (at most once per interval)."""
        with self._lock:
            now = self._clock()
            if now < self._next_check:
                return None
            self._next_check = now + self._interval
            try:
                sig = _signature(self.files)
            except TlsConfigError as e:
                if self._seen != ():
                    logger.error("%s; keeping the current certificate", e)
                self._seen = ()  # log once until the files come back
                return None
            if sig == self._seen:
                return None
            try:
                material = load_material(self.files)
            except _Changing:
                return None  # a writer is busy: look again at the next check
            except TlsConfigError as e:
                self._seen = sig  # log once per state of the files, not once per second
                logger.error("%s; keeping the current certificate until the files are fixed", e)
                return None
            self._seen = sig
            if material == self.material:
                return None  # touched, not changed
            changed = [
                name
                for name, old, new in (
                    ("certificate", self.material.cert, material.cert),
                    ("key", self.material.key, material.key),
                    ("client CA", self.material.client_ca, material.client_ca),
                )
                if old != new
            ]
            self.material = material
            self.rotations += 1
            logger.info("TLS: new %s loaded from %s; new connections use it", " and ".join(changed), self.files.cert)
            return material
