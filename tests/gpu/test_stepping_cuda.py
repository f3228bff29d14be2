"""The steps core's running decode (model/stepping.py) on CUDA (issue 70), its step replayed as
CUDA graphs (model/decode/graphs.py): the finished flags read a step behind (CUDA's default), jobs
joining at different ticks, jobs finished together (inline, or on the finish stage's thread and
stream) and a final taking a background job's slots give what the whole-batch fast runner gives,
in float32 on the test checkpoint (random weights: tokens compared, never words). On CUDA a row's
arithmetic depends on the rows beside it (cuBLAS picks kernels by shape), so a near-tie may turn:
at least 3 rows in 4 must be identical."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.paths import SHARED_AUDIO
from translate_svc.model_api.requests import ModelInput

pytestmark = [pytest.mark.integration, pytest.mark.gpu]


@pytest.mark.parametrize("finish_thread", [False, True])
def test_the_running_decode_on_cuda_gives_the_whole_batchs_rows(test_model_dir: Path, finish_thread: bool) -> None:
    """``finish_thread``: the ended jobs finished on the stage's thread and CUDA stream (its event
    orders it after the decode that wrote their rows)."""
    from tests.support.speech import read_16k
    from translate_svc.model.decode.batch import LoopDecoder
    from translate_svc.model.runner import SeamlessRunner
    from translate_svc.model.stages.seamless import SeamlessStages
    from translate_svc.model.stepping import SteppingDecoder
    from translate_svc.model_api.runner import BACKGROUND, FINAL

    stages = SeamlessStages(test_model_dir, device="cuda", dtype="float32")
    runner = SeamlessRunner(stages, LoopDecoder(stages.decoder, stages.processor, slots=8, static=True, graphs=True))
    x = read_16k(SHARED_AUDIO / "jfk.flac")
    spans = [(0.0, 7.0), (0.3, 2.3), (3.3, 4.4), (5.4, 7.7), (8.2, 10.6)]
    items = [ModelInput(x[int(a * 16000) : int(b * 16000)], ("spa", "fra"), "eng") for a, b in spans]
    want = runner.run(items)
    stepper = SteppingDecoder(runner, slots=6, static=True, graphs=True, finish_thread=finish_thread)
    assert stepper.loop.read_behind and stepper.loop.replay is not None
    stepper.admit(0, items[0], priority=BACKGROUND)  # 3 rows
    got = dict(stepper.tick(2))
    for k, item in enumerate(items[1:], start=1):  # 12 live rows for the 3 free slots and the background's
        stepper.admit(k, item, priority=FINAL)
        got.update(stepper.tick(1))
    for _ in range(400):
        if not len(stepper):
            break
        got.update(stepper.tick(4))
    assert sorted(got) == list(range(len(items))) and stepper.yielded > 0
    rows = same = 0
    for k, w in enumerate(want):
        out = got[k]
        assert out is not None and out.texts.keys() == w.texts.keys() and out.waveforms.keys() == w.waveforms.keys()
        for lang, text in [*w.texts.items(), ("transcript", w.transcript)]:
            rows += 1
            same += (out.transcript if lang == "transcript" else out.texts[lang]) == text
    assert same * 4 >= rows * 3, f"{same} of {rows} rows identical"
    spoken = 0
    for k, w in enumerate(want):  # speech made on the stage's stream, where the text is the same
        out = got[k]
        assert out is not None
        for lang, wave in w.waveforms.items():
            if out.texts[lang] == w.texts[lang]:
                assert (out.waveforms[lang].size > 0) == (wave.size > 0)
                spoken += wave.size > 0
    assert spoken > 0
    if finish_thread:
        assert stepper.stage is not None and stepper.stage.jobs == len(items)
    stepper.close()
