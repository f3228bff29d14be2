"""The real-layers test checkpoint speaks (issue 88, item 7): ``make-test-model --real-layers`` set
the hidden width to 64 and left t2u's duration predictor at the tiny checkpoint's 32 input channels,
so every segment with speech out failed in text-to-unit ("expected input[1, 64, n] to have 32
channels"). One segment with speech through the exact and the fast runner on a checkpoint built
here: real layer counts, tiny widths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.support.speech import read_16k
from translate_svc.model.decode.batch import LoopDecoder
from translate_svc.model.runner import SeamlessRunner
from translate_svc.model.stages.seamless import SeamlessStages
from translate_svc.model.testing.checkpoint import build_test_checkpoint
from translate_svc.model_api.requests import ModelInput

pytestmark = [pytest.mark.integration, pytest.mark.slow(8)]


@pytest.fixture(scope="module")
def stages(tmp_path_factory: pytest.TempPathFactory) -> SeamlessStages:
    out = build_test_checkpoint(tmp_path_factory.mktemp("real-layers") / "m", real_layers=True)
    return SeamlessStages(out, device="cpu", dtype="float32")


@pytest.mark.parametrize("runner", ["exact", "fast"])
def test_a_segment_with_speech_out_runs_on_the_real_layers_checkpoint(
    stages: SeamlessStages, shared_audio: Path, runner: str
) -> None:
    audio = read_16k(shared_audio / "jfk.flac")[16000 * 1 : 16000 * 3]  # 2 s
    decoder = LoopDecoder(stages.decoder, stages.processor, slots=2) if runner == "fast" else None
    (out,) = SeamlessRunner(stages, decoder).run([ModelInput(audio, ("spa",), "eng", speech=True)])
    wave = out.waveforms["spa"]
    assert wave.dtype == np.float32 and wave.ndim == 1 and len(wave) > 0
    assert np.isfinite(wave).all()
    assert out.texts["spa"] is not None
