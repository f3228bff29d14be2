"""The one place that builds the application from ``Settings``.

``build`` maps each settings section onto its component's config once, picks the model runner
(``model/``), and puts the front end (``frontend.py``: VAD, sessions) around the engine.
``transport/`` serves what it gets; the CLI, the tests and the benchmarks call ``build`` too, so
every entry point runs the same application. ``build_engine`` is the engine alone: the engine
process of ``serve --workers N`` (``serving/``) runs it, and its front-end workers never import
this module (it reaches ``model/``).

The operator commands (``cli/operator.py``) reach ``model/`` only through the entry points at the
end (device check, model validation, test checkpoint, download), which import it when called: the
CLI itself never loads torch.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

from translate_svc.cluster.choose import open_node_store, open_store, redis_location
from translate_svc.cluster.store import ClusterStore
from translate_svc.engine.engine import TranslationEngine
from translate_svc.engine.scheduler import SchedulerConfig
from translate_svc.engine.warmup import WarmupConfig, WarmupMode
from translate_svc.frontend import Application, build_frontend
from translate_svc.glossaries.choose import open_glossaries
from translate_svc.model_api.runner import LanguageIdentifier, Runner
from translate_svc.observability import metrics
from translate_svc.session.tenants.leases import StoreCounters
from translate_svc.settings import EngineSettings, ModelSettings, Settings
from translate_svc.types import BatchStats

logger = logging.getLogger(__name__)


#: ``engine.max_wait_ms`` when unset, by engine core: whole batches wait a little to fill; the steps
#: core's jobs join a running decode at the next turn, so they do not wait
DEFAULT_WAIT_MS = {"batch": 10.0, "steps": 0.0}


def scheduler_config(s: EngineSettings, *, core: str = "batch") -> SchedulerConfig:
    """EngineSettings -> the scheduler's config: the one mapping of these settings (``core``: the
    resolved engine core, ``engine_core``, which picks the fill wait when it is not set)."""
    wait_ms = DEFAULT_WAIT_MS[core] if s.max_wait_ms is None else s.max_wait_ms
    return SchedulerConfig(
        max_batch_size=s.max_batch_size,
        max_wait_s=wait_ms / 1000.0,
        max_batch_audio_s=s.max_batch_audio_s,
        max_queued=s.max_queued_segments,
        optional_batch_audio_s=s.optional_batch_audio_s,
    )


def warmup_config(m: ModelSettings, *, seamless: bool, rows_per_segment: int = 1) -> WarmupConfig:
    """ModelSettings -> the engine's warm-up (engine/warmup.py). ``auto`` is ``buckets`` (``batches``
    with ``model.buckets`` off) where the SeamlessM4T runner (``seamless``: not a test's or the
    stable translator) runs on CUDA: asked for, or ``auto`` with CUDA present (which imports torch,
    as loading the model does next). ``rows_per_segment``: the decode rows a segment may bring
    (``buckets`` warms the stages up to a batch of such segments)."""
    mode = m.warmup
    if mode == "auto":
        cuda = seamless and m.test_translator is None and _on_cuda(m.device)
        mode = ("batches" if m.buckets is False else "buckets") if cuda else "one"
    if mode == "buckets":
        from translate_svc.model.stages.shapes import encoder_lengths_s

        lengths = encoder_lengths_s(m.warmup_longest_s)
        return WarmupConfig(WarmupMode.BUCKETS, lengths, m.warmup_max_s, m.warmup_longest_s, rows_per_segment)
    return WarmupConfig(WarmupMode(mode), tuple(m.warmup_lengths_s), m.warmup_max_s, m.warmup_longest_s)


def _on_cuda(device: str) -> bool:
    if device != "auto":
        return device == "cuda"
    from translate_svc.model.stages.device import cuda_available

    return cuda_available()


def engine_core(settings: Settings, *, custom: bool = False) -> str:
    """``engine.core`` resolved: "auto" is "steps" where the fast runner decodes (a running decode
    needs its loop), "batch" otherwise and for a ``custom`` runner (tests, benchmarks)."""
    core = settings.engine.core
    if core != "auto":
        return core
    m = settings.model
    if custom or m.test_translator is not None:
        return "batch"
    return "steps" if m.fast_on("cuda" if _on_cuda(m.device) else "cpu") else "batch"


def seamless_runner_factory(m: ModelSettings) -> Callable[[], Runner]:
    """The production runner: SeamlessM4T v2 from ``m.path``, loaded on the engine's model thread
    (model/build.py, where every choice that depends on the device is made); with
    ``m.test_translator``, the made-up stable translator instead (model/testing/stable.py), refused unless
    ``m.path`` is the test checkpoint."""

    def load() -> Runner:
        if m.test_translator is not None:
            problem = test_translator_problem(m)
            if problem is not None:
                raise ValueError(problem)
            from translate_svc.model.testing.stable import StableTranslator

            return StableTranslator(m.path)
        from translate_svc.model.build import build_runner

        return build_runner(m, identifier=load_identifier(m))

    return load


def load_identifier(m: ModelSettings) -> LanguageIdentifier | None:
    """The spoken-language identifier when ``m.lid_path`` holds one (model thread, at load)."""
    if m.lid_path is None or not m.lid_path.exists():
        return None
    from translate_svc.model.stages.device import pick_device, pick_dtype
    from translate_svc.model.stages.lid import MmsLid

    device = pick_device(m.device)
    return MmsLid(m.lid_path, device, pick_dtype(m.dtype, device))


def build_engine(
    settings: Settings,
    *,
    runner_factory: Callable[[], Runner] | None = None,
    on_batch: Callable[[BatchStats], None] | None = None,
    on_failure: Callable[[BaseException], None] | None = None,
) -> TranslationEngine:
    """The engine for ``settings`` (the model loads when it starts); ``runner_factory`` replaces the
    SeamlessM4T runner (tests, benchmarks), ``on_batch`` observes every batch besides the metrics."""

    def batch_done(stats: BatchStats) -> None:
        metrics.observe_batch(stats)
        if on_batch is not None:
            on_batch(stats)

    core = engine_core(settings, custom=runner_factory is not None)
    return TranslationEngine(
        runner_factory or seamless_runner_factory(settings.model),
        scheduler_config(settings.engine, core=core),
        on_batch=batch_done,
        on_failure=on_failure,
        # a segment's rows: its targets and its transcript
        warmup=warmup_config(
            settings.model,
            seamless=runner_factory is None,
            rows_per_segment=settings.limits.max_target_languages + 1,
        ),
        core=core,
        steps_per_turn=settings.engine.steps_per_turn,
    )


def build(
    settings: Settings,
    *,
    runner_factory: Callable[[], Runner] | None = None,
    on_batch: Callable[[BatchStats], None] | None = None,
    cluster: ClusterStore | None = None,
) -> Application:
    """The whole application in one process: the engine and its front end (``frontend.py``), over
    the cluster store the settings pick (``cluster/choose.py``) unless ``cluster`` is given (tests)."""
    listeners: list[Callable[[BaseException], None]] = []

    def engine_failed(exc: BaseException) -> None:
        for listener in listeners:
            listener(exc)

    engine = build_engine(settings, runner_factory=runner_factory, on_batch=on_batch, on_failure=engine_failed)

    async def start(warmup: bool) -> None:
        await engine.start(warmup=warmup)

    store = cluster if cluster is not None else open_store(settings.cluster)
    counters = None  # one process on its own: its own counts (``tenants.counters.LocalCounters``)
    if settings.cluster.redis_url is not None and cluster is None:  # the node's caps here, the tenants' in Redis
        counters = StoreCounters(open_node_store(), store, on_loss=settings.cluster.on_redis_loss, own_node=True)
    glossaries = open_glossaries(settings, *redis_location(settings.cluster))
    return build_frontend(
        settings, engine, start, engine.stop, listeners, cluster=store, counters=counters, glossaries=glossaries
    )


# -- entry points for the operator commands: model/ (and torch) are imported when called -----------


def check_device(device: str) -> str | None:
    """Why the model cannot run on ``device`` here (``cuda`` without CUDA), or None. Loads torch
    only to check ``cuda``."""
    if device != "cuda":
        return None
    from translate_svc.model.stages.device import device_problem

    return device_problem(device)


def test_translator_problem(m: ModelSettings) -> str | None:
    """Why ``m.test_translator`` cannot be served from ``m.path``, or None. A made-up translator is
    a test and benchmark device: it must never answer in the place of real weights, so it runs only
    beside the random-weight test checkpoint (``make-test-model``'s marker file)."""
    if m.test_translator is None:
        return None
    from translate_svc.model.stages.loading import TEST_MODEL_MARKER, describe_model

    if m.path.is_dir() and describe_model(m.path).is_test_model:
        return None
    return (
        f"--test-translator {m.test_translator} makes its output up (a test and benchmark device) and runs only "
        f"beside the test checkpoint, but {m.path} is not one (no {TEST_MODEL_MARKER}): point --model at a "
        "directory built by `translate-svc make-test-model DIR`"
    )


def validate_model_dir(path: Path) -> None:
    """Raise ``ModelNotFound``, saying what is missing and how to get it, unless ``path`` holds a
    complete model: fail at start, not at load."""
    from translate_svc.model.stages.loading import validate_model_dir as validate

    validate(path)


def build_test_checkpoint(
    directory: Path, *, seed: int = 0, full_size: bool = False, real_layers: bool = False
) -> Path:
    """A random-weight SeamlessM4T v2 checkpoint (the real architecture; its output is noise)."""
    from translate_svc.model.testing.checkpoint import build_test_checkpoint as build_checkpoint

    return build_checkpoint(directory, seed=seed, full_size=full_size, real_layers=real_layers)


def download_model(directory: Path, revision: str, *, on_start: Callable[[str], None] | None = None) -> tuple[str, str]:
    """Fetch SeamlessM4T v2 from the Hugging Face Hub into ``directory`` (safetensors, configs and
    tokenizer only), record the commit, and validate the result; needs internet access.
    ``on_start(repo_id)`` is called before the download. Returns (repo id, commit)."""
    from huggingface_hub import HfApi, snapshot_download

    from translate_svc.model.stages import loading

    repo = loading.HF_REPO_ID
    if on_start is not None:
        on_start(repo)
    commit = HfApi().model_info(repo, revision=revision).sha or revision
    snapshot_download(repo, revision=commit, local_dir=directory, allow_patterns=list(loading.DOWNLOAD_PATTERNS))
    (directory / loading.DOWNLOAD_MARKER).write_text(json.dumps({"repo_id": repo, "revision": commit}) + "\n")
    loading.validate_model_dir(directory)
    return repo, commit


def download_lid_model(
    directory: Path,
    revision: str = "main",
    repo: str = "facebook/mms-lid-126",
    on_start: Callable[[str], None] | None = None,
) -> tuple[str, str]:
    """Fetch an MMS-LID checkpoint (``repo``: facebook/mms-lid-126, -256, ... -4017) from the Hugging
    Face Hub into ``directory`` (safetensors and configs only), record the commit, and validate the
    result; needs internet access. ``on_start(repo)`` is called before the download. Returns (repo, commit)."""
    from huggingface_hub import HfApi, snapshot_download

    from translate_svc.model.stages import lid, loading

    if on_start is not None:
        on_start(repo)
    commit = HfApi().model_info(repo, revision=revision).sha or revision
    snapshot_download(repo, revision=commit, local_dir=directory, allow_patterns=list(lid.LID_DOWNLOAD_PATTERNS))
    if not any(directory.glob("*.safetensors")):
        from translate_svc.errors import ModelNotFound

        raise ModelNotFound(
            f"{repo} at {commit} has no safetensors weights (a pickled .bin is never loaded): pass a --revision "
            "that has them, e.g. the Hub's safetensors conversion (refs/pr/N on the repo's community tab)"
        )
    (directory / loading.DOWNLOAD_MARKER).write_text(json.dumps({"repo_id": repo, "revision": commit}) + "\n")
    lid.validate_lid_dir(directory)
    return repo, commit


def build_lid_test_checkpoint(directory: Path, *, seed: int = 0, bias: str | None = None) -> Path:
    """A tiny random-weight MMS-LID checkpoint (the real architecture; its choices are noise, except
    that ``bias``, an ISO 639-3 label, always wins)."""
    from translate_svc.model.testing.lid_checkpoint import build_lid_test_checkpoint as build_checkpoint

    return build_checkpoint(directory, seed=seed, bias=bias)
