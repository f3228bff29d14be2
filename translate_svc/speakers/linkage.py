"""Average-linkage agglomerative clustering of voice embeddings (UPGMA on cosine similarity), in
numpy, with the two stops speaker labels need: at most ``max_k`` clusters, and no merge of two
clusters less similar than ``threshold`` unless the bound forces it (so "at most N" finds the count
itself, never more than N). Items may be fixed groups (``anchors``: a settled speaker's segments as
one item) that never merge with each other.

An item is the sum of its unit vectors and their count: the average of the pairwise cosines
between two items is ``sum_a . sum_b / (count_a * count_b)``, and after a merge the average to any
other is the count-weighted mean of the two rows (Lance-Williams for UPGMA), so one merge costs a
row's update and a search of the matrix (n^3 for n items: the caller keeps n to a few hundred,
where numpy's search is cheaper than keeping each row's best in Python). The same merges as scipy's
``linkage(method="average", metric="cosine")`` (``tests/speakers/test_linkage.py``); scipy is not a
dependency of the server (docs/decisions.md, "Speaker labels over the whole file").

A whole file's labels also ask each merge the line allows whether the two groups are as alike as
each is to itself (``within``): two voices a synthesiser makes (espeak-ng's, 0.79 alike) sit above
the line real voices were tuned on (0.65) but below their own segments' likeness (0.85-0.88), where
two halves of one voice are not (docs/performance.md, "Speaker labels calibrated on the file's own
voices"). A stream's clustering does not ask it: its items include settled speakers' sums, whose
segments' pairs it no longer holds.

Pure and synchronous; the caller bounds n (``cluster.MAX_ITEMS``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Within:
    """A merge the line allows is refused when both groups hold at least ``min_items`` items and
    their average cosine across is below the ``quantile`` of the cosines between two items inside
    either group: the two are less alike than each is to itself, even at its least."""

    quantile: float = 0.02
    min_items: int = 3

    def refuses(self, pair: np.ndarray, a: np.ndarray, b: np.ndarray, across: float) -> bool:
        if min(len(a), len(b)) < self.min_items:
            return False
        inside = np.concatenate([pair[np.ix_(g, g)][np.triu_indices(len(g), 1)] for g in (a, b)])
        return across < float(np.quantile(inside, self.quantile))


def average_linkage(
    sums: np.ndarray,
    counts: np.ndarray,
    anchors: int,
    max_k: int,
    threshold: float,
    within: Within | None = None,
) -> np.ndarray:
    """Each item's cluster, 0..k-1, numbered by the cluster's first item (``anchors`` first: the
    first ``anchors`` items are clusters 0..anchors-1 and never merge with each other).

    ``sums``: (n, d) sums of unit vectors; ``counts``: (n,) how many each sums. Merges go on while
    more than ``max_k`` clusters remain, or the most similar pair's average cosine is at least
    ``threshold`` and ``within`` (items of one vector each: ``counts`` all 1) does not refuse it; a
    refused pair, and what either later joins, stays apart.
    """
    n = len(sums)
    if n == 0:
        return np.zeros(0, np.int64)
    if anchors > max_k:
        raise ValueError(f"{anchors} fixed clusters cannot fit in at most {max_k}")
    sums = np.asarray(sums, np.float64)
    size = np.asarray(counts, np.float64).copy()
    pair = (sums @ sums.T) / np.outer(size, size)
    sim = (pair + pair.T) / 2  # exactly symmetric: the first maximum is at (i, j) with i < j
    np.fill_diagonal(sim, -np.inf)
    sim[:anchors, :anchors] = -np.inf  # two settled speakers never merge
    root = np.arange(n)  # each item's cluster, by its first item (the row that holds it)
    left = n
    while left > 1:
        i, j = divmod(int(np.argmax(sim)), n)
        v = sim[i, j]
        if v == -np.inf or (left <= max_k and v < threshold):
            break
        if left <= max_k and within and within.refuses(pair, np.flatnonzero(root == i), np.flatnonzero(root == j), v):
            sim[i, j] = sim[j, i] = -np.inf
            continue
        row = (size[i] * sim[i] + size[j] * sim[j]) / (size[i] + size[j])  # -inf stays -inf
        size[i] += size[j]
        root[root == j] = i
        sim[i], sim[:, i] = row, row
        sim[i, i] = -np.inf
        sim[j], sim[:, j] = -np.inf, -np.inf
        left -= 1
    order = {r: c for c, r in enumerate(sorted(set(root.tolist())))}
    return np.array([order[r] for r in root.tolist()], np.int64)
