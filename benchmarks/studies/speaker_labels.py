"""Speaker labels before and after issue 91, on mixes of voices taking turns in one channel.

    python -m benchmarks.studies.speaker_labels [--shuffles 5] [--sweep] [--espeak] [--json out/speakers.json]

The mixes (``tests/support/speaker_mixes.py``): voices A (jfk.flac) and B (silero_test.wav) of the
shared speech and C (the project's own espeak-ng recording, demo_eng.wav), each phrase a VAD
segment of its file, 0.75 s apart: the issue's mix (27 s, AABBBAABB, its second turn a 1.2 s phrase
of A), fixed orders (alternating, long runs, a short phrase first, three voices) and ``--shuffles``
random orders of each pair and of the three. Each mix is cut by the server's VAD (silero and the
segmenter at their defaults), each segment embedded once (``SpeakerEncoder``), then labelled:

- ``before``: the online clustering before issue 91 (each segment joins the nearest speaker at
  cosine 0.7 or opens one from 1 s, never revised; kept below as ``_Before``), as every door got it;
- ``offline``: ``cluster.label_all`` over all segments at once (clips, the REST endpoints, jobs);
- ``told``: ``OnlineSpeakers``, each label as told when its segment went out (what Riva shows);
- ``revised``: the same stream's labels after the revisions it told (a gRPC stream's client).

``--espeak``: also mixes of two espeak-ng voices (``D`` en-us+m3, ``E`` en-gb+f4: two clearly
different synthetic voices, a man's and a woman's; ``apt-get install espeak-ng``), each phrase a
VAD segment of a sentence it says, alternating, in runs and in ``--shuffles`` random orders, each
voice alone, and the voices' mean cosine within and across (what a fixed merge line must sit
between).

Each at the mix's true count of voices and at an upper bound (``speakers`` 4 and 8: "at most N").
Scores, under the best one-to-one mapping of labels to voices (``speaker_mixes``): segment
accuracy (segments whose label is their voice's) and a frame-level diarization error rate (10 ms
frames, no collar: missed speech, false alarm and confusion over the truth's speech; the VAD's own
misses and false alarms are in it and the same for every labelling), and in how many mixes the
count of labels is the count of voices. ``--sweep`` repeats ``offline`` and ``told`` over the
threshold and the shortest clustered segment. CPU: the embeddings per second of audio, a stream's
clustering per segment (its window full) and a clip's at the end (process time, one BLAS thread).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import threadpoolctl
import typer
from rich.console import Console
from rich.table import Table

from tests.support.paths import SHARED_AUDIO
from tests.support.speaker_mixes import (
    Mix,
    diarization_error_rate,
    phrases,
    segment_accuracy,
    shuffled,
    study_mixes,
    turns,
)
from tests.support.speech import vad_segments
from translate_svc.speakers.cluster import ClusterConfig, OnlineSpeakers, label_all
from translate_svc.speakers.encoder import Embedding, SpeakerEncoder

app = typer.Typer(add_completion=False)
BOUNDS: tuple[int | None, ...] = (None, 4, 8)  # None: the mix's true count
WAYS = ("before", "offline", "told", "revised")


@dataclass
class Cut:
    mix: Mix
    spans: list[tuple[int, int]]
    embeddings: list[Embedding]

    @property
    def lengths(self) -> list[int]:
        return [b - a for a, b in self.spans]


class _Before:
    """``speakers/cluster.py``'s ``OnlineSpeakers`` before issue 91 (threshold 0.7, a new speaker
    from a 1 s segment, majority of partials, labels never revised), kept to measure against."""

    def __init__(self, max_speakers: int) -> None:
        self.max_speakers = max_speakers
        self._sums: list[np.ndarray] = []

    def assign(self, emb: Embedding, duration_ms: int) -> int:
        if not self._sums:
            self._sums.append(emb.vector * max(duration_ms, 1))
            return 1
        c = np.stack(self._sums)
        centroids = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
        sims = centroids @ emb.vector
        best = int(np.argmax(sims))
        if sims[best] < 0.7 and len(self._sums) < self.max_speakers and duration_ms >= 1000:
            self._sums.append(emb.vector * max(duration_ms, 1))
            return len(self._sums)
        votes = np.bincount(np.argmax(emb.partials @ centroids.T, axis=1), minlength=len(self._sums))
        top = np.flatnonzero(votes == votes.max())
        label = best if best in top else int(top[np.argmax(sims[top])])
        self._sums[label] = self._sums[label] + emb.vector * max(duration_ms, 1)
        return label + 1


def _online(cut: Cut, config: ClusterConfig) -> tuple[list[int], list[int]]:
    speakers = OnlineSpeakers(config)
    told, now = [], {}
    for n, (emb, ms) in enumerate(zip(cut.embeddings, cut.lengths, strict=True)):
        label, revised = speakers.assign(n, emb, ms)
        told.append(label)
        now[n] = label
        now.update(revised)
    return told, [now[n] for n in range(len(told))]


def labellings(cut: Cut, bound: int, config: ClusterConfig | None = None) -> dict[str, list[int]]:
    config = config or ClusterConfig(max_speakers=bound)
    before = _Before(bound)
    told, revised = _online(cut, config)
    return {
        "before": [before.assign(e, ms) for e, ms in zip(cut.embeddings, cut.lengths, strict=True)],
        "offline": label_all(cut.embeddings, cut.lengths, config),
        "told": told,
        "revised": revised,
    }


def score(
    cuts: Sequence[Cut], bound: int | None, config: Callable[[int], ClusterConfig] | None = None
) -> dict[str, Any]:
    """Each way's mean segment accuracy, the worst mix's, mean DER, and the mixes whose count is right."""
    rows: dict[str, dict[str, list[float]]] = {w: {"acc": [], "der": [], "count": []} for w in WAYS}
    wrong: dict[str, list[str]] = {w: [] for w in WAYS}
    for cut in cuts:
        n = bound or cut.mix.voices
        for way, labels in labellings(cut, n, config(n) if config else None).items():
            acc = segment_accuracy(cut.mix, cut.spans, labels)
            rows[way]["acc"].append(acc)
            rows[way]["der"].append(diarization_error_rate(cut.mix, cut.spans, labels))
            rows[way]["count"].append(float(len(set(labels)) == cut.mix.voices))
            if acc < 1:
                wrong[way].append(cut.mix.name)
    return {
        way: {
            "accuracy": float(np.mean(r["acc"])),
            "worst": float(min(r["acc"])),
            "der": float(np.mean(r["der"])),
            "count_right": int(sum(r["count"])),
            "mixes": len(cuts),
            "wrong": wrong[way],
        }
        for way, r in rows.items()
    }


#: espeak-ng's voices for ``--espeak`` and the sentences they say (each a phrase of its voice)
ESPEAK_VOICES = {"D": "en-us+m3", "E": "en-gb+f4"}
ESPEAK_SENTENCES = (
    "Could you tell me where the nearest train station is?",
    "I was thinking that we could meet again next week.",
    "The report shows that our sales went up by ten percent this year.",
    "If it rains tomorrow, we will stay at home and read.",
    "My brother, who lives in Paris, is coming to visit us in May.",
    "We need to buy some bread, some milk, and a few apples.",
    "The meeting has been moved to Thursday afternoon.",
    "Please send me the documents before the end of the day.",
)


def espeak_phrases() -> dict[str, list[np.ndarray]]:
    """Each espeak-ng voice's phrases: the VAD segments of each sentence it says, at 16 kHz."""
    import io
    import subprocess

    import soundfile as sf
    import soxr

    out: dict[str, list[np.ndarray]] = {}
    for who, voice in ESPEAK_VOICES.items():
        out[who] = []
        for text in ESPEAK_SENTENCES:
            wav = subprocess.run(["espeak-ng", "-v", voice, "--stdout", text], check=True, capture_output=True).stdout
            audio, rate = sf.read(io.BytesIO(wav), dtype="float32")
            x = soxr.resample(audio, rate, 16000, quality="HQ").astype(np.float32)
            out[who] += [seg.samples for seg in asyncio.run(vad_segments(x))]
    return out


def espeak_mixes(voices: dict[str, list[np.ndarray]], shuffles: int) -> list[Mix]:
    """Two espeak-ng voices taking turns: alternating, in runs, and ``shuffles`` random orders; and
    each voice alone (a merge line calibrated on the file's voices must not split one voice)."""
    n = min(len(voices["D"]), len(voices["E"]), 8)
    return [
        turns("DE alternating", voices, [(v, i) for i in range(n) for v in "DE"]),
        turns("DE runs", voices, [(v, i) for v in "DE" for i in range(n)] + [("D", n - 1)]),
        *(shuffled(voices, "DE", seed) for seed in range(shuffles)),
        *(turns(f"DE: {v} alone", voices, [(v, i) for i in range(len(voices[v]))]) for v in "DE"),
    ]


def cut_all(shuffles: int, espeak: bool = False) -> tuple[list[Cut], float]:
    """The mixes, cut and embedded; the embeddings' CPU seconds per second of audio."""
    voices = asyncio.run(phrases(SHARED_AUDIO))
    mixes = study_mixes(voices, shuffles)
    if espeak:
        mixes += espeak_mixes(espeak_phrases(), shuffles)
    encoder = SpeakerEncoder()
    cuts, cpu, audio = [], 0.0, 0.0
    for mix in mixes:
        segments = asyncio.run(vad_segments(mix.samples))
        t = time.process_time()
        embeddings = [encoder.embed(s.samples) for s in segments]
        cpu += time.process_time() - t
        audio += mix.seconds
        cuts.append(Cut(mix, [(s.start_ms, s.end_ms) for s in segments], embeddings))
    return cuts, cpu / audio


def voice_cosines(cuts: Sequence[Cut]) -> dict[str, float]:
    """The mean cosine between two segments' embeddings, of one voice and of each pair of voices
    (segments of at least 1.5 s, as the clustering takes; each a mix's own segments)."""
    sums: dict[str, list[float]] = {}
    for cut in cuts:
        who = [cut.mix.voice_of(a, b) for a, b in cut.spans]
        for i, j in itertools.combinations(range(len(cut.spans)), 2):
            if min(cut.lengths[i], cut.lengths[j]) < 1500 or not who[i] or not who[j]:
                continue
            key = who[i] if who[i] == who[j] else "".join(sorted(who[i] + who[j]))
            sums.setdefault(key, []).append(float(cut.embeddings[i].vector @ cut.embeddings[j].vector))
    return {k: round(float(np.mean(v)), 3) for k, v in sorted(sums.items())}


def costs(cuts: Sequence[Cut]) -> dict[str, float]:
    """A stream's clustering per segment, its window full (a long stream: the mixes' segments
    cycled), and a whole clip's of 600 s (the longest Translate takes)."""
    embeddings = [e for c in cuts for e in c.embeddings]
    lengths = [ms for c in cuts for ms in c.lengths]
    speakers = OnlineSpeakers(ClusterConfig(max_speakers=8))
    n = 400
    for i in range(100):
        speakers.assign(i, embeddings[i % len(embeddings)], lengths[i % len(lengths)])
    t = time.process_time()
    for i in range(100, 100 + n):
        speakers.assign(i, embeddings[i % len(embeddings)], lengths[i % len(lengths)])
    per_segment = (time.process_time() - t) / n
    k = round(600_000 / (float(np.mean(lengths)) + 750))  # segments of a 600 s clip, a pause each
    t = time.process_time()
    label_all(
        [embeddings[i % len(embeddings)] for i in range(k)],
        [lengths[i % len(lengths)] for i in range(k)],
        ClusterConfig(max_speakers=8),
    )
    return {
        "stream_ms_per_segment": per_segment * 1000,
        "clip_600s_ms": (time.process_time() - t) * 1000,
        "clip_segments": k,
    }


def _config(n: int, *, threshold: float, shortest: int) -> ClusterConfig:
    return ClusterConfig(max_speakers=n, threshold=threshold, min_segment_ms=shortest)


def _table(title: str, scores: dict[str, Any]) -> Table:
    table = Table(title=title)
    for col in ("labels", "segment accuracy", "worst mix", "DER", "count right"):
        table.add_column(col)
    for way, s in scores.items():
        table.add_row(
            way, f"{s['accuracy']:.3f}", f"{s['worst']:.2f}", f"{s['der']:.3f}", f"{s['count_right']}/{s['mixes']}"
        )
    return table


@app.command()
def main(
    shuffles: Annotated[int, typer.Option(help="random orders of each pair and of the three voices")] = 5,
    sweep: Annotated[bool, typer.Option(help="offline and told over thresholds and shortest segments")] = False,
    espeak: Annotated[
        bool, typer.Option(help="also mixes of two espeak-ng voices (apt-get install espeak-ng)")
    ] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the figures here too")] = None,
) -> None:
    console = Console()
    with threadpoolctl.threadpool_limits(1):
        cuts, embed_cpu = cut_all(shuffles, espeak)
        out: dict[str, Any] = {"mixes": [c.mix.name for c in cuts], "embedding_cpu_s_per_audio_s": embed_cpu}
        out["cosine"] = voice_cosines(cuts)
        console.print(f"mean cosine of segments' voices, within and across: {out['cosine']}")
        if espeak:
            synthetic = [c for c in cuts if c.mix.name.startswith("DE")]
            for bound in (None, 4):
                name = f"espeak-ng DE, {'true count' if bound is None else f'at most {bound}'}"
                out[name] = score(synthetic, bound)
                console.print(_table(f"{len(synthetic)} mixes, {name}", out[name]))
        issue = [c for c in cuts if c.mix.name.startswith("AB issue")]
        for bound in BOUNDS:
            name = "true count" if bound is None else f"at most {bound}"
            out[name] = score(cuts, bound)
            out[f"issue mix, {name}"] = {
                way: "".join(chr(64 + lab) for lab in labels)
                for way, labels in labellings(issue[0], bound or 2).items()
            }
            console.print(_table(f"{len(cuts)} mixes, {name}", out[name]))
            console.print(f"the issue's mix (truth AABBBAABB), {name}: {out[f'issue mix, {name}']}")
        if sweep:
            out["sweep"] = {}
            for threshold in (0.55, 0.6, 0.62, 0.65, 0.68, 0.7, 0.75):
                for shortest in (1000, 1500, 2000):
                    for bound in (None, 4):
                        s = score(cuts, bound, functools.partial(_config, threshold=threshold, shortest=shortest))
                        where = "true count" if bound is None else "at most 4"
                        key = f"threshold {threshold}, shortest {shortest} ms, {where}"
                        out["sweep"][key] = {w: s[w] for w in ("offline", "told")}
                        console.print(
                            f"{key}: offline {s['offline']['accuracy']:.3f} (count {s['offline']['count_right']}), "
                            f"told {s['told']['accuracy']:.3f} (count {s['told']['count_right']})"
                        )
        out["cpu"] = {"embedding_s_per_audio_s": embed_cpu, **costs(cuts)}
        console.print(out["cpu"])
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    app()
