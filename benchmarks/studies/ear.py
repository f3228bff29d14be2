"""Noise suppression and speaker labels (issue 72): what they buy and what they cost.

Run from the repository root::

    python -m benchmarks.studies.ear                       # both studies, a table each
    python -m benchmarks.studies.ear --json out/ear.json   # and the figures as JSON

Noise: the shared speech with pauses (jfk.flac three times, 1 s of silence around each: 12 speech
spans, ``tests/support/ear_audio.py``) mixed with white noise and with babble (six copies of
silero_test.wav from random starts, summed) at each ``--snr`` (dB, over the whole clip). Each noisy
clip is segmented by the server's VAD (silero + the segmenter at their defaults, the session's way),
without and with RNNoise in front (``audio/denoise.py``); spans are scored against the clean clip's
(found: the spans the VAD cut; missed: a clean span no found span overlaps; invented: a found span
that overlaps no clean span; a found span that joins several clean ones counts as none of these:
compare "found" with the clean count).
CPU per stream-second: process time of ``Denoiser.process`` (16 kHz -> 48 kHz, RNNoise, -> 16 kHz)
over the clip's length, one 20 ms chunk at a time as a live stream feeds it.

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
    babble,
    mix,
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


def suppressed(x: np.ndarray) -> tuple[np.ndarray, float]:
    """``x`` through a fresh Denoiser 20 ms at a time, and the process time it took."""
    d = Denoiser()
    t = time.process_time()
    out = [d.process(x[i : i + CHUNK]) for i in range(0, len(x), CHUNK)]
    out.append(d.process(np.zeros(0, np.float32), last=True))
    return np.concatenate(out), time.process_time() - t


def spans(x: np.ndarray) -> list[tuple[int, int]]:
    return [(s.start_ms, s.end_ms) for s in asyncio.run(vad_segments(x))]


def noise_study(shared: Path, snrs: list[float]) -> list[dict[str, Any]]:
    clean = speech_with_pauses(shared)
    reference = spans(clean)
    noises = {"white": white(len(clean)), "babble": babble(shared, len(clean))}
    rows = []
    for kind, noise in noises.items():
        for snr in snrs:
            noisy = mix(clean, noise, snr)
            found_off = spans(noisy)
            off = span_errors(reference, found_off)
            cleaned, cpu = suppressed(noisy)
            found_on = spans(cleaned)
            on = span_errors(reference, found_on)
            rows.append(
                {
                    "noise": kind,
                    "snr_db": snr,
                    "reference_spans": len(reference),
                    "off": {"found": len(found_off), "missed": off[0], "invented": off[1]},
                    "on": {"found": len(found_on), "missed": on[0], "invented": on[1]},
                    "cpu_s_per_stream_s": cpu / (len(noisy) / RATE),
                }
            )
    return rows


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
        labels = [speakers.assign(e, s.end_ms - s.start_ms) for e, s in zip(embeddings, segments, strict=True)]
        out[f"agreement_max{n}"] = agreement(labels, voices)
        out[f"labels_max{n}"] = labels
    out["voices"] = voices
    return out


@app.command()
def main(
    snr: Annotated[list[float], typer.Option(help="signal-to-noise ratios, dB")] = [10.0, 0.0, -8.0],  # noqa: B006
    json_out: Annotated[Path | None, typer.Option("--json", help="write the figures here too")] = None,
) -> None:
    shared = SHARED_AUDIO
    noise = noise_study(shared, snr)
    table = Table(title="VAD spans vs the clean clip's (missed / invented), without and with RNNoise")
    columns = ("noise", "SNR dB", "clean spans", "off: found", "missed", "invented", "on: found", "missed", "invented")
    for col in (*columns, "CPU s per stream-s"):
        table.add_column(col)
    for r in noise:
        off, on = r["off"], r["on"]
        cells = (r["noise"], f"{r['snr_db']:g}", r["reference_spans"], off["found"], off["missed"], off["invented"])
        cells += (on["found"], on["missed"], on["invented"], f"{r['cpu_s_per_stream_s']:.4f}")
        table.add_row(*map(str, cells))
    console.print(table)
    speakers = speaker_study(shared)
    console.print(
        f"speakers: {speakers['segments']} segments; agreement {speakers['agreement_max2']:.3f} (max 2), "
        f"{speakers['agreement_max4']:.3f} (max 4); embeddings {speakers['cpu_s_per_stream_s']:.4f} CPU s per "
        f"stream-second ({speakers['cpu_s_per_speech_s']:.4f} per second of speech)"
    )
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps({"noise": noise, "speakers": speakers}, indent=1))


if __name__ == "__main__":
    app()
