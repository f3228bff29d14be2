"""A recording's audio exported as FLAC (``GET /v1/recordings/{id}/files/{name}?format=flac``): the
sealed Ogg Opus decoded a chunk at a time (PyAV, FFmpeg's libopus; mono at 48 kHz) and written as
16-bit FLAC, a container that carries content credentials (Ogg cannot: ``marking/credentials.py``).
The translated speech (``speech.<language>.ogg``) is then signed with the operator's key, naming the
model, its language and the SHA-256 of the recording's source audio (its manifest's). The source
audio is a person's: exported, it is never signed as generated. Synchronous: on a file-read thread."""

from __future__ import annotations

import io
import secrets
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import soundfile as sf

from translate_svc.marking.credentials import Made, Signer
from translate_svc.recordings.sealed import Truncated

SPEECH_PREFIX, OGG = "speech.", ".ogg"


class _Chunks(io.RawIOBase):
    """The plaintext chunks of a sealed file as a stream PyAV reads; a file a failure cut
    (``Truncated``) ends where it authenticates."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._left = b""
        #: bytes read so far
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._left:
            try:
                self._left = next(self._chunks)
            except (StopIteration, Truncated):
                return 0
        n = min(len(buffer), len(self._left))
        buffer[:n] = self._left[:n]
        self._left = self._left[n:]
        self.read_bytes += n
        return n


def language_of(name: str) -> str | None:
    """The language of a speech file's name (``speech.spa.ogg``); None for any other file."""
    if name.startswith(SPEECH_PREFIX) and name.endswith(OGG):
        return name[len(SPEECH_PREFIX) : -len(OGG)] or None
    return None


def export_flac(
    chunks: Iterator[bytes],
    folder: Path,
    signer: Signer | None,
    made: Made | None,
) -> Path:
    """The Ogg Opus file ``chunks`` holds as a FLAC file in ``folder`` (the caller sends, then
    removes it); signed when ``made`` says it is generated speech and there is a ``signer``. A
    file a failure cut before its first page gives an empty file.
    Raises what the chunks raise (``SealedError`` but a cut, ``NoKey``)."""
    out = folder / f"export.{secrets.token_hex(6)}.flac"
    stream = _Chunks(chunks)
    try:
        with sf.SoundFile(out, "w", 48_000, 1, format="FLAC", subtype="PCM_16") as dst:
            try:
                src = av.open(io.BufferedReader(stream), mode="r", format="ogg")
            except av.FFmpegError:
                if stream.read_bytes:
                    raise
                src = None  # a file a failure cut before its first whole chunk: no audio
            frames = 0
            if src is not None:
                with src:
                    for frame in src.decode(audio=0):
                        dst.write(np.clip(frame.to_ndarray().mean(axis=0), -1, 1))
                        frames += frame.samples
        if frames and signer is not None and made is not None:  # (no audio: an empty body, nothing to sign)
            signer.sign_file(out, "audio/flac", made)
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return out
