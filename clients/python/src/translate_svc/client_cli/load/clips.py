"""The audio each bench stream plays: one file as 16 kHz mono PCM16, cut or looped to the step's
length, and each further stream's copy rotated a little further in, so streams cut different
segments (identical copies repeat every tensor shape and flatter per-shape caches)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_RATE = 16000
#: how much further into the audio each further copy of a clip starts
DEFAULT_SHIFT_S = 1.37


def sample_path() -> Path:
    """The English sample the client distribution ships (``make demo`` translates it)."""
    # beside this package's modules (translate_svc/samples/ of clients/python): not
    # importlib.resources, which gives a MultiplexedPath for a namespace package that cannot be
    # joined to a file on every install
    return Path(__file__).resolve().parents[2] / "samples" / "demo_eng.wav"


@dataclass(frozen=True)
class Clip:
    name: str
    pcm: np.ndarray[Any, Any] = field(compare=False)  # 16 kHz mono int16

    @property
    def seconds(self) -> float:
        return len(self.pcm) / SAMPLE_RATE


def load_clip(path: Path) -> Clip:
    from translate_svc.client_cli.decode import load_pcm16k

    return Clip(path.name, load_pcm16k(path))


def fit_pcm(pcm: np.ndarray[Any, Any], samples: int) -> np.ndarray[Any, Any]:
    """``pcm`` cut, or looped, to ``samples`` (0 or less: as it is)."""
    if samples <= 0 or samples == len(pcm) or not len(pcm):
        return pcm
    return np.tile(pcm, math.ceil(samples / len(pcm)))[:samples]


def shift_samples(pcm_len: int, copy: int, shift_s: float) -> int:
    """Where the ``copy``-th copy of a clip of ``pcm_len`` samples starts (wrapping)."""
    return round(copy * shift_s * SAMPLE_RATE) % pcm_len if pcm_len else 0


def rotate_pcm(pcm: np.ndarray[Any, Any], shift: int) -> np.ndarray[Any, Any]:
    return pcm if shift == 0 else np.concatenate([pcm[shift:], pcm[:shift]])


def stream_clips(clip: Clip, n: int, seconds: float, shift_s: float = DEFAULT_SHIFT_S) -> list[Clip]:
    """``n`` streams' audio: stream i plays ``clip`` from ``i * shift_s`` in, for ``seconds``."""
    out = []
    for i in range(n):
        shift = shift_samples(len(clip.pcm), i, shift_s)
        pcm = fit_pcm(rotate_pcm(clip.pcm, shift), round(seconds * SAMPLE_RATE))
        out.append(Clip(f"{clip.name}@{shift / SAMPLE_RATE:.2f}s", pcm))
    return out
