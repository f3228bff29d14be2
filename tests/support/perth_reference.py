"""The resemble-perth wheel's own watermarker, run as a reference for ``translate_svc.marking``.

Its Python imports torchaudio (not installable beside torch 2.13) for three modules and
``pkg_resources`` (gone from setuptools) for one path; this process stands them in before importing
it: ``Spectrogram`` / ``InverseSpectrogram`` as the ``torch.stft`` / ``torch.istft`` calls torchaudio
makes with the wheel's arguments (``power=None``, ``normalized=False``: centred, reflected edges,
one-sided, complex), ``TimeStretch`` as its buffer only (the wheel uses it in training only), and
``resource_filename`` as the installed package's folder. Everything else (the encoder, the decoder,
the magnitude/phase split and its normalisation, the watermarker's signal path) is the wheel's.

Run in its own process, so that the stand-ins never reach the tests' modules:

    python -m tests.support.perth_reference IN.npy OUT.npz   # IN: 32 kHz float32 mono

OUT holds ``marked`` (``apply_watermark``), ``marked_score`` and ``clean_score`` (``get_watermark``
unrounded).
"""

from __future__ import annotations

import importlib.util
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch


class _Spectrogram(torch.nn.Module):
    def __init__(
        self, n_fft: int, win_length: int, hop_length: int, window_fn: Callable[[int], torch.Tensor], **_: Any
    ) -> None:
        super().__init__()
        self.n_fft, self.win_length, self.hop_length = n_fft, win_length, hop_length
        self.register_buffer("window", window_fn(win_length))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stft(
            x,
            self.n_fft,
            self.hop_length,
            self.win_length,
            cast(torch.Tensor, self.window),
            center=True,
            pad_mode="reflect",
            normalized=False,
            onesided=True,
            return_complex=True,
        )


class _InverseSpectrogram(_Spectrogram):
    def forward(self, x: torch.Tensor, length: int | None = None) -> torch.Tensor:
        return torch.istft(
            x,
            self.n_fft,
            self.hop_length,
            self.win_length,
            cast(torch.Tensor, self.window),
            center=True,
            normalized=False,
            onesided=True,
            length=length,
        )


class _TimeStretch(torch.nn.Module):
    def __init__(self, n_freq: int, hop_length: int) -> None:
        super().__init__()
        self.register_buffer("phase_advance", torch.zeros(n_freq, 1))


def reference_watermarker() -> Any:
    """The wheel's ``PerthImplicitWatermarker`` (its pretrained ``implicit`` run), CPU."""
    transforms = types.ModuleType("torchaudio.transforms")
    transforms.Spectrogram = _Spectrogram  # type: ignore[attr-defined]
    transforms.InverseSpectrogram = _InverseSpectrogram  # type: ignore[attr-defined]
    transforms.TimeStretch = _TimeStretch  # type: ignore[attr-defined]
    torchaudio = types.ModuleType("torchaudio")
    torchaudio.transforms = transforms  # type: ignore[attr-defined]
    spec = importlib.util.find_spec("perth")
    assert spec is not None and spec.submodule_search_locations
    root = Path(next(iter(spec.submodule_search_locations)))
    resources = types.ModuleType("pkg_resources")
    resources.resource_filename = lambda _module, name: str(root / "perth_net" / name)  # type: ignore[attr-defined]
    sys.modules.update({"torchaudio": torchaudio, "torchaudio.transforms": transforms, "pkg_resources": resources})
    from perth.perth_net.perth_net_implicit.perth_watermarker import PerthImplicitWatermarker

    return PerthImplicitWatermarker()


def main(source: Path, target: Path) -> None:
    clean = np.load(source)
    reference = reference_watermarker()
    marked = reference.apply_watermark(clean, 32000)
    np.savez(
        target,
        marked=marked,
        marked_score=reference.get_watermark(marked, 32000, round=False),
        clean_score=reference.get_watermark(clean, 32000, round=False),
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
