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

Pure and synchronous; the caller bounds n (``cluster.MAX_ITEMS``).
"""

from __future__ import annotations

import numpy as np


def average_linkage(
    sums: np.ndarray,
    counts: np.ndarray,
    anchors: int,
    max_k: int,
    threshold: float,
) -> np.ndarray:
    """Each item's cluster, 0..k-1, numbered by the cluster's first item (``anchors`` first: the
    first ``anchors`` items are clusters 0..anchors-1 and never merge with each other).

    ``sums``: (n, d) sums of unit vectors; ``counts``: (n,) how many each sums. Merges go on while
    more than ``max_k`` clusters remain, or the most similar pair's average cosine is at least
    ``threshold``.
    """
    n = len(sums)
    if n == 0:
        return np.zeros(0, np.int64)
    if anchors > max_k:
        raise ValueError(f"{anchors} fixed clusters cannot fit in at most {max_k}")
    sums = np.asarray(sums, np.float64)
    size = np.asarray(counts, np.float64).copy()
    sim = (sums @ sums.T) / np.outer(size, size)
    sim = (sim + sim.T) / 2  # exactly symmetric: the first maximum is at (i, j) with i < j
    np.fill_diagonal(sim, -np.inf)
    sim[:anchors, :anchors] = -np.inf  # two settled speakers never merge
    root = np.arange(n)  # each item's cluster, by its first item (the row that holds it)
    left = n
    while left > 1:
        i, j = divmod(int(np.argmax(sim)), n)
        v = sim[i, j]
        if v == -np.inf or (left <= max_k and v < threshold):
            break
        row = (size[i] * sim[i] + size[j] * sim[j]) / (size[i] + size[j])  # -inf stays -inf
        size[i] += size[j]
        root[root == j] = i
        sim[i], sim[:, i] = row, row
        sim[i, i] = -np.inf
        sim[j], sim[:, j] = -np.inf, -np.inf
        left -= 1
    order = {r: c for c, r in enumerate(sorted(set(root.tolist())))}
    return np.array([order[r] for r in root.tolist()], np.int64)
