"""The vocoder stage: our own forward of ``SeamlessM4Tv2CodeHifiGan``, batched, each row exactly
what it gets alone, returning each row's waveform and its frames per unit.

``SeamlessM4Tv2CodeHifiGan.forward`` on a padded batch lets padding leak into real audio: its
duration predictor's convolutions read the pad units next to a row's last units, and every HiFi-GAN
convolution reads the (non-zero) frames past a row's end, where alone it would read zero padding.
``MaskedVocoder.forward`` runs the same computation through the upstream submodules (the unit,
speaker and language embeddings, the duration predictor, the upsampling, HiFi-GAN's convolutions
and residual blocks), in the same order, with two additions:

- the duration predictor gets the unit padding mask (its own ``padding_mask`` argument, which
  zeroes padded positions before each of its convolutions);
- HiFi-GAN's input and every convolution's output are zeroed past the row's valid length at that
  resolution (frames of the real units, then the transposed-convolution length formula per
  upsampling stage).

On CPU the runner also pads a call's units and frames up to length buckets (``bucket``,
model/stages/shapes.py) so convolution shapes repeat; the same masks make that padding invisible.

Zero past the end is what a row alone sees as padding, so each row's samples match the
single-row call (the runner's parity tests check it against ``generate``); a row's waveform is
then cut to its own length. Everything a call learns (frames per unit, lengths) is returned, none
is kept (``Vocoded``): no hooks, no state between calls. Benchmark mode's forced durations are a
parameter (``unit_frames``). Not thread-safe (torch modules): the model thread only. Under
graphs HiFi-GAN's widths (one per graph key, guessed on the host, checked with the results' one
read) are ``hifigan_widths.py``'s.

**The speaking rate** (``ModelInput.speed``): each row's frames per unit are scaled by
its own rate before HiFi-GAN (``at_rate``, model/stages/rates.py): the durations' running sum
divided by the rate and rounded, its differences the new durations, so a row's frames are
``round(total / speed)`` (at least one), a unit may get none above rate 1, and rate 1 leaves the
tensor as it is. The pitch
is HiFi-GAN's per frame, so it does not change. The rates are a tensor input of the first part
(one per row, beside ``meta``), not part of a graph's key: rates never multiply the graphs. The
reported cut and the returned frames per unit follow the scaled durations, so word timings do.

**Speech fitted to a time** (``ModelInput.fit``: dubbing to the source's clock): a
fitted row's rate is chosen in the first part, on the device, from its natural frames (its
durations at rate 1) and its budget in whole frames (``frames_within``: the most frames whose
waveform fits the budget's samples): ``clamp(natural / budget, slowest, fastest)`` (``fitted``),
then scaled as any rate. So under ``fastest`` a row's frames are at most its budget, with no
second synthesis and no read of the device; the rate each row was made at comes back with the
waveforms' one read (``Vocoded.rates``). The budgets and bounds are a tensor input beside the
rates (a budget of 0: not fitted, the row's own rate), so fitted and plain rows share a graph.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from translate_svc.model.capture import GraphedStage, host_read, upload
from translate_svc.model.stages.hifigan_widths import FrameGuess, made, most_frames, results, to_width, unit_span
from translate_svc.model.stages.padding import hard_upsample, pad_rows
from translate_svc.model.stages.rates import at_rate, fitted
from translate_svc.model.stages.shapes import ShapeLog, bucket_rows
from translate_svc.model.stages.vocoder_groups import RowGroups
from translate_svc.model_api.requests import SpeechFit
from translate_svc.types import MODEL_SAMPLE_RATE


@dataclass(frozen=True, eq=False)
class Vocoded:
    """A vocoder call's result, per row of its input, in order."""

    #: each row's waveform (float32), cut to its own length
    waves: list[np.ndarray]
    #: each row's frames per unit (int64, one per unit of the row's own count), rounded as
    #: ``SeamlessM4Tv2CodeHifiGan.forward`` rounds (or benchmark mode's forced count), then scaled
    #: by the row's speaking rate (``at_rate``; 0 for a unit the rate skips): word timings
    #: (model/finish/timings.py) read them
    frames: list[np.ndarray]
    #: each row's speaking rate as made: its speed, or the one its fit chose (``fitted``)
    rates: list[float] = field(default_factory=list)


@dataclass(frozen=True, eq=False)
class _Started:
    """A group after the vocoder's first part: what its second part reads."""

    real: int  # the group's rows (the rest pad a row bucket)
    own: list[int]  # each real row's units
    #: the first part's outputs (``MaskedVocoder._first``); None: one unpadded row, the plain call
    parts: tuple[torch.Tensor, ...] | None
    units: torch.Tensor
    meta: torch.Tensor  # (3, rows): units, language, voice
    rate: torch.Tensor  # (rows,) float64: each row's speaking rate
    unit_frames: int | None
    #: (3, rows) float64: each row's budget in frames (0: not fitted), slowest, fastest (``fitted``)
    fit: torch.Tensor | None = None
    #: each real row's slowest rate it can be made at: its speed, or its fit's slowest
    slowest: tuple[float, ...] = ()

    @property
    def frames(self) -> torch.Tensor:
        """Each row's frames (the plain call: its units' count, an upper bound it never reads)."""
        if self.parts is None:
            return self.meta[0]
        return self.parts[4]


class MaskedVocoder:
    """``batched=False`` runs one plain call per row (the CPU default: HiFi-GAN's cost there is
    per output sample, so batching only adds padding and masking); ``batched=True`` groups rows
    (the CUDA default: it saves a kernel-launch sequence per row)."""

    def __init__(
        self,
        vocoder: Any,
        *,
        batched: bool,
        pad_id: int = 0,
        bucket: Callable[[int], int] | None = None,
        shapes: ShapeLog | None = None,
        unit_frames: int | None = None,
    ) -> None:  # SeamlessM4Tv2CodeHifiGan
        self.vocoder = vocoder
        #: where each group's shapes are recorded, stage ``vocoder``: (0, rows, units) for the
        #: embeddings and the duration predictor, (1, rows, frames) for HiFi-GAN (model/stages/shapes.py)
        self.shapes = shapes
        self.batched = batched
        self.pad_id = pad_id  # the unit id the runner pads rows with (any embeddable id: it is masked)
        #: when set, units and frames are zero-padded (and masked) up to ``bucket(length)`` so
        #: that shapes repeat (model/stages/shapes.py); None: padded only to the group's longest row
        self.bucket = bucket
        #: a group's rows x longest may be at most this times its real size
        self.max_padding = 1.25
        hg = vocoder.hifi_gan
        self._upsample = [(int(u.stride[0]), int(u.padding[0]), int(u.kernel_size[0])) for u in hg.upsampler]
        #: HiFi-GAN's (stride, padding, kernel) per upsampling stage: samples per frame
        self.stages: tuple[tuple[int, int, int], ...] = tuple(self._upsample)
        device = vocoder.unit_embedding.weight.device
        #: the two parts (``__call__``), each a graph per bucket on CUDA (model/capture.py)
        self.first = GraphedStage("vocoder.durations", self._first, device)
        self.second = GraphedStage("vocoder.hifigan", self._second, device)
        #: benchmark mode's frames per unit, which every call passes (the warm-up runs that variant)
        self.unit_frames = unit_frames
        #: HiFi-GAN's width guessed on the host under graphs (``FrameGuess``)
        self.guess = FrameGuess()
        #: how a call's rows are grouped, within the buckets the warm-up ran (``warm``)
        self.groups = RowGroups(self.bucket or (lambda n: n))

    def __call__(
        self,
        units: torch.Tensor,
        unit_lens: Sequence[int],
        lang_ids: Sequence[int],
        speakers: Sequence[int],
        *,
        unit_frames: int | None = None,
        speeds: Sequence[float] | None = None,
        fits: Sequence[SpeechFit | None] | None = None,
        max_rows: int | None = None,
    ) -> Vocoded:
        """``units``: (rows, T) unit ids (padded with the pad id), ``unit_lens`` each row's own
        count; one waveform and one frames-per-unit array per row. ``unit_frames``: every unit
        that many frames instead of the predicted durations (benchmark mode, model/stages/forced.py).
        ``speeds``: each row's speaking rate (``at_rate``); None: every row at 1. ``fits``: each
        row's time to fit its speech in (``fitted``; None, or a None row: its speed).
        ``max_rows``: the most rows a group may hold (a call with more rows than its batch's text
        rows, renditions, keeps to the row buckets and row-seconds the warm-up captured).

        Batched, rows are grouped by length so that a group's padded size stays within
        ``max_padding`` of its real size (HiFi-GAN's cost is per output sample, padding included;
        with buckets, a group's rows and lengths are then padded to their buckets). Each group
        runs in two parts (``forward``): its units' durations and frames, then HiFi-GAN at a width
        that depends on the predicted durations: read from the device (one read of every group's
        frames), or under graphs guessed on the host (``FrameGuess``: no read, a group that
        outgrew its guess made again after the results' read); then one read of every group's
        waveforms and durations. With buckets, each part is a captured graph per bucket on CUDA.
        """
        waves: list[np.ndarray] = [np.zeros(0, np.float32)] * len(unit_lens)
        frames: list[np.ndarray] = [np.zeros(0, np.int64)] * len(unit_lens)
        rates: list[float] = [1.0] * len(unit_lens)
        if self.batched:
            groups = self.groups.of(unit_lens, self.max_padding, max_rows)
        else:
            groups = [[r] for r in range(len(unit_lens))]
        guessing = self._guessing
        started = []
        for group in groups:
            picked = (
                units
                if group == list(range(units.shape[0]))
                else units.index_select(0, upload(group, torch.long, units.device))
            )
            started.append(
                self.durations(
                    picked,
                    [unit_lens[r] for r in group],
                    [lang_ids[r] for r in group],
                    [speakers[r] for r in group],
                    unit_frames=unit_frames,
                    speeds=None if speeds is None else [speeds[r] for r in group],
                    fits=None if fits is None else [fits[r] for r in group],
                )
            )
        if guessing:  # HiFi-GAN at a width guessed on the host, checked with the results
            widths = [self.guess.frames(d.own, d.slowest, d.unit_frames) for d in started]
        else:  # every group's frames per row: one read
            widths = [int(w.max()) for w in host_read([d.frames for d in started])]
        done = [self.hifigan(d, w) for d, w in zip(started, widths, strict=True)]
        # each row's waveform, cut, frames per unit and rate as made: one read
        host = results(done)
        if self._guessing:  # a group whose frames outgrew the guess is made again at its own
            short = [k for k, d in enumerate(started) if most_frames(host[k], d.own) > self._width(widths[k])]
            self.guess.saw([(f, r, n) for k, d in enumerate(started) for f, r, n in made(host[k], d.own)])
            if short:
                self.guess.missed(len(short))
                again = results([self.hifigan(started[k], most_frames(host[k], started[k].own)) for k in short])
                for k, got in zip(short, again, strict=True):
                    host[k] = got
        for k, group in enumerate(groups):
            wav, cut, dur, rate = host[k]
            own = started[k].own
            for n, r in enumerate(group):
                waves[r] = wav[n, : max(0, int(cut[n])) if own[n] else 0].copy()
                frames[r] = dur[n, : own[n]].copy()
                rates[r] = float(rate[n])
        return Vocoded(waves, frames, rates)

    @property
    def _guessing(self) -> bool:
        """HiFi-GAN's width guessed instead of read (``FrameGuess``): under graphs with buckets,
        where a read of the device drains the GPU's queue (on a CPU it costs nothing, and a guess
        too wide only costs HiFi-GAN arithmetic)."""
        return self.bucket is not None and self.batched and self.second.enabled

    def _width(self, frames: int) -> int:
        return frames if self.bucket is None else self.bucket(frames)

    def forward(
        self,
        units: torch.Tensor,
        unit_lens: Sequence[int],
        lang_ids: Sequence[int],
        speakers: Sequence[int],
        *,
        unit_frames: int | None = None,
        frame_width: int | None = None,
        speeds: Sequence[float] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One group: ``SeamlessM4Tv2CodeHifiGan.forward`` on ``units`` with each row masked past
        its own length (module docstring). Returns the waveforms (rows, samples, padded), each
        row's length as the vocoder alone reports it (what its waveform is cut to), and the frames
        per unit (rows, units of the call, padded ones included). ``frame_width``: HiFi-GAN's
        frames (the warm-up's); None: the group's widest, read from the device."""
        started = self.durations(units, unit_lens, lang_ids, speakers, unit_frames=unit_frames, speeds=speeds)
        if frame_width is None:
            frame_width = int(host_read([started.frames])[0].max())
        wav, cut, dur, _ = self.hifigan(started, frame_width)
        return wav, cut, dur

    def durations(
        self,
        units: torch.Tensor,
        unit_lens: Sequence[int],
        lang_ids: Sequence[int],
        speakers: Sequence[int],
        *,
        unit_frames: int | None = None,
        speeds: Sequence[float] | None = None,
        fits: Sequence[SpeechFit | None] | None = None,
    ) -> _Started:
        """A group's first part: its units' embeddings and durations and each row's frames. With
        ``bucket``, the rows are padded to a row bucket (copies of the first, cut off after) and
        the units to a length bucket. ``speeds``: each row's speaking rate (None: 1); ``fits``:
        each row's time to fit its speech in (``fitted``; None: its speed)."""
        real = len(unit_lens)
        rates = [1.0] * real if speeds is None else [float(s) for s in speeds]
        fitting = [self._fit_row(f) for f in (fits or [None] * real)]
        longest = max(unit_lens)
        if self.bucket is None:
            units = units[:, :longest]
        else:
            rows = bucket_rows(real) if real > 1 else 1
            width = self.bucket(longest)
            if width > units.shape[1]:
                units = torch.nn.functional.pad(units, (0, width - units.shape[1]), value=self.pad_id)
            units = pad_rows(units[:, :width], rows)
            unit_lens = [*unit_lens, *[unit_lens[0]] * (rows - real)]
            lang_ids = [*lang_ids, *[lang_ids[0]] * (rows - real)]
            speakers = [*speakers, *[speakers[0]] * (rows - real)]
            rates = [*rates, *[rates[0]] * (rows - real)]
            fitting = [*fitting, *[fitting[0]] * (rows - real)]
        if self.shapes is not None:
            self.shapes.saw("vocoder", (0, *units.shape))
        # each row's units, language and voice in one non-blocking copy
        meta = upload([list(unit_lens), list(lang_ids), list(speakers)], torch.long, units.device)
        # each row's rate, then its fit (budget in frames, 0: none; slowest; fastest), in one copy:
        # inputs of the graph, not parts of its key (any mix of rates and fits replays it)
        pace = upload([rates, *(list(c) for c in zip(*fitting, strict=True))], torch.float64, units.device)
        rate, fit = pace[0], pace[1:]
        slowest = tuple(f[1] if f[0] > 0 else r for r, f in zip(rates[:real], fitting[:real], strict=True))
        if self.bucket is None and len(unit_lens) == 1:  # one unpadded row: the upstream forward as it is
            return _Started(real, list(unit_lens[:real]), None, units, meta, rate, unit_frames, fit, slowest)
        key = (*units.shape, unit_frames) if self.bucket is not None else None
        parts = self.first(key, units, meta, rate, fit, unit_frames=unit_frames)
        return _Started(real, list(unit_lens[:real]), parts, units, meta, rate, unit_frames, fit, slowest)

    def _fit_row(self, fit: SpeechFit | None) -> tuple[float, float, float]:
        """A row's fit as the first part takes it: its budget in whole frames (at least one; 0:
        not fitted) and its bound."""
        if fit is None:
            return (0.0, 1.0, 1.0)
        return (float(self.frames_within(fit.budget_ms)), fit.slowest, fit.fastest)

    def frames_within(self, budget_ms: float) -> int:
        """The most frames whose waveform (HiFi-GAN's length for them: ``_upsampled``) lasts at
        most ``budget_ms``; at least one."""
        samples = int(budget_ms * MODEL_SAMPLE_RATE // 1000)
        one, two = (self._samples_of(n) for n in (1, 2))  # an affine length: per frame, and its offset
        return max(1, (samples - (one - (two - one))) // (two - one))

    def _samples_of(self, frames: int) -> int:
        n = frames
        for stride, pad, kernel in self._upsample:
            n = (n - 1) * stride - 2 * pad + kernel
        return n

    def hifigan(
        self, started: _Started, frame_width: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """A group's second part: HiFi-GAN over ``frame_width`` frames (a bucket of it, with
        ``bucket``). Returns the waveforms, each row's cut, its frames per unit and the rate it
        was made at (its real rows)."""
        real = started.real
        if started.parts is None:  # one unpadded row: the plain call, no mask
            return self._plain(started.units, started.meta, started.rate, started.unit_frames, started.fit)
        if self.bucket is not None:
            frame_width = self.bucket(frame_width)
        hidden, lang, spkr, dur, frames, cut, rate = started.parts
        if self.shapes is not None:
            self.shapes.saw("vocoder", (1, hidden.shape[0], frame_width))
        key: tuple[int, ...] | None = None
        if self.bucket is not None:
            key = (hidden.shape[0], hidden.shape[2], frame_width)
            span = unit_span(frame_width)
            if self.second.enabled and max(started.own) <= span:
                # under graphs the units are cut or padded to what the frames can hold, so that
                # the graph has one key per (rows, frames) bucket (``unit_span``); the cut drops
                # padding alone, and the padding is zero units of zero frames
                hidden, dur = to_width(hidden, span), to_width(dur, span)
                key = (hidden.shape[0], frame_width)
        wav, cut_samples = self.second(key, hidden, lang, spkr, dur, frames, cut, width=frame_width)
        return wav[:real], cut_samples[:real], dur[:real], rate[:real]

    def _first(
        self,
        units: torch.Tensor,
        meta: torch.Tensor,
        rate: torch.Tensor,
        fit: torch.Tensor | None = None,
        *,
        unit_frames: int | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The first part's static path: embeddings, the duration predictor (masked past each
        row's units), the durations rounded as upstream and scaled by each row's rate (its
        ``rate``, or its ``fit``'s choice: ``fitted``; ``at_rate``), each row's frames and its cut
        (module docstring), and the rate each row was made at. No read of the device."""
        voc = self.vocoder
        device = units.device
        lens, lang_ids, speakers = meta[0], meta[1], meta[2]
        unit_mask = torch.arange(units.shape[1], device=device)[None, :] < lens[:, None]
        hidden = voc.unit_embedding(units).transpose(1, 2)
        spkr = voc.speaker_embedding(speakers[:, None]).transpose(1, 2)
        lang = voc.language_embedding(lang_ids[:, None]).transpose(1, 2)
        log_dur = voc.dur_predictor(hidden.transpose(1, 2), padding_mask=unit_mask)
        durations = torch.clamp(torch.round(torch.expm1(log_dur)).long(), min=1)
        if unit_frames is not None:
            durations = torch.full_like(durations, unit_frames)
        # the vocoder's own rounding of durations, summed over each row's real units
        natural = durations * unit_mask
        rate = fitted(natural.sum(1), fit, rate)
        dur = at_rate(natural, rate)
        frames = dur.sum(1)
        # The length the vocoder reports for a row alone (``_get_dur_output_lengths``), which its
        # waveform is cut to: the durations summed up to index min(non-pad units, units - 1). A
        # row whose units hold the pad id (t2u writes it for an EOS or a unit equal to the pad
        # after the offset) is cut short of its frames by that count. The masks keep every real
        # frame (alone the convolutions read them); only the cut follows the vocoder's count.
        own = unit_mask.sum(1)
        counted = ((units != self.pad_id) & unit_mask).sum(1)
        index = torch.minimum(counted, own - 1).clamp(min=0)
        cut = dur.cumsum(1).gather(1, index[:, None]).squeeze(1)
        return hidden, lang, spkr, dur, frames, cut, rate

    def _second(
        self,
        hidden: torch.Tensor,
        lang: torch.Tensor,
        spkr: torch.Tensor,
        dur: torch.Tensor,
        frames: torch.Tensor,
        cut: torch.Tensor,
        *,
        width: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The second part's static path: B x C x T upsampled by one gather (padding.py) into
        ``width`` frames, the language and voice beside it, HiFi-GAN masked past each row's frames;
        the waveforms and each row's cut in samples. No read of the device."""
        hidden = hard_upsample(hidden, dur, width, dim=2)
        hidden = torch.cat([lang.repeat(1, 1, width), hidden, spkr.repeat(1, 1, width)], dim=1)
        wav = self._hifi_gan(hidden, self._upsampled(frames))
        return wav, self._upsampled(cut)[-1]

    def _plain(
        self,
        units: torch.Tensor,
        meta: torch.Tensor,
        rate: torch.Tensor,
        unit_frames: int | None,
        fit: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One unpadded row without buckets: ``SeamlessM4Tv2CodeHifiGan.forward`` as it is (the
        exact rows' path: bfloat16 on CPU), its durations at the row's ``rate`` or its ``fit``'s
        choice (``fitted``, ``at_rate``), and that rate."""
        voc = self.vocoder
        hidden = voc.unit_embedding(units).transpose(1, 2)
        spkr = voc.speaker_embedding(meta[2][:, None]).transpose(1, 2)
        lang = voc.language_embedding(meta[1][:, None]).transpose(1, 2)
        log_dur = voc.dur_predictor(hidden.transpose(1, 2), padding_mask=None)
        durations = torch.clamp(torch.round(torch.expm1(log_dur)).long(), min=1)
        if unit_frames is not None:
            durations = torch.full_like(durations, unit_frames)
        rate = fitted(durations.sum(1), fit, rate)
        durations = at_rate(durations, rate)
        hidden = torch.repeat_interleave(hidden, durations.view(-1), dim=2)
        hidden = torch.cat([lang.repeat(1, 1, hidden.shape[-1]), hidden, spkr.repeat(1, 1, hidden.shape[-1])], 1)
        if self.shapes is not None:
            self.shapes.saw("vocoder", (1, hidden.shape[0], hidden.shape[-1]))
        wav = self._hifi_gan(hidden, None)
        lengths = voc._get_output_hifigan_lengths(voc._get_dur_output_lengths(units, durations))
        return wav, lengths.reshape(-1), durations, rate

    def warm(self, rows: int, units: int, frames: int, *, speed: float = 1.0) -> None:
        """Run every kernel of a group of ``rows`` rows of ``units`` units and ``frames`` frames
        once (the engine's warm-up, engine/warmup.py); with buckets on CUDA, each part's graph is
        captured then. ``speed``: the rows' rate (an input of the graph, not a key: any serves)."""
        self.groups.warmed(rows, units)
        dev = self.vocoder.unit_embedding.weight.device
        ids = torch.full((rows, units), 1 if self.pad_id != 1 else 2, dtype=torch.long, device=dev)
        started = self.durations(
            ids, [units] * rows, [0] * rows, [0] * rows, unit_frames=self.unit_frames, speeds=[speed] * rows
        )
        self.hifigan(started, frames)

    def _hifi_gan(self, x: torch.Tensor, lengths: list[torch.Tensor] | None) -> torch.Tensor:
        """``SeamlessM4Tv2HifiGan.forward`` (and its residual blocks') through its own layers, each
        convolution's output zeroed past the row's valid length at its stage (``lengths``, one per
        stage; None: no mask, the plain forward)."""
        hg = self.vocoder.hifi_gan
        masks: dict[int, torch.Tensor] = {}

        def stage_mask(stage: int, like: torch.Tensor) -> torch.Tensor:
            """The stage's valid-sample mask for ``like`` (rows, channels, time): one per stage and
            call, since every convolution of a stage keeps its length."""
            assert lengths is not None
            m = masks.get(stage)
            if m is None or m.shape[-1] != like.shape[-1]:
                t = torch.arange(like.shape[-1], device=like.device)
                m = (t[None, :] < lengths[stage].to(like.device)[:, None])[:, None, :].to(like.dtype)
                masks[stage] = m
            return m

        def mask(stage: int, out: torch.Tensor) -> torch.Tensor:
            """``out`` zeroed past each row's length, in place (a convolution's own fresh output)."""
            return out if lengths is None else out.mul_(stage_mask(stage, out))

        def resblock(block: Any, h: torch.Tensor, stage: int) -> torch.Tensor:  # HifiGanResidualBlock
            for conv1, conv2 in zip(block.convs1, block.convs2, strict=True):
                residual = h
                h = nn.functional.leaky_relu(h, block.leaky_relu_slope)
                h = mask(stage, conv1(h))
                h = nn.functional.leaky_relu(h, block.leaky_relu_slope)
                h = mask(stage, conv2(h))
                h = h + residual
            return h

        if lengths is not None:
            x = x * stage_mask(0, x)
        h = mask(0, hg.conv_pre(x))
        for i in range(hg.num_upsamples):
            h = nn.functional.leaky_relu(h, hg.leaky_relu_slope)
            h = mask(i + 1, hg.upsampler[i](h))
            res = resblock(hg.resblocks[i * hg.num_kernels], h, i + 1)
            for j in range(1, hg.num_kernels):
                res += resblock(hg.resblocks[i * hg.num_kernels + j], h, i + 1)
            h = res / hg.num_kernels
        h = nn.functional.leaky_relu(h)
        h = mask(len(self._upsample), hg.conv_post(h))
        return torch.tanh(h).squeeze(1)

    def _upsampled(self, frames: torch.Tensor) -> list[torch.Tensor]:
        """Valid lengths at every stage from HiFi-GAN's input frames (transposed-convolution lengths)."""
        lengths = [frames]
        for stride, pad, kernel in self._upsample:
            lengths.append((lengths[-1] - 1) * stride - 2 * pad + kernel)
        return lengths
