"""The one place that builds the application from ``Settings``.

``build`` maps each settings section onto its component's config once, picks the model runner
(``model/``), loads the shared VAD and wires metrics. ``transport/`` serves what it gets; the CLI,
the tests and the benchmarks call ``build`` too, so every entry point runs the same application.

The operator commands (``cli/operator.py``) reach ``model/`` only through the entry points at the
end (device check, model validation, test checkpoint, download), which import it when called: the
CLI itself never loads torch.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from threadpoolctl import threadpool_limits

from translate_svc.engine.engine import TranslationEngine
from translate_svc.engine.jobs import BatchStats
from translate_svc.engine.runner import Runner
from translate_svc.engine.scheduler import SchedulerConfig
from translate_svc.observability import metrics
from translate_svc.session import SessionManager
from translate_svc.settings import EngineSettings, ModelSettings, Settings
from translate_svc.vad.silero import SileroVad
from translate_svc.vad.worker import VadWorker

logger = logging.getLogger(__name__)


def scheduler_config(s: EngineSettings) -> SchedulerConfig:
    """EngineSettings -> the scheduler's config: the one mapping of these settings."""
    return SchedulerConfig(
        max_batch_size=s.max_batch_size,
        max_wait_s=s.max_wait_ms / 1000.0,
        max_batch_audio_s=s.max_batch_audio_s,
        max_queued=s.max_queued_segments,
    )


def seamless_runner_factory(m: ModelSettings) -> Callable[[], Runner]:
    """The production runner: SeamlessM4T v2 from ``m.path`` (loaded on the engine's model thread)."""

    def load() -> Runner:
        from translate_svc.model.forced import ForcedLengths
        from translate_svc.model.seamless import SeamlessRunner, TextCap

        forced = None
        if m.forced_text_tokens_per_s is not None:
            forced = ForcedLengths(m.forced_text_tokens_per_s, m.forced_units_per_s)
        cap = TextCap(m.max_text_tokens_per_s, m.max_text_tokens_base)
        return SeamlessRunner(
            m.path, device=m.device, dtype=m.dtype, forced=forced, text_cap=cap, cpu_threads=m.cpu_threads
        )

    return load


@dataclass
class Application:
    """Engine, VAD worker and sessions of one server process. Event loop only."""

    settings: Settings
    engine: TranslationEngine
    vad: VadWorker
    sessions: SessionManager
    #: called (on the loop) if the model worker dies; transport/ turns health NOT_SERVING
    failure_listeners: list[Callable[[BaseException], None]] = field(default_factory=list)

    async def start(self, *, warmup: bool = True) -> None:
        """Load and warm the model (minutes for the real one)."""
        await self.engine.start(warmup=warmup)

    async def stop(self) -> None:
        """After the transport stopped taking calls: fail what is left, stop the threads."""
        await self.engine.stop()
        self.vad.close()


def build(
    settings: Settings,
    *,
    runner_factory: Callable[[], Runner] | None = None,
    on_batch: Callable[[BatchStats], None] | None = None,
) -> Application:
    """The application for ``settings``; ``runner_factory`` replaces the SeamlessM4T runner (tests,
    benchmarks), ``on_batch`` observes every batch besides the metrics."""

    # process-wide, once: numpy's BLAS pool (torch's own threads are the runner's, set at load)
    threadpool_limits(limits=settings.blas_threads, user_api="blas")

    def batch_done(stats: BatchStats) -> None:
        metrics.observe_batch(stats)
        if on_batch is not None:
            on_batch(stats)

    listeners: list[Callable[[BaseException], None]] = []

    def engine_failed(exc: BaseException) -> None:
        for listener in listeners:
            listener(exc)

    engine = TranslationEngine(
        runner_factory or seamless_runner_factory(settings.model),
        scheduler_config(settings.engine),
        on_batch=batch_done,
        on_failure=engine_failed,
    )
    vad = VadWorker(SileroVad(), on_call=metrics.observe_vad_call)
    sessions = SessionManager(engine, vad, settings.vad, settings.limits)
    return Application(settings, engine, vad, sessions, listeners)


# -- entry points for the operator commands: model/ (and torch) are imported when called -----------


def check_device(device: str) -> str | None:
    """Why the model cannot run on ``device`` here (``cuda`` without CUDA), or None. Loads torch
    only to check ``cuda``."""
    if device != "cuda":
        return None
    from translate_svc.model.device import device_problem

    return device_problem(device)


def validate_model_dir(path: Path) -> None:
    """Raise ``ModelNotFound``, saying what is missing and how to get it, unless ``path`` holds a
    complete model: fail at start, not at load."""
    from translate_svc.model.loading import validate_model_dir as validate

    validate(path)


def build_test_checkpoint(directory: Path, *, seed: int = 0, full_size: bool = False) -> Path:
    """A random-weight SeamlessM4T v2 checkpoint (the real architecture; its output is noise)."""
    from translate_svc.model.test_checkpoint import build_test_checkpoint as build_checkpoint

    return build_checkpoint(directory, seed=seed, full_size=full_size)


def download_model(directory: Path, revision: str, *, on_start: Callable[[str], None] | None = None) -> tuple[str, str]:
    """Fetch SeamlessM4T v2 from the Hugging Face Hub into ``directory`` (safetensors, configs and
    tokenizer only), record the commit, and validate the result; needs internet access.
    ``on_start(repo_id)`` is called before the download. Returns (repo id, commit)."""
    from huggingface_hub import HfApi, snapshot_download

    from translate_svc.model import loading

    repo = loading.HF_REPO_ID
    if on_start is not None:
        on_start(repo)
    commit = HfApi().model_info(repo, revision=revision).sha or revision
    snapshot_download(repo, revision=commit, local_dir=directory, allow_patterns=list(loading.DOWNLOAD_PATTERNS))
    (directory / loading.DOWNLOAD_MARKER).write_text(json.dumps({"repo_id": repo, "revision": commit}) + "\n")
    loading.validate_model_dir(directory)
    return repo, commit
