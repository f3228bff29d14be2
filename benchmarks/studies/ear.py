"""Noise suppression and speaker labels (issues 72 and 91): what they buy and what they cost.

Run from the repository root::

    python -m benchmarks.studies.ear                       # the three studies, a table each
    python -m benchmarks.studies.ear --json out/ear.json   # and the figures as JSON

Noise: the shared speech with pauses (jfk.flac three times, 1 s of silence around each: 12 speech
spans, ``tests/support/ear_audio.py``) mixed with white noise and with babble (six copies of
silero_test.wav from random starts, summed) at each ``--snr`` (dB, over the whole clip). Each noisy
clip is segmented by the server's VAD (silero + the segmenter at their defaults, the session's way),
without suppression, with RNNoise alone in front (``Denoiser(keep_speech=False)``: what the server
did before issue 91) and with RNNoise mixed with the dry signal (``audio/denoise.py``'s
``SpeechKeeper``, the server's now); spans are scored against the clean clip's (found: the spans the
VAD cut; missed: a clean span no found span overlaps; invented: a found span that overlaps no clean
span; a found span that joins several clean ones counts as none of these: compare "found" with the
clean count). CPU per stream-second: process time of ``Denoiser.process`` (16 kHz -> 48 kHz,
RNNoise, the mix, -> 16 kHz) over the clip's length, one 20 ms chunk at a time as a live stream
feeds it, alone and with the mix.

Clean speech (issue 91): every phrase of clean mixes, suppressed both ways, its level relative to
the dry phrase (mean powers over its samples) and whether the VAD cuts it in more spans than it
cuts the dry clip's (issue 100: RNNoise cut a clean jfk phrase in two): jfk.flac's four phrases alone, after 1 s of
near-silence, after 1 s of digital silence and right after each of silero_test.wav's first ten
speech regions (``phrase_contexts``); the two clean two-voice mixes (``alternating``, ``two_voices``);
jfk.flac, silero_test.wav and the speech with pauses whole, their phrases as the VAD cuts them dry.

Speakers: two voices taking turns in one channel (jfk.flac's four phrases and silero_test.wav's
first ten speech regions, ``two_voices``); each VAD segment embedded (``speakers/encoder.py``) and
labelled online (``speakers/cluster.py``) with ``max_speakers`` 2 and 4; agreement with the voice
that holds most of each segment, under the best one-to-one mapping. CPU per stream-second of
embeddings: process time of the embeddings over the clip's length (and over its speech's).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from tests.support.ear_audio import (
    agreement,
    alternating,
    babble,
    level_db,
    mix,
    phrase_contexts,
    span_errors,
    speech_with_pauses,
    two_voices,
    voice_of,
    white,
)
from tests.support.paths import SHARED_AUDIO
from tests.support.speech import read_16k, vad_segments
from translate_svc.audio.denoise import Denoiser
from translate_svc.speakers.cluster import ClusterConfig, OnlineSpeakers
from translate_svc.speakers.encoder import SpeakerEncoder

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_enable=False)
console = Console(width=None if sys.stdout.isatty() else 120)
RATE = 16000
CHUNK = 320  # 20 ms


def suppressed(x: np.ndarray, keep_speech: bool = True) -> tuple[np.ndarray, float]:
    """``x`` through a fresh Denoiser 20 ms at a time, and the process time it took."""
    d = Denoiser(keep_speech=keep_speech)
    t = time.process_time()
    out = [d.process(x[i : i + CHUNK]) for i in range(0, len(x), CHUNK)]
    out.append(d.process(np.zeros(0, np.float32), last=True))
    return np.concatenate(out), time.process_time() - t


def spans(x: np.ndarray) -> list[tuple[int, int]]:
    return [(s.start_ms, s.end_ms) for s in asyncio.run(vad_segments(x))]


def _scored(reference: list[tuple[int, int]], found: list[tuple[int, int]]) -> dict[str, int]:
    missed, invented, _ = span_errors(reference, found)
    return {"found": len(found), "missed": missed, "invented": invented}


def noise_study(shared: Path, snrs: list[float]) -> list[dict[str, Any]]:
    clean = speech_with_pauses(shared)
    reference = spans(clean)
    noises = {"white": white(len(clean)), "babble": babble(shared, len(clean))}
    rows = []
    for kind, noise in noises.items():
        for snr in snrs:
            noisy = mix(clean, noise, snr)
            alone, cpu_alone = suppressed(noisy, keep_speech=False)
            kept, cpu = suppressed(noisy)
            rows.append(
                {
                    "noise": kind,
                    "snr_db": snr,
                    "reference_spans": len(reference),
                    "off": _scored(reference, spans(noisy)),
                    "rnnoise_alone": _scored(reference, spans(alone)),
                    "on": _scored(reference, spans(kept)),
                    "cpu_s_per_stream_s": cpu / (len(noisy) / RATE),
                    "cpu_alone_s_per_stream_s": cpu_alone / (len(noisy) / RATE),
                }
            )
    return rows


def clean_study(shared: Path) -> dict[str, Any]:
    """Every clean phrase's level after suppression, relative to the dry phrase, both ways."""
    files = [asyncio.run(vad_segments(read_16k(shared / n))) for n in ("jfk.flac", "silero_test.wav")]
    cases = [(name, clip, [span]) for name, clip, span in phrase_contexts(files, others=10)]
    for name, (clip, truth) in (("alternating", alternating(files)), ("two_voices", two_voices(shared, files))):
        cases.append((name, clip, [(a, b) for a, b, _ in truth]))
    whole = {n: read_16k(shared / n) for n in ("jfk.flac", "silero_test.wav")}
    whole["speech_with_pauses"] = speech_with_pauses(shared)
    for name, clip in whole.items():  # each file whole: its phrases as the VAD cuts the dry file
        cases.append((name, clip, [(a * 16, b * 16) for a, b in spans(clip)]))
    out: dict[str, Any] = {}
    dry = [cut_in(spans(clip), phrases) for _, clip, phrases in cases]
    for way, keep in (("rnnoise_alone", False), ("on", True)):
        levels, split = [], []
        for (name, clip, phrases), dry_cuts in zip(cases, dry, strict=True):
            y, _ = suppressed(clip, keep_speech=keep)
            levels += [(name, round(level_db(y[a:b], clip[a:b]), 1)) for a, b in phrases]
            cuts = cut_in(spans(y), phrases)
            split += [(name, i) for i, (n, d) in enumerate(zip(cuts, dry_cuts, strict=True)) if n > d]
        worst = sorted(levels, key=lambda nl: nl[1])
        out[way] = {
            "phrases": len(levels),
            "over_6_db_down": sum(1 for _, db in levels if db < -6.0),
            "worst": worst[:5],
            "levels": levels,
            "split": split,
        }
    return out


def cut_in(found: list[tuple[int, int]], phrases: list[tuple[int, int]]) -> list[int]:
    """For each phrase (samples), how many of the VAD's spans (ms) overlap it."""
    return [sum(1 for a, b in found if a * 16 < end and b * 16 > start) for start, end in phrases]


def speaker_study(shared: Path) -> dict[str, Any]:
    files = [asyncio.run(vad_segments(read_16k(shared / n))) for n in ("jfk.flac", "silero_test.wav")]
    clip, truth = two_voices(shared, files)
    segments = asyncio.run(vad_segments(clip))
    encoder = SpeakerEncoder()
    t = time.process_time()
    embeddings = [encoder.embed(s.samples) for s in segments]
    cpu = time.process_time() - t
    voices = [voice_of(s.start_ms, s.end_ms, truth) for s in segments]
    out: dict[str, Any] = {
        "segments": len(segments),
        "cpu_s_per_stream_s": cpu / (len(clip) / RATE),
        "cpu_s_per_speech_s": cpu / (sum(len(s.samples) for s in segments) / RATE),
    }
    for n in (2, 4):
        speakers = OnlineSpeakers(ClusterConfig(max_speakers=n))
        labels = [
            speakers.assign(i, e, s.end_ms - s.start_ms)[0]
            for i, (e, s) in enumerate(zip(embeddings, segments, strict=True))
        ]
        out[f"agreement_max{n}"] = agreement(labels, voices)
        out[f"labels_max{n}"] = labels
    out["voices"] = voices
    return out


@app.command()
def main(
    snr: Annotated[list[float], typer.Option(help="signal-to-noise ratios, dB")] = [8.0, 0.0, -8.0],  # noqa: B006
    json_out: Annotated[Path | None, typer.Option("--json", help="write the figures here too")] = None,
) -> None:
    shared = SHARED_AUDIO
    clean = clean_study(shared)
    table = Table(title="Clean phrases' levels after suppression, relative to the dry phrase")
    for col in ("suppression", "phrases", "more than 6 dB down", "the worst (dB)", "cut in more spans than dry"):
        table.add_column(col)
    for way in ("rnnoise_alone", "on"):
        r = clean[way]
        worst = ", ".join(f"{name} {db:g}" for name, db in r["worst"][:3])
        split = ", ".join(f"{name} #{i}" for name, i in r["split"][:3])
        table.add_row(way, str(r["phrases"]), str(r["over_6_db_down"]), worst, f"{len(r['split'])} {split}")
    console.print(table)
    noise = noise_study(shared, snr)
    table = Table(title="VAD spans vs the clean clip's (found / missed / invented): off, RNNoise alone, RNNoise kept")
    columns = ("noise", "SNR dB", "clean spans", "off", "RNNoise alone", "RNNoise + dry")
    for col in (*columns, "CPU s per stream-s: alone", "+ dry"):
        table.add_column(col)
    for r in noise:
        cells = [r["noise"], f"{r['snr_db']:g}", str(r["reference_spans"])]
        cells += ["{found} / {missed} / {invented}".format(**r[k]) for k in ("off", "rnnoise_alone", "on")]
        table.add_row(*cells, f"{r['cpu_alone_s_per_stream_s']:.4f}", f"{r['cpu_s_per_stream_s']:.4f}")
    console.print(table)
    speakers = speaker_study(shared)
    console.print(
        f"speakers: {speakers['segments']} segments; agreement {speakers['agreement_max2']:.3f} (max 2), "
        f"{speakers['agreement_max4']:.3f} (max 4); embeddings {speakers['cpu_s_per_stream_s']:.4f} CPU s per "
        f"stream-second ({speakers['cpu_s_per_speech_s']:.4f} per second of speech)"
    )
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps({"clean": clean, "noise": noise, "speakers": speakers}, indent=1))


if __name__ == "__main__":
    app()
