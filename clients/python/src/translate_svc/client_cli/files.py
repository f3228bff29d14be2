"""Writing the client commands' files: whole or not at all, never over an existing one unless told.

Outputs are checked before any call (``check_free``, ``check_dir``) so a mistake costs no
translation; the directory is made only when something is written.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from translate_svc.client import Commit, Segment
from translate_svc.client_cli.common import CliError, warn
from translate_svc.client_cli.output import concat_track, dub_track, wav_bytes


def check_free(paths: Sequence[Path], overwrite: bool) -> None:
    if overwrite:
        return
    taken = [p for p in paths if p.exists()]
    if taken:
        more = f" (and {len(taken) - 1} more output file(s))" if len(taken) > 1 else ""
        raise CliError(f"{taken[0]} already exists{more}: pass --overwrite to replace, or choose another --out")


def write(path: Path, data: bytes, overwrite: bool) -> None:
    """Write whole or not at all; without ``overwrite`` an existing file is never replaced."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise CliError(f"{path} appeared meanwhile: pass --overwrite to replace it") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def open_text(path: Path, overwrite: bool) -> IO[str]:
    """A text file to write line by line (JSON lines): refused if it exists, unless ``overwrite``."""
    try:
        return path.open("w" if overwrite else "x", encoding="utf-8")
    except FileExistsError:
        raise CliError(f"{path} already exists: pass --overwrite to replace it") from None
    except OSError as e:
        raise CliError(f"cannot write {path}: {e.strerror or e}") from None


def check_dir(path: Path) -> None:
    """Fail early when ``path`` cannot be made or written to (it is only made when written to)."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise CliError(f"cannot use {path} as the output directory: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CliError(f"cannot write to {existing} (for {path})")


def make_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CliError(f"cannot create the output directory {path}: {e.strerror or e}") from None


#: (start_ms, float32 audio, its rate): speech to place on a dub track
Piece = tuple[float, np.ndarray[Any, Any], int]


def _speech_pieces(segments: Sequence[Segment], target: str) -> list[Piece]:
    """(start_ms, float32 audio, rate) of each segment with speech in ``target``."""
    pieces: list[Piece] = []
    for seg in segments:
        for t in seg.translations:
            if t.target == target and t.audio is not None and len(t.audio):
                pieces.append((seg.start_ms, t.audio, t.sample_rate))
    return pieces


def commit_pieces(commits: Sequence[Commit], segments: Sequence[Segment], target: str) -> list[Piece]:
    """Simultaneous mode: ``target``'s speech as a live listener hears it. Each commit's chunk starts
    at its ``source_ms`` (when it was committed), or when the chunk before it ends if that is later
    (a player queues them; chunks never overlap). A segment whose speech did not come in commits
    (``speech_in_commits`` false: e.g. it failed, or an older server) is placed at its start."""
    pieces: list[Piece] = []
    free_ms = 0.0  # where the last chunk placed ends
    for c in commits:
        t = c.translation
        if t.target != target or t.audio is None or not len(t.audio) or not t.sample_rate:
            continue
        start = max(float(c.source_ms), free_ms)
        pieces.append((start, t.audio, t.sample_rate))
        free_ms = start + len(t.audio) * 1000 / t.sample_rate
    return pieces + _speech_pieces([s for s in segments if not s.speech_in_commits], target)


def write_speech(
    directory: Path,
    base: str,
    target: str,
    segments: Sequence[Segment],
    duration_ms: int,
    *,
    rate: int,
    concat: bool,
    extend: bool,
    overwrite: bool,
    pieces: list[Piece] | None = None,
) -> tuple[list[Path], dict[str, Any]]:
    """The dub track (and the segments-only track): files written and their JSON entries.
    ``pieces``: the speech to place, instead of each segment's at its start (``commit_pieces``)."""
    if pieces is None:
        pieces = _speech_pieces(segments, target)
    rate = pieces[0][2] if pieces else (rate or 16000)
    if any(r != rate for _, _, r in pieces):
        raise CliError(f"the server sent {target} speech at several sample rates; cannot mix them")
    track, cut = dub_track(duration_ms, rate, [(start, audio) for start, audio, _ in pieces], extend=extend)
    written = [directory / f"{base}.{target}.wav"]
    write(written[0], wav_bytes(track, rate), overwrite)
    info: dict[str, Any] = {"dub": written[0].name, "sample_rate_hz": rate, "speech_cut_ms": round(cut * 1000 / rate)}
    if cut:
        warn(
            f"{written[0]}: {cut * 1000 / rate:.0f} ms of {target} speech ran past the end of the source and was "
            "cut (--dub-extend keeps it)"
        )
    if concat:
        path = directory / f"{base}.{target}.segments.wav"
        write(path, wav_bytes(concat_track([audio for _, audio, _ in pieces], rate), rate), overwrite)
        written.append(path)
        info["segments"] = path.name
    return written, info
