"""Sealed files and the tenants' keys (issue 61): AES-256-GCM in chunks round-trips a large file as
a stream; a file cut, altered, reordered or renamed never reads as whole; a data key wrapped with
a tenant's key opens with that key only, and a rotated key ring still opens what an older key
wrapped."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import pytest

from translate_svc.recordings.keys import KeyFileError, KeyRing, NoKey, parse_keys
from translate_svc.recordings.sealed import CHUNK, SealedError, SealedWriter, Truncated, unseal

pytestmark = pytest.mark.unit

KEY = os.urandom(32)


class _Kept(io.BytesIO):
    def close(self) -> None:  # keep the bytes readable after the writer closes it
        pass


def sealed(data: bytes, name: str = "source.ogg", *, close: bool = True, pieces: int = 7) -> bytes:
    out = _Kept()
    w = SealedWriter(out, KEY, name)
    step = max(1, len(data) // pieces)
    for i in range(0, len(data), step):
        w.write(data[i : i + step])
    if close:
        w.close()
    return out.getvalue()


def opened(blob: bytes, name: str = "source.ogg", key: bytes = KEY) -> bytes:
    return b"".join(unseal(io.BytesIO(blob), key, name))


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5])
def test_a_sealed_file_opens_to_what_was_written(size: int) -> None:
    data = os.urandom(size)
    blob = sealed(data)
    assert size < 16 or data[:64] not in blob  # (a byte or two may occur in any ciphertext by chance)
    assert opened(blob) == data


def test_a_file_cut_between_or_inside_chunks_reads_as_truncated() -> None:
    data = os.urandom(3 * CHUNK)
    blob = sealed(data)
    header = 7 + 4 + 7
    block = CHUNK + 16
    with pytest.raises(Truncated):
        opened(blob[: header + 2 * block])  # two whole chunks, the last one missing
    with pytest.raises(SealedError):
        opened(blob[: header + block + 100])  # cut inside a chunk: not whole (as altered there)
    with pytest.raises(Truncated):
        opened(sealed(data, close=False))  # a writer that never closed (a failed write)


@pytest.mark.parametrize("size", [10, CHUNK + 10])
def test_a_change_in_the_last_chunk_is_an_alteration_not_a_cut(size: int) -> None:
    blob = bytearray(sealed(os.urandom(size)))
    blob[-5] ^= 1  # in the last (short) chunk's tag
    with pytest.raises(SealedError) as e:
        opened(bytes(blob))
    assert not isinstance(e.value, Truncated) and "altered" in str(e.value)


def test_an_altered_reordered_or_renamed_file_does_not_open() -> None:
    data = os.urandom(2 * CHUNK + 10)
    blob = bytearray(sealed(data))
    flipped = bytearray(blob)
    flipped[100] ^= 1
    with pytest.raises(SealedError):
        opened(bytes(flipped))
    header, block = 18, CHUNK + 16
    swapped = (
        blob[:header]
        + blob[header + block : header + 2 * block]
        + blob[header : header + block]
        + blob[header + 2 * block :]
    )
    with pytest.raises(SealedError):
        opened(bytes(swapped))
    with pytest.raises(SealedError):
        opened(bytes(blob), name="speech.spa.ogg")  # another file's name: not this file
    with pytest.raises(SealedError):
        opened(bytes(blob), key=os.urandom(32))


def test_a_rotated_key_ring_still_opens_what_an_older_key_wrapped(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    old, new = os.urandom(32).hex(), os.urandom(32).hex()

    def b64(h: str) -> str:
        return base64.b64encode(bytes.fromhex(h)).decode()

    path.write_text(f"acme k1 {b64(old)}\nother o1 {b64(new)}\n")
    clock = [0.0]
    ring = KeyRing(path, clock=lambda: clock[0])
    data_key = os.urandom(32)
    wrapped = ring.wrap("acme", "r1", data_key)
    assert wrapped.key_id == "k1"
    path.write_text(f"acme k1 {b64(old)}\nacme k2 {b64(new)}\nother o1 {b64(new)}\n# rotated\n")
    clock[0] = 5.0  # past the check interval: the file is read again
    assert ring.wrap("acme", "r2", data_key).key_id == "k2"  # new recordings use the newest
    assert ring.unwrap("acme", "r1", wrapped) == data_key  # old ones open with theirs
    with pytest.raises(NoKey):
        ring.unwrap("other", "r1", wrapped)  # another tenant's ring: no such key
    with pytest.raises(NoKey):
        ring.unwrap("acme", "r9", wrapped)  # bound to its recording's id


@pytest.mark.parametrize(
    "line",
    ["acme k1", "acme k1 notbase64!", "acme k1 " + "QUFB", "bad/tenant k1 " + "A" * 44, "acme k/1 " + "A" * 43 + "="],
)
def test_a_bad_key_line_is_refused_without_echoing_a_key(line: str) -> None:
    with pytest.raises(KeyFileError) as e:
        parse_keys(line + "\n", "keys")
    assert "keys line 1" in str(e.value) and "QUFB" not in str(e.value)
