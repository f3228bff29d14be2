"""SeamlessM4T's input features, every frame at once: the log-mel filterbank of
``SeamlessM4TFeatureExtractor`` as a few large tensor operations on any device.

The extractor (transformers' ``feature_extraction_seamless_m4t.py``, through
``audio_utils.spectrogram``) loops in Python over 10 ms frames, one ``rfft`` and one ``mean``
each, holding the GIL all along: about 4 ms of CPU a second of audio in the engine's process.
``Fbank`` computes the same thing for a batch of segments at once:

1. the samples scaled to 16-bit range (``* 2**15``, Kaldi's convention) and cut into 25 ms frames
   every 10 ms (``unfold``: a view, no copy), the trailing samples that fill no whole frame unused;
2. per frame, its mean removed (``remove_dc_offset``), pre-emphasis 0.97 (the first sample
   scaled by 0.03), the symmetric Povey window (``hann ** 0.85``); no dither (the extractor
   passes none);
3. one batched ``rfft`` of 512 points, the power spectrum, the extractor's own Kaldi mel
   filterbank (80 filters, 20 Hz to 8 kHz) as one matrix product, floored at float32's epsilon,
   natural log;
4. per segment and mel bin, zero mean and unit variance over the segment's own frames
   (variance with ``ddof=1``, plus 1e-7, as the extractor does);
5. frames stacked in pairs into 160-dim features; an odd count padded with one zero frame,
   which the mask (one flag per stacked frame: its second frame is real) leaves out.

Steps 1-3 run in float64 and keep the extractor's one rounding on the way (it stores the spectrum
as complex64): the log energies are then the extractor's bit for bit on a CPU (a float32 FFT
would lose the weak bins of a speech spectrum: 5e-3 apart after normalisation on the shared
speech). The window and the filterbank are the extractor's own arrays.

Two callers:

- ``features`` (the engine's features thread, one segment: the CPU plan's path) normalises as
  the extractor does, in numpy float32 on an array laid out as its, so its features are the
  extractor's bit for bit on a CPU (tests/model/stages/test_fbank.py), and the parity tests'
  references (``generate`` on the extractor's features, in float32 and bfloat16) are unchanged.
  Its large tensor operations release the GIL, which the engine's other threads share; the
  numpy normalisation is a few calls on (frames, 80).
- ``__call__`` (a batch of padded audio, on the device: the CUDA plan's encoder,
  model/stages/encoders.py) normalises each row over its own frames, masked by its frame count
  (a tensor), in float64: within the extractor's float32 rounding, not bit for bit. Nothing reads
  the device on the host and the shapes follow from the inputs' alone, so it runs inside the
  encoder's captured graph.

Thread safety: ``Fbank`` holds only constant tensors; any thread may call it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from translate_svc.model_api.requests import Features
from translate_svc.types import MODEL_SAMPLE_RATE

#: a frame's samples (25 ms), the hop between frames (10 ms) and the FFT's points
FRAME, HOP, FFT = 400, 160, 512
PREEMPHASIS = 0.97
#: the extractor's floor of the mel energies (float32's epsilon) before the log
MEL_FLOOR = 1.192092955078125e-07
#: added to each bin's variance before the square root
VARIANCE_FLOOR = 1e-7
#: samples to 16-bit range (Kaldi's convention, as the extractor scales them)
SCALE = 2.0**15


def frame_count(samples: int) -> int:
    """The extractor's 25 ms frames in ``samples`` (0 below one frame)."""
    return 0 if samples < FRAME else 1 + (samples - FRAME) // HOP


def frames_samples(frames: int) -> int:
    """The samples that ``frames`` frames read (the rest of a segment is unused)."""
    return FRAME + HOP * (frames - 1)


class Fbank:
    """The extractor's features for batches of padded audio (see the module docstring)."""

    def __init__(self, extractor: Any, device: torch.device) -> None:
        """``extractor``: the checkpoint's ``SeamlessM4TFeatureExtractor`` (its window, filterbank
        and stride are used as they are; its settings must be the ones this computes)."""
        window, filters = np.asarray(extractor.window), np.asarray(extractor.mel_filters)
        self.stride, rate = int(extractor.stride), int(extractor.sampling_rate)
        if window.shape != (FRAME,) or filters.shape[0] != FFT // 2 + 1 or rate != MODEL_SAMPLE_RATE:
            raise ValueError(
                f"a feature extractor with a {window.shape} window, {filters.shape} mel filters at {rate} Hz: "
                f"expected SeamlessM4T's ({FRAME},) window and ({FFT // 2 + 1}, mels) filters at {MODEL_SAMPLE_RATE} Hz"
            )
        self.mels = int(filters.shape[1])
        self.device = device
        #: the window times the 16-bit scale (exact: a power of two), and each frame mean's share
        #: of a pre-emphasised, windowed sample (0.97 of it cancels but on the first sample)
        self._window = torch.tensor(window * SCALE, dtype=torch.float64, device=device)
        self._dc = -(1 - PREEMPHASIS) * self._window
        #: (mels, bins): the energies of each frame's bins to its mels, as the extractor multiplies
        self._filters = torch.tensor(filters.T, dtype=torch.float64, device=device)

    @property
    def dim(self) -> int:
        """A stacked frame's features (160)."""
        return self.mels * self.stride

    def log_mel(self, audio: Tensor) -> Tensor:
        """Steps 1-3 (module docstring) on ``audio`` (rows, samples) float32: (rows, mels, frames)
        float32, the extractor's own values (on a CPU, bit for bit: its spectrum's complex64
        rounding is kept)."""
        x = audio.to(torch.float64)
        framed = x.unfold(-1, FRAME, HOP)  # (rows, width, FRAME): a view
        rows, width = framed.shape[0], framed.shape[1]
        # pre-emphasis of the frame less its mean, windowed and scaled (``_window``, ``_dc``): each
        # sample less 0.97 times the one before, the first times 0.03, the mean's share taken
        # after; written into the FFT's zero-padded buffer
        padded = x.new_zeros(rows, width, FFT)
        frame = padded[..., :FRAME]
        torch.sub(framed[..., 1:], framed[..., :-1], alpha=PREEMPHASIS, out=frame[..., 1:])
        torch.mul(framed[..., 0], 1 - PREEMPHASIS, out=frame[..., 0])
        frame.mul_(self._window).addcmul_(framed.mean(-1, keepdim=True), self._dc)
        spectrum = torch.fft.rfft(padded).to(torch.complex64).to(torch.complex128)
        mel = torch.matmul(self._filters, spectrum.abs().square_().transpose(-1, -2))  # (rows, mels, width)
        return mel.clamp_min_(MEL_FLOOR).log_().float()

    def __call__(self, audio: Tensor, frames: Tensor) -> Tensor:
        """Features of a batch: ``audio`` (rows, samples) float32 at 16 kHz on this fbank's
        device; ``frames`` (rows,) each row's own frame count (``frame_count`` of its samples,
        at least 1, at most the width's). Returns (rows, stacked frames, ``dim``) float32, each
        row the extractor's features of its own samples (within float32 rounding: the
        normalisation is in float64, masked by ``frames``), zero past them. Reads nothing on the host."""
        logmel = self.log_mel(audio).double()
        rows, width = logmel.shape[0], logmel.shape[2]
        valid = (torch.arange(width, device=logmel.device) < frames.unsqueeze(1)).unsqueeze(1).double()
        count = valid.sum(-1, keepdim=True)  # (rows, 1, 1): each row's own frames
        centred = logmel.sub_((logmel * valid).sum(-1, keepdim=True) / count).mul_(valid)
        variance = centred.square().sum(-1, keepdim=True) / (count - 1)
        normed = centred.div_(variance.add_(VARIANCE_FLOOR).sqrt_()).float().transpose(1, 2)
        if width % self.stride:  # the extractor pads to a whole stacked frame with zeros
            normed = torch.nn.functional.pad(normed, (0, 0, 0, self.stride - width % self.stride))
        return normed.reshape(rows, -1, self.dim)

    def stacked(self, frames: int) -> int:
        """Stacked frames of a segment of ``frames`` frames (an odd count padded by one)."""
        return -(-frames // self.stride)

    def masked(self, frames: int) -> int:
        """Stacked frames the mask keeps: those whose last frame is a real one."""
        return frames // self.stride

    def features(self, audio: np.ndarray) -> Features:
        """One segment's features on the host, as the extractor returns them (values and mask):
        the log energies (``log_mel``) in tensor operations, then the extractor's own normalisation
        in numpy, on an array laid out as its (so summed in the same order): on a CPU, its features
        bit for bit. Raises ``ValueError`` below one 25 ms frame."""
        n = self.checked_frames(len(audio))
        one = torch.from_numpy(np.ascontiguousarray(audio[: frames_samples(n)], dtype=np.float32))
        with torch.inference_mode():
            logmel = self.log_mel(one.unsqueeze(0).to(self.device))[0].cpu().numpy()
        return self.normalised(logmel)

    def normalised(self, logmel: np.ndarray) -> Features:
        """``features``' numpy part (the part that holds the GIL, with the calls' own Python): one
        segment's log energies (mels, frames), normalised and stacked as the extractor does."""
        n = logmel.shape[1]
        x = logmel.T  # (frames, mels), laid out as the extractor's
        # feature_extraction_seamless_m4t.py: per mel bin, zero mean and unit variance (ddof=1)
        x = (x - np.expand_dims(x.mean(0), 0)) / np.sqrt(np.expand_dims(x.var(0, ddof=1), 0) + VARIANCE_FLOOR)
        stacked = np.zeros((self.stacked(n) * self.stride, self.mels), dtype=np.float32)
        stacked[:n] = x
        mask = np.zeros(self.stacked(n), dtype=np.int32)
        mask[: self.masked(n)] = 1
        return Features(values=stacked.reshape(-1, self.dim), mask=mask)

    @staticmethod
    def checked_frames(samples: int) -> int:
        """``frame_count(samples)``, or ``ValueError`` when it is 0 (no features to compute)."""
        n = frame_count(samples)
        if n < 1:
            raise ValueError(
                f"a segment of {samples} samples has no 25 ms frame: speech input needs at least {FRAME} samples"
            )
        return n
