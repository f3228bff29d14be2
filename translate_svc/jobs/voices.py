"""A job's speaker labels over the whole file: each stored segment's voice embedding is
kept in the job's folder (``voices.f32``: one record a segment, its stored number, its length in
ms and its 256 floats), across every run of the job (a restart, a worker given back), so that the
run that reaches the file's end labels every segment at once (``cluster.label_all``, on the
speaker pool) and writes those labels over the stream's (``store.set_speakers``). While a job runs
its stored segments carry the stream's labels (``session/stream/speakers.py``); once it is done, the
final ones; with a voice per speaker, each segment re-voiced in its label's voice first
(``revoice.py``). The file is deleted once those are written (else with the job's folder); 1 KiB a
segment, not counted in the job's kept bytes.

Appends are a record's write on the event loop (a kilobyte, buffered by the OS); the reading and
the clustering at the end run off it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from concurrent.futures import Executor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from translate_svc.jobs import revoice
from translate_svc.jobs.revoice import Revoicing, TrackStore
from translate_svc.speakers.encoder import Embedding
from translate_svc.types import SpokenUnits

if TYPE_CHECKING:  # the store imports ``with_speaker`` and nothing of a session
    from translate_svc.session.stream.session import StreamSession
    from translate_svc.session.stream.speakers import SpeakerLabels

FILE = "voices.f32"
_RECORD = np.dtype([("seq", "<i8"), ("ms", "<i8"), ("voice", "<f4", (256,))])


class SpeakerStore(TrackStore, Protocol):
    async def set_speakers(self, job_id: str, labels: dict[int, int], voices: dict[int, int] | None = None) -> None: ...


class JobVoices:
    """One run's view of its job's kept voices. Event loop only."""

    def __init__(self, path: Path, labels: SpeakerLabels) -> None:
        self._path = path
        self._labels = labels
        labels.keep_all()
        with contextlib.suppress(FileNotFoundError):  # a record torn by a process killed mid-write
            size = path.stat().st_size
            if size % _RECORD.itemsize:
                os.truncate(path, size - size % _RECORD.itemsize)

    @classmethod
    def of(cls, store: SpeakerStore, job_id: str, session: StreamSession) -> JobVoices | None:
        """The run's voices when its job asked for speaker labels (before any segment closes)."""
        labels = session.jobs.speakers
        return None if labels is None else cls(store.folder(job_id) / FILE, labels)

    def stored(self, segment_id: int, seq: int, spoken: tuple[SpokenUnits, ...] = ()) -> None:
        """The session's segment ``segment_id`` was stored as the job's ``seq``: its voice kept, and
        its spoken units where a voice per speaker re-voices it (``revoice.py``)."""
        if spoken:
            revoice.keep(self._path.parent / revoice.FILE, seq, spoken)
        kept = self._labels.take(segment_id)
        if kept is None:  # its embedding failed: it keeps its label as given (0)
            return
        emb, ms = kept
        record = np.zeros(1, _RECORD)
        record["seq"], record["ms"], record["voice"] = seq, ms, emb.vector
        with open(self._path, "ab") as f:
            f.write(record.tobytes())

    async def relabel(
        self, store: SpeakerStore, job_id: str, files: Executor, revoicing: Revoicing | None = None
    ) -> None:
        """The job reached its end: every kept segment labelled at once, re-voiced in its label's
        voice with ``revoicing`` (a voice per speaker), and stored so (``files``: the job's own
        thread, where its files are read and written)."""
        records = await asyncio.get_running_loop().run_in_executor(files, _read, self._path)
        if len(records):
            embeddings = [Embedding(v, v[None, :]) for v in records["voice"].astype(np.float32)]
            labels = await self._labels.cluster_all(embeddings, [int(ms) for ms in records["ms"]])
            by_seq = {int(s): label for s, label in zip(records["seq"], labels, strict=True)}
            voices = None if revoicing is None else await revoicing.run(store, job_id, by_seq, files)
            await store.set_speakers(job_id, by_seq, voices)
        self._path.unlink(missing_ok=True)  # written: no run needs them again
        revoice.Revoicing.done(store, job_id)


def _read(path: Path) -> np.ndarray:
    """The file's records, the last one of each segment, in segment order (a torn last record is
    left out)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return np.zeros(0, _RECORD)
    records = np.frombuffer(raw[: len(raw) // _RECORD.itemsize * _RECORD.itemsize], _RECORD)
    last = {int(s): i for i, s in enumerate(records["seq"])}
    out: np.ndarray = records[sorted(last.values(), key=lambda i: int(records["seq"][i]))]
    return out


def with_speaker(result: dict[str, Any], speaker: int, voice: int | None = None) -> dict[str, Any]:
    """A stored segment (``model.segment_json``) with its speaker label, and its transcript's words';
    and the voice its speech is in, where a voice per speaker gave it one."""
    out = dict(result, speaker=speaker) if voice is None else dict(result, speaker=speaker, voice=voice)
    transcript = out.get("transcript")
    if transcript is not None:
        out["transcript"] = dict(transcript, words=[dict(w, speaker=speaker) for w in transcript.get("words", [])])
    return out
