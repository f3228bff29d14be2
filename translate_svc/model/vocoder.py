"""Batched HiFi-GAN vocoding that gives each row exactly what it gets alone.

``SeamlessM4Tv2CodeHifiGan`` on a padded batch lets padding leak into real audio: its duration
predictor's convolutions read the pad units next to a row's last units, and every HiFi-GAN
convolution reads the (non-zero) frames past a row's end, where alone it would read zero padding.
``MaskedVocoder`` fixes both with hooks, without touching the weights or the forward code:

- the duration predictor gets the unit padding mask (its own ``padding_mask`` argument, which
  zeroes padded positions before each of its convolutions);
- HiFi-GAN's input and every convolution's output are zeroed past the row's valid length at that
  resolution (frames of the real units, then the transposed-convolution length formula per
  upsampling stage).

On CPU the runner also pads a call's units and frames up to length buckets (``bucket``,
model/shapes.py) so convolution shapes repeat; the same masks make that padding invisible.

Zero past the end is what a row alone sees as padding, so each row's samples match the
single-row call (the runner's parity tests check it against ``generate``); a row's waveform is
then cut to its own length. Not thread-safe: the model thread only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch


class MaskedVocoder:
    """``batched=False`` runs one plain call per row (the CPU default: HiFi-GAN's cost there is
    per output sample, so batching only adds padding and masking); ``batched=True`` groups rows
    (the CUDA default: it saves a kernel-launch sequence per row)."""

    def __init__(
        self, vocoder: Any, *, batched: bool, pad_id: int = 0, bucket: Callable[[int], int] | None = None
    ) -> None:  # SeamlessM4Tv2CodeHifiGan
        self.vocoder = vocoder
        self.batched = batched
        self.pad_id = pad_id  # the unit id the runner pads rows with (any embeddable id: it is masked)
        #: when set, units and frames are zero-padded (and masked) up to ``bucket(length)`` so
        #: that shapes repeat (model/shapes.py); None: padded only to the group's longest row
        self.bucket = bucket
        #: a group's rows x longest may be at most this times its real size
        self.max_padding = 1.25
        hg = vocoder.hifi_gan
        self._upsample = [(int(u.stride[0]), int(u.padding[0]), int(u.kernel_size[0])) for u in hg.upsampler]
        #: HiFi-GAN's (stride, padding, kernel) per upsampling stage: samples per frame
        self.stages: tuple[tuple[int, int, int], ...] = tuple(self._upsample)
        self._unit_mask: torch.Tensor | None = None
        self._stage_lengths: list[torch.Tensor] | None = None
        #: the call's (padded) units, and each row's output length as the vocoder alone reports it
        self._units: torch.Tensor | None = None
        self._reported: torch.Tensor | None = None
        #: per upsampling stage, a (rows, 1, time) 0/1 mask of valid samples, built on first use
        self._stage_masks: dict[int, torch.Tensor] = {}
        #: the last call's frames per unit (the vocoder's rounding), and per row of the last
        #: ``__call__`` its own units' frames: word timings (model/timings.py) read them
        self._frames: torch.Tensor | None = None
        self.last_frames: list[np.ndarray] = []

        # duration predictor: give it the padding mask; then derive every stage's valid length
        vocoder.dur_predictor.register_forward_pre_hook(self._dur_mask, with_kwargs=True)
        vocoder.dur_predictor.register_forward_hook(self._record_lengths)
        vocoder.dur_predictor.register_forward_hook(self._record_frames)
        hg.conv_pre.register_forward_pre_hook(self._mask_input)
        hg.conv_pre.register_forward_hook(self._masker(0))
        for i, up in enumerate(hg.upsampler):
            up.register_forward_hook(self._masker(i + 1))
            for j in range(hg.num_kernels):
                block = hg.resblocks[i * hg.num_kernels + j]
                for conv in (*block.convs1, *block.convs2):
                    conv.register_forward_hook(self._masker(i + 1))
        hg.conv_post.register_forward_hook(self._masker(len(self._upsample)))

    def __call__(
        self,
        units: torch.Tensor,
        unit_lens: Sequence[int],
        lang_ids: Sequence[int],
        speakers: Sequence[int],
    ) -> list[np.ndarray]:
        """``units``: (rows, T) unit ids (padded with the pad id); returns one waveform per row.

        Batched, rows are grouped by length so that a group's padded size stays within
        ``max_padding`` of its real size (HiFi-GAN's cost is per output sample, padding included); one call per group.
        """
        out: list[np.ndarray] = [np.zeros(0, np.float32)] * len(unit_lens)
        self.last_frames = [np.zeros(0, np.int64)] * len(unit_lens)
        groups = _length_groups(unit_lens, self.max_padding) if self.batched else [[r] for r in range(len(unit_lens))]
        for group in groups:
            idx = torch.tensor(group, device=units.device)
            waves = self._run(
                units.index_select(0, idx),
                [unit_lens[r] for r in group],
                [lang_ids[r] for r in group],
                [speakers[r] for r in group],
            )
            frames = self._frames.cpu().numpy() if self._frames is not None else None
            self._frames = None
            for n, (r, w) in enumerate(zip(group, waves, strict=True)):
                out[r] = w
                if frames is not None:
                    self.last_frames[r] = frames[n, : unit_lens[r]].copy()
        return out

    def _run(
        self, units: torch.Tensor, unit_lens: Sequence[int], lang_ids: Sequence[int], speakers: Sequence[int]
    ) -> list[np.ndarray]:
        device = units.device
        lens = torch.tensor(list(unit_lens), device=device)
        longest = int(lens.max())
        if self.bucket is None:
            units = units[:, :longest]
        else:
            width = self.bucket(longest)
            if width > units.shape[1]:
                units = torch.nn.functional.pad(units, (0, width - units.shape[1]), value=self.pad_id)
            units = units[:, :width]
        if len(unit_lens) > 1 or self.bucket is not None:  # one unpadded row is exactly the plain call
            self._unit_mask = torch.arange(units.shape[1], device=device)[None, :] < lens[:, None]
            self._units = units
        try:
            wav, lengths = self.vocoder(
                input_ids=units,
                speaker_id=torch.tensor([[s] for s in speakers], device=device),
                lang_id=torch.tensor([[lang] for lang in lang_ids], device=device),
            )
            reported = self._reported
            out_lens = reported.tolist() if reported is not None else lengths.reshape(-1).tolist()
        finally:
            self._unit_mask = None
            self._units = None
            self._reported = None
            self._stage_lengths = None
            self._stage_masks = {}
        return [wav[r, : max(0, int(n)) if unit_lens[r] else 0].float().cpu().numpy() for r, n in enumerate(out_lens)]

    # -- hooks --------------------------------------------------------------------------------

    def _dur_mask(self, module, args, kwargs):  # type: ignore[no-untyped-def]
        if self._unit_mask is None:
            return None
        return args, {**kwargs, "padding_mask": self._unit_mask}

    def _record_frames(self, module, args, log_dur):  # type: ignore[no-untyped-def]
        """Every call's frames per unit, rounded as ``SeamlessM4Tv2CodeHifiGan.forward`` does."""
        self._frames = torch.clamp(torch.round(torch.expm1(log_dur)).long(), min=1)
        return None

    def _record_lengths(self, module, args, log_dur):  # type: ignore[no-untyped-def]
        if self._unit_mask is None:
            return None
        # the vocoder's own rounding of durations, summed over each row's real units
        dur = torch.clamp(torch.round(torch.expm1(log_dur)).long(), min=1) * self._unit_mask
        frames = dur.sum(1)
        self._stage_lengths = self._upsampled(frames)
        # The length the vocoder reports for a row alone (``_get_dur_output_lengths``), which its
        # waveform is cut to: the durations summed up to index min(non-pad units, units - 1). A
        # row whose units hold the pad id (t2u writes it for an EOS or a unit equal to the pad
        # after the offset) is cut short of its frames by that count. The masks above keep every
        # real frame (alone the convolutions read them); only the cut follows the vocoder's count.
        assert self._units is not None
        own = self._unit_mask.sum(1)
        counted = ((self._units != self.pad_id) & self._unit_mask).sum(1)
        index = torch.minimum(counted, own - 1).clamp(min=0)
        cut = dur.cumsum(1).gather(1, index[:, None]).squeeze(1)
        self._reported = self._upsampled(cut)[-1]
        return None

    def _upsampled(self, frames: torch.Tensor) -> list[torch.Tensor]:
        """Valid lengths at every stage from HiFi-GAN's input frames (transposed-convolution lengths)."""
        lengths = [frames]
        for stride, pad, kernel in self._upsample:
            lengths.append((lengths[-1] - 1) * stride - 2 * pad + kernel)
        return lengths

    def _mask_input(self, module, args):  # type: ignore[no-untyped-def]
        if self._stage_lengths is None:
            return None
        x = args[0]
        if self.bucket is not None:  # frames (units x durations) vary too: pad them to a bucket
            x = torch.nn.functional.pad(x, (0, self.bucket(x.shape[-1]) - x.shape[-1]))
        return (x * self._mask(0, x), *args[1:])

    def _masker(self, stage: int):  # type: ignore[no-untyped-def]
        def hook(module, args, out):  # type: ignore[no-untyped-def]
            if self._stage_lengths is None:
                return None
            return out.mul_(self._mask(stage, out))  # the convolution's own fresh output

        return hook

    def _mask(self, stage: int, x: torch.Tensor) -> torch.Tensor:
        """The stage's valid-sample mask for ``x`` (rows, channels, time): one per stage and call,
        since every convolution of a stage keeps its length."""
        mask = self._stage_masks.get(stage)
        if mask is None or mask.shape[-1] != x.shape[-1]:
            assert self._stage_lengths is not None
            t = torch.arange(x.shape[-1], device=x.device)
            mask = (t[None, :] < self._stage_lengths[stage].to(x.device)[:, None])[:, None, :].to(x.dtype)
            self._stage_masks[stage] = mask
        return mask


def _length_groups(lengths: Sequence[int], max_padding: float) -> list[list[int]]:
    """Row indices grouped in length order; each group's rows x longest <= max_padding x its sum."""
    groups: list[list[int]] = []
    cur: list[int] = []
    total = 0
    for r in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        n = lengths[r]
        if cur and (len(cur) + 1) * n > max_padding * (total + n):
            groups.append(cur)
            cur, total = [], 0
        cur.append(r)
        total += n
    if cur:
        groups.append(cur)
    return groups
