"""The PerTh implicit watermarking network, with the trained weights the ``resemble-perth`` wheel
ships (MIT), run by our own modules.

The wheel's own Python needs torchaudio and librosa, which this project does not install, so only
its files are read: ``perth/perth_net/pretrained/implicit/perth_net_250000.pth.tar`` (found with
``importlib.util.find_spec`` without importing the package) through ``torch.load(weights_only=True)``,
which runs no code from the file.

What the network sees is a log-magnitude spectrogram of 32 kHz audio (``SpectrumParams``: 2048-point
STFT, 2048-sample periodic Hann window, hop 320, centred with reflected edges), each bin's magnitude
in dB (floored at 1e-9, -180 dB) scaled so that -180 dB is 0 and +15 dB is 1. Only the low sub-band
carries the mark: the first 128 of 1025 bins (up to 2 kHz), which are the convolutions' channels,
time their axis.

- ``Encoder``: seven 1-D convolutions over time (a 1x1 into 256 channels, five of width 7, a 1x1
  back to 128, leaky ReLUs between) give a residual that is added to the sub-band, on the frames
  that carry sound only (``active_frames``). The phase is left as it was.
- ``Decoder``: three such stacks (ending in two channels: a weight and a mark score per frame) read
  the sub-band at 1.25x, 1x and 0.75x its frame rate (linear interpolation in time); each branch's
  two channels are averaged over the active frames, a softmax over the three weights mixes the
  three branches' scores into one presence score per clip, about 1 for marked audio and 0 otherwise.

Module names and shapes follow the checkpoint's keys, so ``load_state_dict(strict=True)`` checks the
architecture. Thread safety: a loaded ``PerthNetwork`` is only read (``eval()``, no grad); any
number of threads may run it at once under ``torch.inference_mode()``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)

#: the wheel whose trained weights are used (its Python is not imported)
PERTH_WHEEL = "resemble-perth==1.0.1"
CHECKPOINT = Path("perth_net") / "pretrained" / "implicit" / "perth_net_250000.pth.tar"
#: the sha256 of that checkpoint as ``PERTH_WHEEL`` ships it: the bytes loaded are the bytes tested
CHECKPOINT_SHA256 = "a15bce457ebc53ce5e6c9c3f11df78cf7ee2bf9cdab0a798902135b4c4027670"
#: checkpoint entries of the wheel's STFT modules (its windows, and an unused time-stretch table)
_SPECTRUM_KEYS = ("ap.spectrogram.window", "ap.inv_spectrogram.window", "ap.stretch.phase_advance")


@dataclass(frozen=True)
class SpectrumParams:
    """The spectrogram the network was trained on (the hyper-parameters file beside the wheel's checkpoint)."""

    sample_rate: int = 32_000
    n_fft: int = 2048
    hop: int = 320
    window: int = 2048
    magnitude_floor: float = 1e-9
    headroom_db: float = 15.0
    max_mark_hz: float = 2000.0
    hidden: int = 256

    @property
    def bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def subband(self) -> int:
        """Bins below ``max_mark_hz``: 128 (the network's input channels)."""
        return round(self.bins * self.max_mark_hz / (self.sample_rate / 2))

    @property
    def floor_db(self) -> float:
        return 20.0 * math.log10(self.magnitude_floor)

    @property
    def db_span(self) -> float:
        """dB from the floor to the headroom: 195 (one unit of the normalised scale)."""
        return self.headroom_db - self.floor_db


PARAMS = SpectrumParams()


class PerthMissing(RuntimeError):
    """The resemble-perth wheel or its checkpoint is not installed (raised when the model loads)."""


class PerthChanged(PerthMissing):
    """The installed checkpoint is not the one ``PERTH_WHEEL`` ships (its sha256 differs): as good
    as none."""


def checkpoint_path() -> Path:
    spec = importlib.util.find_spec("perth")
    if spec is None or not spec.submodule_search_locations:
        raise PerthMissing(f"the resemble-perth package is not installed: pip install {PERTH_WHEEL}")
    path = Path(next(iter(spec.submodule_search_locations))) / CHECKPOINT
    if not path.is_file():
        raise PerthMissing(f"resemble-perth is installed but {path} is missing: pip install {PERTH_WHEEL}")
    return path


def active_frames(normalised: torch.Tensor, share: float = 0.05) -> torch.Tensor:
    """(B, F, T) normalised magnitudes -> (B, 1, T) 1.0 where a frame's summed level is over
    ``share`` of the clip's loudest frame: where the mark is written and read (digital silence is 0)."""
    level = normalised.sum(dim=1)
    bar = level.amax(dim=1, keepdim=True) * share
    return (level > bar).to(normalised.dtype)[:, None]


class _Conv(nn.Module):
    """A 1-D convolution over frames keeping their count, then a leaky ReLU unless ``last``."""

    def __init__(self, channels_in: int, channels_out: int, width: int, last: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels_in, channels_out, width, padding=(width - 1) // 2)
        self.act: nn.Module = nn.Identity() if last else nn.LeakyReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.act(self.conv(x))
        return out


def _stack(channels_in: int, hidden: int, channels_out: int) -> nn.Sequential:
    return nn.Sequential(
        _Conv(channels_in, hidden, 1),
        *(_Conv(hidden, hidden, 7) for _ in range(5)),
        _Conv(hidden, channels_out, 1, last=True),
    )


class Encoder(nn.Module):
    """Adds the mark to a normalised magnitude spectrogram's sub-band (see the module's docstring)."""

    def __init__(self, params: SpectrumParams = PARAMS) -> None:
        super().__init__()
        self.subband = params.subband
        self.layers = _stack(self.subband, params.hidden, self.subband)

    def forward(self, normalised: torch.Tensor) -> torch.Tensor:
        """(B, F, T) -> the residual to add to its first ``subband`` bins, (B, subband, T), zero on
        frames without sound."""
        residual: torch.Tensor = self.layers(normalised[:, : self.subband]) * active_frames(normalised)
        return residual


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, C, T) averaged over the mask's frames, (B, C); 0 where the mask is empty (silence)."""
    return (x * mask).sum(dim=2) / mask.sum(dim=2).clamp(min=1.0)


class Decoder(nn.Module):
    """Reads the mark's presence from a normalised magnitude spectrogram (see the module's docstring)."""

    #: the branches' frame rates relative to the input's, in the checkpoint's order of names
    RATES = (("slow_layers", 1.25), ("normal_layers", 1.0), ("fast_layers", 0.75))

    def __init__(self, params: SpectrumParams = PARAMS) -> None:
        super().__init__()
        self.subband = params.subband
        self.slow_layers = _stack(self.subband, params.hidden, 2)
        self.normal_layers = _stack(self.subband, params.hidden, 2)
        self.fast_layers = _stack(self.subband, params.hidden, 2)

    def forward(self, normalised: torch.Tensor) -> torch.Tensor:
        """(B, F, T) -> (B,) presence scores, unclipped (about 0 unmarked, 1 marked)."""
        mask = active_frames(normalised)
        sub = normalised[:, : self.subband]
        frames = sub.shape[2]
        weights, scores = [], []
        for name, rate in self.RATES:
            x = sub if rate == 1.0 else F.interpolate(sub, size=int(frames * rate), mode="linear", align_corners=True)
            out = getattr(self, name)(x)  # (B, 2, T_branch): weight, score
            means = _masked_mean(out, F.interpolate(mask, size=out.shape[2], mode="nearest"))
            weights.append(means[:, 0])
            scores.append(means[:, 1])
        mix = torch.softmax(torch.stack(weights, dim=1), dim=1)  # (B, 3)
        score: torch.Tensor = (torch.stack(scores, dim=1) * mix).sum(dim=1)
        return score


class PerthNetwork(nn.Module):
    """The encoder and the decoder, named as in the checkpoint (``encoder.*``, ``decoder.*``)."""

    def __init__(self, params: SpectrumParams = PARAMS) -> None:
        super().__init__()
        self.params = params
        self.encoder = Encoder(params)
        self.decoder = Decoder(params)


def hann(params: SpectrumParams = PARAMS) -> torch.Tensor:
    """The STFT window: periodic Hann (torch's default), as the network was trained with."""
    return torch.hann_window(params.window, periodic=True, dtype=torch.float32)


def network_state(state: dict[str, torch.Tensor], params: SpectrumParams = PARAMS) -> dict[str, torch.Tensor]:
    """The checkpoint's ``model`` entries for ``PerthNetwork``: the wheel's STFT buffers are set
    aside after checking that its windows are ours (a different window would read another
    spectrogram); any other unknown entry is left for ``load_state_dict(strict=True)`` to refuse."""
    window = hann(params)
    for key in _SPECTRUM_KEYS[:2]:
        if key in state and not torch.allclose(stored := state[key].float(), window, atol=1e-6):
            off = (stored - window).abs() if stored.shape == window.shape else None
            said = (
                f"{tuple(stored.shape)} values"
                if off is None
                else f"off by {off.max().item():.3g} at {off.argmax().item()}"
            )
            raise ValueError(f"the checkpoint's {key} is not a {params.window}-sample periodic Hann window ({said})")
    return {k: v for k, v in state.items() if k not in _SPECTRUM_KEYS}


def verified_checkpoint() -> bytes:
    """The wheel's checkpoint file, its bytes checked against ``CHECKPOINT_SHA256``.

    A read whose bytes differ is read once more: the file is the same, so a second read that
    matches means the first one was damaged on its way (seen twice in about twenty test runs on
    shared 2-core machines, as one window value off by 7.6e-05; the weights beside it would have
    been damaged unseen), and is logged. Two reads that differ from the pin raise ``PerthChanged``."""
    path = checkpoint_path()
    digests: list[str] = []
    for _ in range(2):
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest == CHECKPOINT_SHA256:
            if digests:
                logger.warning(
                    "a read of %s gave other bytes (sha256 %s); read again, it is the pinned one", path, digests[0]
                )
            return data
        digests.append(digest)
    raise PerthChanged(
        f"{path} is not the checkpoint {PERTH_WHEEL} ships (sha256 {' then '.join(digests)}, "
        f"expected {CHECKPOINT_SHA256}): pip install --force-reinstall {PERTH_WHEEL}"
    )


def load_network(path: Path | None = None, params: SpectrumParams = PARAMS) -> tuple[PerthNetwork, int]:
    """The trained network (eval mode, no gradients) and its training step, from the wheel's
    checkpoint (``verified_checkpoint``) or ``path`` (read as it is). Raises ``PerthMissing``
    without the wheel, ``PerthChanged`` when its checkpoint is not the pinned one, and torch's
    RuntimeError when the checkpoint's entries do not match these modules one for one."""
    data = path.read_bytes() if path is not None else verified_checkpoint()
    checkpoint = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    network = PerthNetwork(params)
    network.load_state_dict(network_state(checkpoint["model"], params), strict=True)
    network.eval().requires_grad_(False)
    return network, int(checkpoint.get("step", 0))
