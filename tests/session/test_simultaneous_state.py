"""The session's simultaneous policy state (``session/stream/simultaneous.py``) and its checks, as plain values."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from translate_svc.errors import InvalidInput
from translate_svc.model_api.agreement import PrefixMismatch
from translate_svc.model_api.requests import SimulRowOutput, SimulTarget
from translate_svc.session.results import Sent, text_delta
from translate_svc.session.stream.simultaneous import TargetState, advance
from translate_svc.session.task import checks
from translate_svc.settings import LimitsSettings
from translate_svc.types import OutputOptions, SimultaneousOptions

pytestmark = pytest.mark.unit


def row(committed: tuple[int, ...], hyp: tuple[int, ...], spoken: int, chunk: np.ndarray | None) -> SimulRowOutput:
    say = " ".join(f"w{t}" for t in committed)
    return SimulRowOutput("spa", hyp, "", tuple(range(len(hyp))), committed, say, 0, (), chunk, spoken)


def test_advance_keeps_the_last_hypotheses_and_gives_the_delta_and_the_chunk() -> None:
    state = TargetState(SimulTarget("spa"), Sent())
    state, delta, chunk = advance(state, row((), (1, 2), 0, None), 3)
    assert (delta, chunk, state.policy.recent) == ("", None, ((1, 2),))
    wave = np.ones(4, np.float32)
    state, delta, chunk = advance(state, row((1,), (1, 2, 3), 1, wave), 3)
    assert delta == "w1" and chunk is wave and state.sent.chunks == (wave,)
    assert state.policy == SimulTarget("spa", (1,), 1, recent=((1, 2), (1, 2, 3)))
    state, delta, _ = advance(state, row((1, 2), (1, 2, 4), 1, None), 3)
    assert delta == " w2" and state.policy.recent == ((1, 2, 3), (1, 2, 4))  # n - 1 = 2 kept
    with pytest.raises(PrefixMismatch):  # a step that would retract a committed word
        advance(state, row((1, 5), (1, 5), 1, None), 3)


def test_the_chunks_joined_say_the_rate_they_were_spoken_at() -> None:
    """A simultaneous final's ``speech_rate`` (issue 90): its chunks' rates weighted by their
    lengths, so a rate changed mid-segment counts for what it made; not known, not said."""
    state = TargetState(SimulTarget("spa"), Sent())
    assert state.sent.speech_rate() is None
    fast = dataclasses.replace(row((1,), (1, 2), 1, np.ones(300, np.float32)), chunk_rate=1.5)
    state, _, _ = advance(state, fast, 3)
    assert state.sent.rates == (1.5,) and state.sent.speech_rate() == 1.5
    slow = dataclasses.replace(row((1, 2), (1, 2), 2, np.ones(100, np.float32)), chunk_rate=0.5)
    state, _, _ = advance(state, slow, 3)
    assert state.sent.speech_rate() == pytest.approx((300 * 1.5 + 100 * 0.5) / 400)
    unknown = row((1, 2, 3), (1, 2, 3), 3, np.ones(50, np.float32))  # a runner that applies no rate
    state, _, _ = advance(state, unknown, 3)
    assert state.sent.speech_rate() is None


def test_text_delta_never_retracts() -> None:
    assert text_delta("w0 w1", "w0 w1 w2") == " w2"
    assert text_delta("", "w0") == "w0"
    assert text_delta("w0 w1", "w0 wX w2") == "X w2"


@pytest.mark.parametrize(
    ("options", "targets", "output", "words"),
    [
        (SimultaneousOptions(step_ms=499), ("spa",), OutputOptions(), "use 500..10000"),
        (SimultaneousOptions(agreement=5), ("spa",), OutputOptions(), "use 1..4"),
        (SimultaneousOptions(), (), OutputOptions(), "ASR only"),
        (SimultaneousOptions(), ("spa",), OutputOptions(text=False, speech=False), "output.text or output.speech"),
    ],
)
def test_simultaneous_options_are_checked(
    options: SimultaneousOptions, targets: tuple[str, ...], output: OutputOptions, words: str
) -> None:
    with pytest.raises(InvalidInput, match=words.replace(".", r"\.")):
        checks.check_simultaneous(options, targets, output, LimitsSettings())
    checks.check_simultaneous(SimultaneousOptions(), ("spa",), OutputOptions(), LimitsSettings())
