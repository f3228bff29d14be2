"""The SeamlessM4T runner built from its settings: every choice that depends on the device resolved
once (``StagePlan``), then the stages, the fast runner's decode pool and the runner.

``app.py`` asks for one thing, ``build_runner(settings)``, on the model thread. What differs by
device is decided here and nowhere else:

- the fast runner (our own decode loop) or the exact one (``generate``), and the pool's slots;
- on CUDA the **static path**: every decode step a row bucket over the pool's whole windows, the
  encoder's rows padded to a power of two, the stages' lengths to buckets, and the flags read one
  step behind, which is what captured graphs replay (``graphs``: captured only on a real CUDA
  device; ``model.decode_graphs`` off leaves the eager dynamic step);
- the finish on a thread of its own (CUDA) and the vocoder batched (CUDA);
- a segment's features computed inside the encoder's call, on its device (CUDA), instead of on the
  engine's features thread (model/stages/encoders.py).

``like="cuda"`` builds the CUDA plan on whatever device the settings pick (a CPU in the tests and
the host-cost benchmark): the same static path, run eagerly, so what the GPU would pay is counted
where there is no GPU (``model/regions.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from translate_svc.model.decode.batch import LoopDecoder
from translate_svc.model.runner import SeamlessRunner
from translate_svc.model.stages.decoder import TextCap
from translate_svc.model.stages.device import pick_device
from translate_svc.model.stages.forced import ForcedLengths
from translate_svc.model.stages.seamless import SeamlessStages
from translate_svc.model.stages.speech_mark import speech_marker
from translate_svc.model_api.runner import LanguageIdentifier
from translate_svc.settings import ModelSettings

logger = logging.getLogger(__name__)

Device = Literal["cpu", "cuda"]


@dataclass(frozen=True)
class StagePlan:
    """How the runner's stages run (see the module docstring)."""

    #: whose defaults these are
    defaults: Device
    #: our own decode loop (the fast runner); else ``generate`` (the exact runner)
    fast: bool
    #: the decode pool's rows
    slots: int
    #: the decode pools' steps run a row bucket over the pool's whole windows (what a graph replays)
    static: bool
    #: the static step captured as CUDA graphs (needs a CUDA device)
    graphs: bool
    #: the other stages' static paths captured as CUDA graphs per bucket (``model.stage_graphs``;
    #: with ``like="cuda"`` on a CPU the same bookkeeping runs, so a bucket the warm-up missed is
    #: counted as the GPU would meet it: model/capture.py)
    stage_graphs: bool
    #: the pools read their rows' finished flags one step behind (non-blocking)
    read_behind: bool
    #: the encoder's rows padded up to a power of two (the static path, with buckets on)
    pad_rows: bool
    #: the stepping decoder's finish on a thread of its own
    finish_thread: bool
    #: the vocoder batched across rows; None: the stages' default (CUDA, rows not exact)
    batch_vocoder: bool | None
    #: segments' features computed inside the encoder's call on its device (the runner's
    #: ``features_in_run``); else the engine computes them ahead on its features thread
    device_features: bool

    @classmethod
    def of(cls, m: ModelSettings, device: Device, *, like: Device | None = None) -> StagePlan:
        """The plan for settings ``m`` on ``device`` (``like``: another device's defaults)."""
        on = like or device
        cuda = on == "cuda"
        fast = m.fast_on(on)
        static = fast and cuda and m.decode_graphs
        return cls(
            defaults=on,
            fast=fast,
            slots=m.slots_on(on),
            static=static,
            graphs=static and device == "cuda",
            stage_graphs=cuda and m.stage_graphs,
            read_behind=cuda,
            pad_rows=static and m.buckets is not False,
            finish_thread=cuda if m.finish_thread is None else m.finish_thread,
            batch_vocoder=None if like is None else cuda,
            device_features=cuda,
        )


def build_runner(
    m: ModelSettings, *, identifier: LanguageIdentifier | None = None, like: Device | None = None
) -> SeamlessRunner:
    """The SeamlessM4T runner for ``m``, loaded now (the model thread); ``like``: with another
    device's plan (module docstring)."""
    forced = None
    if m.forced_text_tokens_per_s is not None:
        forced = ForcedLengths(m.forced_text_tokens_per_s, m.forced_units_per_s)
    plan = StagePlan.of(m, "cuda" if pick_device(m.device).type == "cuda" else "cpu", like=like)
    stages = SeamlessStages(
        m.path,
        device=m.device,
        dtype=m.dtype,
        forced=forced,
        text_cap=TextCap(m.max_text_tokens_per_s, m.max_text_tokens_base),
        cpu_threads=m.cpu_threads,
        identifier=identifier,
        pad_shapes=m.buckets,
        pad_rows=plan.pad_rows,
        batch_vocoder=plan.batch_vocoder,
        device_features=plan.device_features,
        marker=speech_marker(m.watermark),
    )
    loop = None
    if plan.fast:
        loop = LoopDecoder(
            stages.decoder,
            stages.processor,
            slots=plan.slots,
            static=plan.static,
            graphs=plan.graphs,
            read_behind=plan.read_behind,
        )
    logger.info(
        "model runner: %s; lengths %s",
        "exact (generate)"
        if loop is None
        else f"fast (our own decode loop{', CUDA graphs of its step' if loop.loop.replay is not None else ''}"
        f"{', static steps' if plan.static else ''}; {loop.loop.slots} slots, "
        f"{loop.loop.buffers.nbytes() / 2**20:.0f} MiB a pool)",
        "padded to buckets" if stages.bucket is not None else "as they come",
    )
    runner = SeamlessRunner(stages, loop, finish_thread=plan.finish_thread)
    # off: the same static paths, eagerly, nothing captured; on, on a CPU (``like="cuda"``): the
    # widths and the bookkeeping of graphs, nothing captured (model/capture.py)
    runner.graph_stages(plan.stage_graphs)
    return runner
