"""The speaker clustering's average linkage (issue 91) makes scipy's merges: the flat clusters
at a similarity threshold, or at a bound on their count, are scipy's (``linkage(method="average",
metric="cosine")`` cut by ``fcluster``), and fixed groups (a stream's settled speakers) never merge
with each other."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.cluster.hierarchy import fcluster, linkage

from translate_svc.speakers.linkage import average_linkage

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
