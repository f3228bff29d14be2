"""A job's speakers re-voiced once its file's labels are final (a voice per speaker).

A job whose speakers each get a voice (``JobSpec.speaker_voices``) speaks every segment in the
job's voice as it goes, its spoken units kept (``TranslationTask.keep_spoken``) and appended to
the job's folder with the segment's number (``units.jsonl``: a line a segment, across every run
of the job). At the file's end, once ``voices.py`` has labelled every segment at once, each
segment whose label's voice (``speaker_voices.voice_of``) is not the one it was spoken in is
spoken again from its units in that voice (the vocoder alone: ``ModelInput.respeak`` at the
units' own rate; the engine's background class, as the job's segments), and its speech written
over the old in each track file. The vocoder's durations come from the units alone, so the new
speech is as long as the old (to the sample at the model's rate); a resampled track's last sample
may differ, so the new is cut or padded to the stored length: the track and every segment after
it keep their places, and the words their timings.

A run killed while re-voicing leaves the units file: the next run re-voices again (the same
bytes). The file is deleted once the labels are written.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from translate_svc.jobs.speaker_voices import voice_of
from translate_svc.types import SpokenUnits

FILE = "units.jsonl"
#: segments re-voiced at once (the engine batches them; bounded so a long job's do not fill its queue)
AT_ONCE = 16
PAGE = 256

#: a segment's units in their new voice -> its new speech by language (float32, the model's rate)
Speak = Callable[[tuple[SpokenUnits, ...]], Awaitable[dict[str, np.ndarray]]]
#: speech at the model's rate -> at the track's
AtTrackRate = Callable[[np.ndarray], np.ndarray]


class TrackStore(Protocol):
    def folder(self, job_id: str) -> Path: ...

    def overwrite_speech(self, job_id: str, language: str, at: int, samples: np.ndarray) -> None: ...

    async def segments(self, job_id: str, after: int = -1, limit: int = 256) -> list[dict[str, Any]]: ...


def keep(path: Path, seq: int, spoken: tuple[SpokenUnits, ...]) -> None:
    """The stored segment ``seq``'s spoken units appended to ``path`` (a line)."""
    line = {
        "seq": seq,
        "spoken": [
            {
                "language": u.language,
                "speaker_id": u.speaker_id,
                "rate": u.rate,
                "units": u.units.tolist(),
                "char_durations": u.char_durations.tolist(),
                "tokens": list(u.tokens),
            }
            for u in spoken
        ],
    }
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(line, separators=(",", ":")) + "\n")


def read(path: Path) -> dict[int, tuple[SpokenUnits, ...]]:
    """Each segment's kept units (its last line: a segment stored again by a resumed run); a line
    torn by a process killed mid-write is left out."""
    out: dict[int, tuple[SpokenUnits, ...]] = {}
    with contextlib.suppress(FileNotFoundError), open(path, encoding="utf-8") as f:
        for line in f:
            try:
                d = json.loads(line)
            except json.JSONDecodeError:
                continue
            out[int(d["seq"])] = tuple(
                SpokenUnits(
                    u["language"],
                    int(u["speaker_id"]),
                    np.asarray(u["units"], np.int64),
                    np.asarray(u["char_durations"], np.int64),
                    tuple(u["tokens"]),
                    float(u["rate"]),
                )
                for u in d["spoken"]
            )
    return out


@dataclasses.dataclass(frozen=True)
class Revoicing:
    """A job's voice per speaker: ``base`` the job's voice, ``named`` the labels' voices its request
    named, ``num_speakers`` the model's voices; ``speak`` makes units' speech, ``at_track_rate``
    resamples it to the tracks'."""

    base: int
    named: Mapping[int, int]
    num_speakers: int
    speak: Speak
    at_track_rate: AtTrackRate

    def voice(self, label: int) -> int:
        return voice_of(label, self.base, self.named, self.num_speakers)

    async def run(self, store: TrackStore, job_id: str, labels: Mapping[int, int], files: Executor) -> dict[int, int]:
        """Every labelled segment in its label's voice: those spoken in another re-voiced and their
        speech written over the old (``files``: the job's own thread, where its files are read and
        written). Returns each labelled segment's voice (by ``seq``)."""
        loop = asyncio.get_running_loop()
        path = store.folder(job_id) / FILE
        kept = await loop.run_in_executor(files, read, path)
        voices = {seq: self.voice(label) for seq, label in labels.items()}
        again = {
            seq: tuple(dataclasses.replace(u, speaker_id=voices[seq]) for u in spoken)
            for seq, spoken in kept.items()
            if seq in voices and any(u.speaker_id != voices[seq] for u in spoken)
        }
        if again:
            places = await _places(store, job_id)
            seqs = sorted(again)
            for at in range(0, len(seqs), AT_ONCE):
                batch = seqs[at : at + AT_ONCE]
                made = await asyncio.gather(*(self.speak(again[seq]) for seq in batch))
                writes = [
                    (lang, *places[seq][lang], self.at_track_rate(wave))
                    for seq, speech in zip(batch, made, strict=True)
                    for lang, wave in speech.items()
                    if lang in places.get(seq, {})
                ]
                await loop.run_in_executor(files, _write, store, job_id, writes)
        return voices

    @staticmethod
    def done(store: TrackStore, job_id: str) -> None:
        """The labels and voices are written: no run needs the units again."""
        (store.folder(job_id) / FILE).unlink(missing_ok=True)


async def _places(store: TrackStore, job_id: str) -> dict[int, dict[str, tuple[int, int]]]:
    """Each stored segment's speech in each track file: (its first sample, how many), the tracks
    being each segment's speech in segment order (``tracks.append_speech``)."""
    out: dict[int, dict[str, tuple[int, int]]] = {}
    ends: dict[str, int] = {}
    after = -1
    while page := await store.segments(job_id, after, PAGE):
        for seg in page:
            after += 1
            out[after] = {}
            for t in seg["translations"]:
                lang, n = t["target_language"], int(t.get("audio_samples", 0))
                out[after][lang] = (ends.get(lang, 0), n)
                ends[lang] = ends.get(lang, 0) + n
    return out


def _write(store: TrackStore, job_id: str, writes: list[tuple[str, int, int, np.ndarray]]) -> None:
    for lang, at, n, samples in writes:
        fitted = np.zeros(n, np.float32)
        fitted[: min(n, len(samples))] = samples[:n]
        store.overwrite_speech(job_id, lang, at, fitted)
