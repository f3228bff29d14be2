"""The speaker clustering's average linkage (issue 91) makes scipy's merges: the flat clusters
at a similarity threshold, or at a bound on their count, are scipy's (``linkage(method="average",
metric="cosine")`` cut by ``fcluster``), and fixed groups (a stream's settled speakers) never merge
with each other. A whole file's merges also ask ``Within`` (issue 100): two tight voices alike
above the line stay two, one voice's halves still join, and a bound's forced merges still happen."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.cluster.hierarchy import fcluster, linkage

from translate_svc.speakers.linkage import Within, average_linkage

pytestmark = pytest.mark.unit


def _unit(rng: np.random.Generator, n: int, centres: int, spread: float) -> np.ndarray:
    c = rng.standard_normal((centres, 16))
    x = c[rng.integers(centres, size=n)] + spread * rng.standard_normal((n, 16))
    out: np.ndarray = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = {(int(x), int(y)) for x, y in zip(a, b, strict=True)}
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 40),
    centres=st.integers(1, 5),
    threshold=st.floats(0.0, 0.9),
    max_k=st.integers(1, 6),
)
def test_the_cut_is_scipys(seed: int, n: int, centres: int, threshold: float, max_k: int) -> None:
    x = _unit(np.random.default_rng(seed), n, centres, 0.6)
    ours = average_linkage(x, np.ones(n), 0, max_k, threshold)
    z = linkage(x, method="average", metric="cosine")
    by_distance = fcluster(z, t=1 - threshold, criterion="distance")
    theirs = by_distance if len(set(by_distance)) <= max_k else fcluster(z, t=max_k, criterion="maxclust")
    if len(set(theirs)) > max_k:  # maxclust stops short only at ties of distance
        return
    # a merge at exactly the threshold may go either way between the two cuts' rounding
    d = z[:, 2]
    if np.any(np.isclose(d, 1 - threshold, atol=1e-9)):
        return
    assert _same_partition(ours, theirs), (ours, theirs)
    firsts = list(dict.fromkeys(ours.tolist()))  # numbered by each cluster's first item
    assert firsts == list(range(len(firsts)))


def test_sums_stand_for_their_items() -> None:
    """An item given as the sum of m unit vectors (count m) is clustered as those m items together."""
    rng = np.random.default_rng(3)
    x = _unit(rng, 30, 3, 0.5)
    whole = average_linkage(x, np.ones(30), 0, 3, 0.99)
    group = np.flatnonzero(whole == whole[0])[:3]  # three items that end together
    rest = np.setdiff1d(np.arange(30), group)
    summed = np.vstack([x[group].sum(axis=0), x[rest]])
    out = average_linkage(summed, np.concatenate([[len(group)], np.ones(len(rest))]), 0, 3, 0.99)
    assert _same_partition(out[1:], whole[rest])


def test_fixed_groups_never_merge_with_each_other() -> None:
    v = np.eye(4)
    sums = np.vstack([v[0], v[0] * 0.99 + v[1] * 0.14, v[0]])  # the two anchors are nearly one voice
    out = average_linkage(sums, np.ones(3), anchors=2, max_k=2, threshold=0.5)
    assert list(out[:2]) == [0, 1] and out[2] in (0, 1)
    with pytest.raises(ValueError):
        average_linkage(sums, np.ones(3), anchors=3, max_k=2, threshold=0.5)


def _voices(rng: np.random.Generator, across: float, spread: float, sizes: tuple[int, ...]) -> np.ndarray:
    """Groups of unit vectors around centres ``across`` alike, each item about ``spread`` off its
    centre (in the directions neither centre takes)."""
    basis = np.linalg.qr(rng.standard_normal((64, 64)))[0]
    centres = [basis[0], across * basis[0] + np.sqrt(1 - across**2) * basis[1]]
    off = spread / np.sqrt(62) * rng.standard_normal((sum(sizes), 62)) @ basis[2:]
    x = np.vstack([np.repeat(centres[g][None], size, axis=0) for g, size in enumerate(sizes)]) + off
    out: np.ndarray = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def test_two_tight_voices_alike_above_the_line_stay_two() -> None:
    """espeak-ng's two voices: 0.79 alike across, 0.85-0.88 inside (docs/performance.md)."""
    x = _voices(np.random.default_rng(7), across=0.8, spread=0.3, sizes=(8, 7))
    cross = float((x[:8] @ x[8:].T).mean())
    inside = [float(np.min(x[g] @ x[g].T)) for g in (slice(0, 8), slice(8, 15))]
    assert 0.65 < cross < min(inside), (cross, inside)  # the premise: the line alone would merge them
    assert len(set(average_linkage(x, np.ones(15), 0, 4, 0.65).tolist())) == 1
    out = average_linkage(x, np.ones(15), 0, 4, 0.65, Within())
    assert out.tolist() == [0] * 8 + [1] * 7


def test_one_voice_spread_out_still_joins() -> None:
    """Two halves of one voice are about as alike across as inside: ``Within`` lets them join."""
    x = _voices(np.random.default_rng(11), across=1.0, spread=0.5, sizes=(20,))
    assert float(np.quantile(x @ x.T, 0.02)) > 0.65  # every pair above the line: one speaker
    assert set(average_linkage(x, np.ones(20), 0, 4, 0.65, Within()).tolist()) == {0}


def test_within_leaves_small_groups_and_the_bounds_forced_merges_alone() -> None:
    rng = np.random.default_rng(5)
    few = _voices(rng, across=0.8, spread=0.3, sizes=(2, 7))  # a group of 2: too few to judge itself
    assert set(average_linkage(few, np.ones(9), 0, 4, 0.65, Within()).tolist()) == {0}
    x = _voices(rng, across=0.8, spread=0.3, sizes=(8, 7))
    assert set(average_linkage(x, np.ones(15), 0, 1, 0.65, Within()).tolist()) == {0}  # at most 1: merged
