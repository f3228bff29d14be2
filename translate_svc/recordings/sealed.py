"""Files sealed at rest: AES-256-GCM in chunks, so that a large file is written and read as a stream.

Each recording has its own random 256-bit data key (``keys.py`` wraps it with its tenant's key).
Each of its files is a header and a run of chunks::

    magic "TSREC1\\n" (7 bytes) | chunk size (4 bytes, big-endian) | nonce prefix (7 random bytes)
    chunk i: AES-256-GCM(data key, nonce = prefix | i (4 bytes, big-endian) | last (1 byte),
                         chunk plaintext, associated data = header | file name) -> ciphertext | tag

(the STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizár, as Tink's streaming AEAD uses
it). The counter orders the chunks, the ``last`` byte marks the final one, and the header and the
file's name are authenticated with every chunk: a chunk moved, dropped, swapped from another file
or cut off at the end fails to decrypt, and a file cut between chunks is known as such
(``Truncated``) rather than read as whole; one cut inside a chunk reads as altered there (its
manifest says it was cut). The plaintext of each chunk is authenticated before any
of it is returned.

``SealedWriter`` is a writable file object (what PyAV's Ogg muxer writes into); not thread-safe:
one writer thread. ``unseal`` is a generator of plaintext chunks; pure, thread-safe.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"TSREC1\n"
#: plaintext bytes per chunk
CHUNK = 64 * 1024
_TAG = 16
_PREFIX = 7
_HEADER = len(MAGIC) + 4 + _PREFIX
#: the most chunks one file may have (the counter's 4 bytes): 256 TiB at 64 KiB a chunk
_MAX_CHUNKS = 1 << 32


class SealedError(Exception):
    """A sealed file that cannot be read: not one, tampered with, or another key's."""


class Truncated(SealedError):
    """The file ends before its last chunk, between two chunks: it was cut (a disk that filled, a
    crash). What came before was returned and is authentic. (A file cut inside a chunk cannot be
    told from one altered there: ``SealedError``; its manifest says whether it was cut.)"""


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", index, 1 if last else 0)


class SealedWriter:
    """Seals what is written to ``out`` (a binary file opened for writing), chunk by chunk.
    ``close`` seals the last chunk; a writer never closed leaves a file that reads as ``Truncated``.
    Errors of ``out`` (a full disk: ``OSError``) pass to the caller."""

    def __init__(self, out: BinaryIO, data_key: bytes, name: str, *, chunk: int = CHUNK) -> None:
        self._out = out
        self._aead = AESGCM(data_key)
        self._chunk = chunk
        prefix = os.urandom(_PREFIX)
        self._header = MAGIC + struct.pack(">I", chunk) + prefix
        self._prefix = prefix
        self._aad = self._header + name.encode("utf-8")
        self._buf = bytearray()
        self._index = 0
        self._closed = False
        out.write(self._header)
        #: plaintext bytes written so far
        self.size = 0

    def write(self, data: bytes) -> int:
        if self._closed:
            raise ValueError("write to a closed sealed file")
        self._buf += data
        self.size += len(data)
        while len(self._buf) > self._chunk:  # the last chunk is sealed by ``close`` (it may be full)
            self._seal(bytes(self._buf[: self._chunk]), last=False)
            del self._buf[: self._chunk]
        return len(data)

    def flush(self) -> None:
        self._out.flush()

    def _seal(self, plain: bytes, *, last: bool) -> None:
        if self._index >= _MAX_CHUNKS:
            raise OSError("a sealed file is limited to 2**32 chunks")
        self._out.write(self._aead.encrypt(_nonce(self._prefix, self._index, last), plain, self._aad))
        self._index += 1

    def close(self) -> None:
        """Seal the last chunk (perhaps empty) and close ``out``."""
        if self._closed:
            return
        self._closed = True
        try:
            self._seal(bytes(self._buf), last=True)
            self._buf.clear()
            self._out.flush()
        finally:
            self._out.close()

    def abandon(self) -> None:
        """Close ``out`` without sealing a last chunk (the file reads as ``Truncated``)."""
        self._closed = True
        self._buf.clear()
        try:
            self._out.close()
        except OSError:
            pass


def unseal(src: BinaryIO, data_key: bytes, name: str) -> Iterator[bytes]:
    """The plaintext of a sealed file, a chunk at a time, each authenticated before it is given.
    Raises ``SealedError`` (tampered with, or not sealed with this key and name) or ``Truncated``."""
    header = src.read(_HEADER)
    if len(header) != _HEADER or not header.startswith(MAGIC):
        raise SealedError(f"{name} is not a sealed recording file")
    (chunk,) = struct.unpack(">I", header[len(MAGIC) : len(MAGIC) + 4])
    if not 0 < chunk <= 1 << 24:
        raise SealedError(f"{name} has a chunk size of {chunk} bytes")
    prefix = header[len(MAGIC) + 4 :]
    aead = AESGCM(data_key)
    aad = header + name.encode("utf-8")
    block = chunk + _TAG
    current = src.read(block)
    index = 0
    while True:
        following = src.read(block) if len(current) == block else b""
        last = not following
        if len(current) < _TAG:
            raise Truncated(f"{name} ends before its last chunk")
        try:
            plain = aead.decrypt(_nonce(prefix, index, last), current, aad)
        except InvalidTag:
            if last:
                try:  # a file cut exactly between chunks: this one authenticates as not the last
                    aead.decrypt(_nonce(prefix, index, False), current, aad)
                except InvalidTag:
                    pass
                else:
                    raise Truncated(f"{name} ends before its last chunk") from None
            raise SealedError(
                f"{name} does not decrypt with its recording's key: it was altered"
                + (" (or cut part-way by a write that failed)" if last and len(current) < block else "")
            ) from None
        yield plain
        if last:
            return
        current, index = following, index + 1
