"""The end-of-turn model's worker (``vad/turn_worker.py``) on the real Smart Turn weights: questions
asked together are answered in one model call, each as it would be alone; a question the model
cannot take fails alone, the others of its call answered; answers come back on the asking loop."""

from __future__ import annotations

import asyncio
import functools
import threading
from pathlib import Path

import numpy as np
import pytest

from tests.support.speech import read_16k
from translate_svc.vad.turn_end import SmartTurn
from translate_svc.vad.turn_worker import TurnWorker

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def model() -> SmartTurn:
    return SmartTurn()


@pytest.fixture(scope="module")
def turns(shared_audio: Path) -> list[np.ndarray]:
    """jfk.flac up to where each of its phrases ends (tests/vad/test_turn_end.py)."""
    jfk = read_16k(shared_audio / "jfk.flac")
    return [jfk[: round(end * 16000)] for end in (2.3, 4.4, 7.7, 10.6)]


async def test_questions_asked_together_are_one_call_each_answered_as_alone(
    model: SmartTurn, turns: list[np.ndarray]
) -> None:
    # a 2 s gather: the four questions, asked in one pass of the loop, are in it on any machine
    worker = TurnWorker(model, batch=8, gather_ms=2000)
    try:
        answers = await asyncio.gather(*(worker.complete(t) for t in turns))
    finally:
        worker.close()
    np.testing.assert_allclose(answers, [model.complete([t])[0] for t in turns], atol=1e-5)
    assert worker.questions == len(turns) and worker.calls == 1


async def test_a_question_the_model_cannot_take_fails_alone(model: SmartTurn, turns: list[np.ndarray]) -> None:
    worker = TurnWorker(model, batch=8, gather_ms=50)
    loop_thread = threading.get_ident()
    seen: list[tuple[int, float | None, BaseException | None]] = []
    done = asyncio.Event()

    def on_done(i: int, p: float | None, exc: BaseException | None) -> None:
        assert threading.get_ident() == loop_thread  # delivered on the asking loop
        seen.append((i, p, exc))
        if len(seen) == 3:
            done.set()

    bad = np.zeros((2, 16000), np.float32)  # two channels: not a turn
    try:
        for i, audio in enumerate([turns[0], bad, turns[3]]):
            worker.submit(audio, functools.partial(on_done, i))
        await asyncio.wait_for(done.wait(), 60)
    finally:
        worker.close()
    by = {i: (p, exc) for i, p, exc in seen}
    assert by[1][0] is None and isinstance(by[1][1], ValueError) and "one dimension" in str(by[1][1])
    assert by[0][1] is None and by[2][1] is None
    assert by[0][0] == pytest.approx(model.complete([turns[0]])[0], abs=1e-5)
    assert by[2][0] == pytest.approx(model.complete([turns[3]])[0], abs=1e-5)


def test_a_worker_needs_a_thread_and_a_batch(model: SmartTurn) -> None:
    for kw in ({"threads": 0}, {"batch": 0}, {"gather_ms": -1}):
        with pytest.raises(ValueError, match="threads >= 1, batch >= 1 and gather_ms >= 0"):
            TurnWorker(model, **kw)
