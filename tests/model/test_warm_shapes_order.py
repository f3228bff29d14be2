"""The runner's bucket warm-up runs what live segments meet first (``SeamlessRunner.warm_shapes``):
with the finish thread, t2u's and the vocoder's buckets on that thread (where live segments are
spoken), then the decode pool's steps and admissions, then the same buckets on the model thread
(texts and renditions); without it, on the model thread first, then the pool. On an H200
(2026-11-30) the model thread's went first and a 100 s warm-up ended inside them. The real runner
on the test checkpoint; what each part runs is recorded in place of running it."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from translate_svc.model import runner as runner_module
from translate_svc.model.decode.batch import LoopDecoder
from translate_svc.model.runner import SeamlessRunner
from translate_svc.model.stages.seamless import SeamlessStages

pytestmark = pytest.mark.integration


def warm_order(model: Path, monkeypatch: pytest.MonkeyPatch, *, finish_thread: bool) -> list[str]:
    stages = SeamlessStages(model, device="cpu", dtype="float32")
    runner = SeamlessRunner(stages, LoopDecoder(stages.decoder, stages.processor, slots=4), finish_thread=finish_thread)
    stepper = runner.stepper()
    assert stepper is not None
    seen: list[str] = []
    main = threading.current_thread()

    def speech(*args: Any, **kwargs: Any) -> int:
        seen.append("speech on the " + ("model thread" if threading.current_thread() is main else "finish thread"))
        return 1

    def pool(name: str) -> Any:
        def run(*args: Any, **kwargs: Any) -> int:
            seen.append(name)
            return 1

        return run

    monkeypatch.setattr(stages, "warm_speech", speech)
    monkeypatch.setattr(runner_module, "warm_steps", pool("steps"))
    monkeypatch.setattr(runner_module, "warm_admissions", pool("admissions"))
    try:
        assert runner.warm_shapes(2, 1.0, None) == len(seen)
    finally:
        stepper.close()
    return seen


def test_with_a_finish_thread_its_buckets_come_first_and_the_model_threads_last(
    test_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = warm_order(test_model_dir, monkeypatch, finish_thread=True)
    assert order == ["speech on the finish thread", "steps", "admissions", "speech on the model thread"]


def test_without_one_the_model_threads_come_first(test_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert warm_order(test_model_dir, monkeypatch, finish_thread=False) == [
        "speech on the model thread",
        "steps",
        "admissions",
    ]
