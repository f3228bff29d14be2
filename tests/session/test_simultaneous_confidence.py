"""A simultaneous segment's confidence in the session (issue 72): the state carries each committed
token's value from step to step (``advance``), each commit is the mean over the tokens it adds
(``commit_logprob``; a final one's with the end of text), so the commits weighted by their tokens
average to the final's mean over every token; plain values, no model."""

from __future__ import annotations

import pytest

from translate_svc.model_api.requests import SimulRowOutput, SimulTarget
from translate_svc.session.results import Sent, commit_logprob
from translate_svc.session.stream.simultaneous import TargetState, advance

pytestmark = pytest.mark.unit


def row(committed: tuple[int, ...], logprobs: tuple[float, ...], end: float | None = None) -> SimulRowOutput:
    text = " ".join(f"w{t}" for t in committed)
    return SimulRowOutput(
        "spa", committed, text, tuple(range(len(committed))), committed, text, 0, (), None, 0,
        logprobs=logprobs, end_logprob=end,
    )  # fmt: skip


def test_commits_weighted_by_their_tokens_average_to_the_final() -> None:
    state = TargetState(SimulTarget("spa"), Sent())
    steps = [row((1, 2), (-1.0, -2.0)), row((1, 2, 3), (-1.0, -2.0, -3.0))]
    final = row((1, 2, 3, 4), (-1.0, -2.0, -3.0, -4.0), end=-0.5)
    commits: list[tuple[int, float | None]] = []
    for r in steps:
        before = len(state.policy.committed)
        commits.append((len(r.committed) - before, commit_logprob(before, r)))
        state, _, _ = advance(state, r, 2)
        assert state.policy.logprobs == r.logprobs  # the next step is asked with them
    before = len(state.policy.committed)
    commits.append((len(final.committed) - before + 1, commit_logprob(before, final)))  # its end counted
    assert [lp for _, lp in commits] == [-1.5, -3.0, -2.25]
    everything = [*final.logprobs, -0.5]
    weighted = sum(n * lp for n, lp in commits if lp is not None) / sum(n for n, _ in commits)
    assert weighted == pytest.approx(sum(everything) / len(everything))


def test_a_commit_without_new_tokens_or_known_values_has_none() -> None:
    r = row((1, 2), (-1.0, -2.0))
    assert commit_logprob(2, r) is None  # adds nothing
    assert commit_logprob(0, row((1, 2), ())) is None  # values not known
    state, _, _ = advance(TargetState(SimulTarget("spa"), Sent()), row((1, 2), ()), 2)
    assert state.policy.logprobs == ()  # never a partial list
