"""The exact runner on CUDA (issue 69): its property, each row equal to the row alone, holds on the
device that serves, in float32; and bfloat16, the serving dtype, runs every kind of work with the
results' structure intact. On the test checkpoint (random weights: no assertion on words)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.support.paths import SHARED_AUDIO
from translate_svc.model_api.requests import ModelInput, SimulRequest, SimulTarget, SourceText

pytestmark = [pytest.mark.integration, pytest.mark.gpu]


def clips() -> list[np.ndarray]:
    from tests.support.speech import read_16k

    x = read_16k(SHARED_AUDIO / "jfk.flac")
    return [x[int(a * 16000) : int(b * 16000)] for a, b in [(0.3, 2.3), (3.3, 4.4), (5.4, 7.7), (0.0, 5.0)]]


def runner(model: Path, dtype: str):  # type: ignore[no-untyped-def]
    from translate_svc.model.runner import SeamlessRunner
    from translate_svc.model.stages.seamless import SeamlessStages

    return SeamlessRunner(SeamlessStages(model, device="cuda", dtype=dtype))


def test_a_float32_batch_on_cuda_equals_each_row_alone(test_model_dir: Path) -> None:
    exact = runner(test_model_dir, "float32")
    items = [ModelInput(a, ("spa", "fra"), "eng") for a in clips()]
    batched = exact.run(items)
    for item, b in zip(items, batched, strict=True):
        alone = exact.run([item])[0]
        assert b.texts == alone.texts and b.transcript == alone.transcript
        for lang in item.targets:
            assert b.waveforms[lang].shape == alone.waveforms[lang].shape
            np.testing.assert_allclose(b.waveforms[lang], alone.waveforms[lang], atol=1e-3)


def test_bfloat16_on_cuda_runs_segments_texts_and_steps(test_model_dir: Path) -> None:
    bf16 = runner(test_model_dir, "bfloat16")
    audio = clips()
    step = SimulRequest((SimulTarget("spa"),), final=True)
    items = [
        ModelInput(audio[0], ("spa", "fra"), "eng"),
        ModelInput(np.zeros(0, np.float32), ("spa",), text=SourceText("hello there", "eng")),
        ModelInput(audio[3], ("spa",), "eng", simul=step),
    ]
    seg, text, simul = bf16.run(items)
    assert set(seg.texts) == {"spa", "fra"} and seg.transcript is not None
    assert all(w.dtype == np.float32 and np.isfinite(w).all() for w in seg.waveforms.values())
    assert set(text.texts) == {"spa"}
    assert simul.simul is not None and set(simul.simul) == {"spa"}


def test_the_cuda_runtimes_choices_are_named_for_the_log() -> None:
    from translate_svc.model.stages.device import cuda_runtime

    said = cuda_runtime()
    for name in ("cuDNN", "cudnn.benchmark", "CUDA_MODULE_LOADING", "PYTORCH_CUDA_ALLOC_CONF"):
        assert name in said
    assert "device none" not in said


def test_auto_picks_the_fast_runner_on_cuda(test_model_dir: Path) -> None:
    from translate_svc.app import seamless_runner_factory
    from translate_svc.settings import ModelSettings

    runner = seamless_runner_factory(ModelSettings(path=test_model_dir, device="cuda", runner="auto"))()
    assert getattr(runner, "loop", None) is not None


def test_the_fast_runners_pools_replay_cuda_graphs(test_model_dir: Path) -> None:
    """``model.decode_graphs`` (on by default): the fast runner's pool and the steps core's are
    static, their step captured per row bucket at load; off: eager."""
    from translate_svc.app import seamless_runner_factory
    from translate_svc.settings import ModelSettings

    runner = seamless_runner_factory(ModelSettings(path=test_model_dir, device="cuda", runner="fast", decode_slots=8))()
    pool = runner.loop.loop  # type: ignore[attr-defined]
    assert pool.static and pool.replay is not None and pool.buckets == (1, 2, 4, 8)
    stepper = runner.stepper()  # type: ignore[attr-defined]
    assert stepper.loop.static and stepper.loop.replay is not None
    out = runner.run([ModelInput(clips()[0], ("spa",), "eng")])  # type: ignore[attr-defined]
    assert out[0].texts.keys() == {"spa"} and out[0].transcript is not None
    eager = seamless_runner_factory(
        ModelSettings(path=test_model_dir, device="cuda", runner="fast", decode_graphs=False)
    )()
    assert eager.loop.loop.replay is None and not eager.loop.loop.static  # type: ignore[attr-defined]
