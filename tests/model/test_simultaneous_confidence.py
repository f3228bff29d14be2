"""Confidence in simultaneous steps on the test checkpoint (issue 72, model/simultaneous.py): each
committed token keeps the log-probability of the step that chose it, so a final decoded with the
committed prefix forced still averages over every token of its text (its end included).

Random weights say anything: the assertions are on structure, ranges and parity with the runner's
own values (tests/model/finish/test_confidence.py), never on words."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tests.support.runner_inputs import commit_first, rows_of, step_input
from tests.support.speech import read_16k
from translate_svc.model.decode.batch import LoopDecoder
from translate_svc.model.runner import SeamlessRunner
from translate_svc.model.simultaneous import Retranslator
from translate_svc.model.stages.seamless import SeamlessStages
from translate_svc.model_api.requests import ModelInput, SimulRequest, SimulTarget

pytestmark = [pytest.mark.integration, pytest.mark.slow(20)]

SPANS = [(0.3, 2.3), (5.4, 7.7)]  # seconds of jfk.flac


@pytest.fixture(scope="module")
def stages(test_model_dir: Path) -> SeamlessStages:
    return SeamlessStages(test_model_dir, device="cpu", dtype="float32")


@pytest.fixture(scope="module", params=["exact", "fast"])
def own_runner(request: pytest.FixtureRequest, stages: SeamlessStages) -> SeamlessRunner:
    """The exact runner (``generate``) or the fast one (our decode loop): both keep the values."""
    loop = LoopDecoder(stages.decoder, stages.processor, slots=3) if request.param == "fast" else None
    return SeamlessRunner(stages, loop)


@pytest.fixture(scope="module")
def simul(own_runner: SeamlessRunner) -> Retranslator:
    return Retranslator(own_runner.stages, loop=own_runner.loop)


@pytest.fixture(scope="module")
def segments(shared_audio: Path) -> list[np.ndarray]:
    x = read_16k(shared_audio / "jfk.flac")
    return [x[int(a * 16000) : int(b * 16000)] for a, b in SPANS]


def ok(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value <= 0.0


def test_a_final_with_nothing_committed_is_the_segments_confidence(
    simul: Retranslator, own_runner: SeamlessRunner, segments: list[np.ndarray]
) -> None:
    """With nothing committed the final step's decode is the runner's: the same values, the end
    of text counted; the transcript's too. Open steps report none (a caption's text)."""
    request = SimulRequest((SimulTarget("spa"), SimulTarget("fra")), final=True)
    finals = simul.retranslate([ModelInput(a, ("spa", "fra"), "eng", speech=False, simul=request) for a in segments])
    runs = own_runner.run([ModelInput(a, ("spa", "fra"), "eng", speech=False) for a in segments])
    seen = []
    for fin, run in zip(finals, runs, strict=True):
        for row in rows_of(fin):
            assert len(row.logprobs) == len(row.committed) == len(row.token_ids)
            assert all(ok(v) for v in row.logprobs) and (row.end_logprob is None or ok(row.end_logprob))
            assert fin.logprobs[row.language] == pytest.approx(run.logprobs[row.language], abs=1e-4)
        assert ok(fin.transcript_logprob)
        assert fin.transcript_logprob == pytest.approx(run.transcript_logprob, abs=1e-4)
        seen += [fin.transcript_logprob, *fin.logprobs.values()]
    assert len(set(seen)) == len(seen)  # each input and row its own
    (open_step,) = simul.retranslate([step_input(segments[0], SimulTarget("spa"))])
    assert open_step.logprobs == {} and open_step.transcript_logprob is None


def test_committed_tokens_keep_the_value_of_the_step_that_chose_them(
    simul: Retranslator, segments: list[np.ndarray]
) -> None:
    """A step over the first part of the speech commits two tokens with their values; the final over
    the whole, decoded with them forced, keeps those values for them and adds its own for the rest
    and the end: its mean is over all of them. A target whose values are not known (committed
    tokens without them) gives none."""
    audio = segments[0]
    part = audio[: len(audio) * 2 // 3]
    (first,) = simul.retranslate([step_input(part, SimulTarget("spa"))], commit_first(2))
    (row,) = rows_of(first)
    assert len(row.committed) == 2 and len(row.logprobs) == 2 and row.end_logprob is None
    assert all(ok(v) for v in row.logprobs)
    target = SimulTarget("spa", row.committed, logprobs=row.logprobs)
    (fin,) = simul.retranslate([step_input(audio, target, final=True, speech=False)])
    (last,) = rows_of(fin)
    assert last.logprobs[:2] == row.logprobs
    assert len(last.logprobs) == len(last.committed)
    values = [*last.logprobs, *([] if last.end_logprob is None else [last.end_logprob])]
    assert fin.logprobs["spa"] == pytest.approx(sum(values) / len(values))
    # the forced prefix read under the whole speech would be another value: the first step's is kept
    (unforced,) = rows_of(simul.retranslate([step_input(audio, SimulTarget("spa"), final=True, speech=False)])[0])
    if unforced.committed[:2] == row.committed:
        assert unforced.logprobs[:2] != row.logprobs

    unknown = SimulTarget("spa", row.committed)  # committed without values
    (blind,) = simul.retranslate([step_input(audio, unknown, final=True, speech=False)])
    assert rows_of(blind)[0].logprobs == () and blind.logprobs == {}
