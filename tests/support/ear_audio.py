"""Test and benchmark audio for noise suppression and speaker labels (issue 72), built from the
shared speech: speech with pauses, noise mixed in at a stated SNR (white, or babble made of other
speech), two voices taking turns in one channel, and the scoring of VAD spans against the clean
file's."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tests.support.speech import read_16k

RATE = 16000


def speech_with_pauses(shared_audio: Path) -> np.ndarray:
    """jfk.flac three times, 1 s of silence before, between and after: 12 speech spans (its four
    phrases each time) at 16 kHz."""
    x = read_16k(shared_audio / "jfk.flac")
    gap = np.zeros(RATE, np.float32)
    return np.concatenate([gap, x, gap, x, gap, x, gap]).astype(np.float32)


def white(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n).astype(np.float32)


def babble(shared_audio: Path, n: int, talkers: int = 6, seed: int = 0) -> np.ndarray:
    """Babble from other speech: ``talkers`` copies of silero_test.wav (not the speech under test),
    each from its own random start, looped, summed."""
    src = read_16k(shared_audio / "silero_test.wav")
    rng = np.random.default_rng(seed)
    out = np.zeros(n, np.float32)
    for _ in range(talkers):
        start = int(rng.integers(len(src)))
        out += np.resize(np.roll(src, -start), n)
    return out


def mix(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``clean`` plus ``noise`` scaled so the clip's signal-to-noise ratio (mean powers over the
    whole clip, its pauses included) is ``snr_db``."""
    n = noise[: len(clean)]
    p_clean, p_noise = float(np.mean(clean**2)), float(np.mean(n**2))
    scaled = n * np.sqrt(p_clean / (p_noise * 10 ** (snr_db / 10)))
    return (clean + scaled).astype(np.float32)


def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return min(a[1], b[1]) > max(a[0], b[0])


def span_errors(reference: Sequence[tuple[int, int]], found: Sequence[tuple[int, int]]) -> tuple[int, int, list]:
    """(spans of ``reference`` that no found span overlaps: missed, found spans that overlap no
    reference span: invented, the invented spans)."""
    missed = sum(1 for r in reference if not any(overlaps(r, f) for f in found))
    invented = [f for f in found if not any(overlaps(r, f) for r in reference)]
    return missed, len(invented), invented


def two_voices(shared_audio: Path, segments: Sequence) -> tuple[np.ndarray, list[tuple[int, int, str]]]:
    """Two different voices taking turns in one channel: jfk.flac's four phrases (voice A) and
    silero_test.wav's first ten speech regions (voice B, two a turn, then one), 0.75 s apart.
    ``segments``: the VAD's segments of each file ((jfk's, silero_test's)). Returns the clip and
    its truth, (start sample, end sample, voice)."""
    jfk, sil = segments
    gap = np.zeros(12000, np.float32)
    turns: list[tuple[str, np.ndarray]] = []
    for i in range(4):
        turns.append(("A", jfk[i].samples))
        turns.append(("B", np.concatenate([sil[2 * i].samples, gap[:4000], sil[2 * i + 1].samples])))
    turns.append(("B", sil[9].samples))
    parts, truth, pos = [gap], [], len(gap)
    for who, x in turns:
        parts += [x, gap]
        truth.append((pos, pos + len(x), who))
        pos += len(x) + len(gap)
    return np.concatenate(parts).astype(np.float32), truth


def voice_of(start_ms: int, end_ms: int, truth: Sequence[tuple[int, int, str]]) -> str:
    """The voice that holds most of [start_ms, end_ms)."""
    a, b = start_ms * 16, end_ms * 16
    held: dict[str, int] = {}
    for ta, tb, who in truth:
        held[who] = held.get(who, 0) + max(0, min(b, tb) - max(a, ta))
    return max(held, key=lambda w: held[w])


def agreement(labels: Sequence[int], voices: Sequence[str]) -> float:
    """The share of segments whose label is their voice's, under the best one-to-one mapping of
    labels to voices (a voice split over two labels counts the smaller part as wrong)."""
    import itertools

    names = sorted(set(voices))
    ids = sorted(set(labels))
    best = 0
    for perm in itertools.permutations(ids, min(len(ids), len(names))):
        m = dict(zip(perm, names, strict=False))
        best = max(best, sum(m.get(label) == v for label, v in zip(labels, voices, strict=True)))
    return best / len(voices)


def phrase_contexts(segments: Sequence, others: int = 4) -> list[tuple[str, np.ndarray, tuple[int, int]]]:
    """Clean speech after what made RNNoise alone erase it (issue 91): each of jfk.flac's four
    phrases alone, after 1 s of near-silence (white noise at -60 dBFS), after 1 s of digital
    silence, and right after each of silero_test.wav's first ``others`` speech regions (another
    voice), 0.25 s of silence after it. ``segments``: the VAD's segments of each file ((jfk's,
    silero_test's)). Returns (name, clip, the phrase's (start, end) samples)."""
    jfk, sil = segments
    hush = (white(RATE, seed=1) * 10 ** (-60 / 20)).astype(np.float32)
    before = [("alone", np.zeros(0, np.float32)), ("near-silence", hush), ("silence", np.zeros(RATE, np.float32))]
    before += [(f"voice-{j}", sil[j].samples) for j in range(others)]
    out = []
    for i, phrase in enumerate(jfk):
        for name, pre in before:
            clip = np.concatenate([pre, phrase.samples, np.zeros(RATE // 4, np.float32)]).astype(np.float32)
            out.append((f"phrase {i} {name}", clip, (len(pre), len(pre) + len(phrase.samples))))
    return out


def alternating(segments: Sequence, gap_s: float = 0.75) -> tuple[np.ndarray, list[tuple[int, int, str]]]:
    """A clean two-voice mix (issue 91): silero_test.wav's first four speech regions (voice B), each
    followed by jfk.flac's phrase of the same index (voice A), ``gap_s`` of digital silence before,
    between and after. RNNoise alone took two of jfk's phrases 15-17 dB down here. ``segments``: as
    ``phrase_contexts``'. Returns the clip and its truth, (start sample, end sample, voice)."""
    jfk, sil = segments
    gap = np.zeros(round(gap_s * RATE), np.float32)
    parts, truth, pos = [gap], [], len(gap)
    for i in range(4):
        for who, x in (("B", sil[i].samples), ("A", jfk[i].samples)):
            parts += [x, gap]
            truth.append((pos, pos + len(x), who))
            pos += len(x) + len(gap)
    return np.concatenate(parts).astype(np.float32), truth


def level_db(out: np.ndarray, dry: np.ndarray) -> float:
    """``out``'s level relative to ``dry``'s (mean powers, dB; -inf when ``out`` is silent)."""
    p_out, p_dry = float(np.mean(np.square(out, dtype=np.float64))), float(np.mean(np.square(dry, dtype=np.float64)))
    return 10 * float(np.log10(p_out / p_dry)) if p_out > 0 else float("-inf")
