"""The engine's settings (``Settings.engine``): batching, its budgets and the queue's bound."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class EngineSettings(BaseModel):
    max_batch_size: int = Field(16, ge=1, le=1024)
    #: the longest the oldest queued job waits for others to fill its batch. None: 10 ms with
    #: whole batches (``core = "batch"``), 0 with the steps core, whose jobs join a running decode
    #: (there is no batch to fill: the jobs that come during a turn join together at the next, and
    #: a wait would only add to every segment's latency: docs/decisions.md)
    max_wait_ms: float | None = Field(None, ge=0, le=10_000)
    #: budget of padded audio seconds per batch (longest segment x batch size)
    max_batch_audio_s: float = Field(240.0, gt=0)
    #: segments waiting for the model, all streams together; beyond it: RESOURCE_EXHAUSTED
    max_queued_segments: int = Field(512, ge=1)
    #: budget of an optional batch (live captions, simultaneous steps), in row-seconds: its text
    #: rows (one per target language, the transcript's included) x its longest input. A final
    #: waits behind at most one such batch; optional work beyond it waits, and a caption or step
    #: over it alone is skipped (80: a step or caption of 15 s with 4 targets and a transcript fits)
    optional_batch_audio_s: float = Field(80.0, gt=0)
    #: how the engine runs the model: "batch", whole batches, each run to its longest row's end
    #: (engine/core.py ``BatchCore``); "steps", one running decode that segments' rows join and
    #: leave at every step, so a final never waits for a batch's longest row (engine/step_core.py
    #: ``StepCore``; the fast runner's segments; other work runs as whole batches beside it);
    #: "auto": "steps" where the fast runner decodes (``model.runner``), "batch" with the exact one
    core: Literal["auto", "batch", "steps"] = "auto"
    #: with ``core = "steps"``: decode steps a turn of the engine's loop runs at most before it
    #: takes new jobs (a new final waits that many steps at most before its rows join)
    steps_per_turn: int = Field(4, ge=1, le=1024)
