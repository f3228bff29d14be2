"""Segments' voice embeddings clustered into speakers: over the whole file at once (``label_all``:
clips, the REST endpoints, jobs) or as a stream goes (``OnlineSpeakers``), by the same core.

The core (``_cluster``): segments of at least ``min_segment_ms`` (their embeddings are reliable;
a 1.2 s phrase's may sit as close to another voice as to its own) are clustered by average linkage
(``linkage.py``) until at most ``max_speakers`` clusters remain and no two are at least
``threshold`` alike (over a whole file, nor as alike as each is to itself: ``linkage.Within``):
"at most N" finds the count itself, and a short segment never opens a speaker (nor takes a place
of the bound). Then every segment, short ones too, is labelled by the
cluster its partials (1.6 s each) mostly lie nearest to, the segment's own mean embedding breaking
a tie: a segment holding two voices gets the one that holds most of it. With no reliable segment
(and no settled speaker) yet, all segments are clustered.

A stream (``OnlineSpeakers``) runs the core again at each segment over its last ``WINDOW``
segments and its settled speakers (the segments before the window, one fixed item per label:
``Anchor``), then maps the clusters onto the labels already told, so that each keeps the label
most of its told segments carry (labels on later segments stay stable), and a new voice takes the
lowest free label. A segment of the window whose label changes is a revision, returned to be told
(``SegmentResult.speakers_revised``). Labels are 1..max_speakers. Pure and synchronous.

Thresholds measured on ../shared/audio's voices and the project's own (docs/performance.md,
"Speaker labels that hold").
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from translate_svc.speakers.encoder import Embedding
from translate_svc.speakers.linkage import Within, average_linkage
from translate_svc.types import MAX_SPEAKERS

#: average cosine similarity at which two groups of segments are one voice
DEFAULT_THRESHOLD = 0.65
#: a segment shorter than this is labelled by the clusters, never clusters (its embedding is noisy)
DEFAULT_MIN_SEGMENT_MS = 1500
#: a stream's segments whose labels may still be revised (older ones are settled)
WINDOW = 64
#: the most segments one clustering takes as items (a longer file: evenly spread ones; the others
#: are labelled by the clusters): bounds its memory at MAX_ITEMS^2 floats
MAX_ITEMS = 512
_BLOCK = 4096


@dataclass(frozen=True)
class ClusterConfig:
    max_speakers: int = 2
    threshold: float = DEFAULT_THRESHOLD
    min_segment_ms: int = DEFAULT_MIN_SEGMENT_MS

    def __post_init__(self) -> None:
        if not 1 <= self.max_speakers <= MAX_SPEAKERS:
            raise ValueError(f"max_speakers is {self.max_speakers}: use 1..{MAX_SPEAKERS}")


@dataclass(frozen=True)
class Anchor:
    """A settled speaker: the sum of its settled segments' embeddings, and how many."""

    total: np.ndarray
    count: int


def _cluster(
    vectors: np.ndarray,
    partials: Sequence[np.ndarray],
    durations: np.ndarray,
    config: ClusterConfig,
    anchors: Sequence[Anchor] = (),
    within: Within | None = None,
) -> np.ndarray:
    """Each segment's cluster (clusters 0..len(anchors)-1 are the anchors', in order); ``within``:
    merges the line allows are also asked whether the two groups are as alike as each is to itself
    (a whole file's, ``linkage.Within``)."""
    n = len(vectors)
    items = np.flatnonzero(durations >= config.min_segment_ms)
    if not len(items) and not anchors:
        items = np.arange(n)
    if len(items) > MAX_ITEMS:
        items = items[np.linspace(0, len(items) - 1, MAX_ITEMS).round().astype(np.int64)]
    sums = np.concatenate(
        [np.stack([a.total for a in anchors]) if anchors else np.zeros((0, vectors.shape[1])), vectors[items]]
    ).astype(np.float64)
    counts = np.concatenate([[a.count for a in anchors], np.ones(len(items))])
    of_item = average_linkage(sums, counts, len(anchors), config.max_speakers, config.threshold, within)
    k = int(of_item.max()) + 1
    centroids = np.eye(k)[of_item].T @ sums
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    out = np.empty(n, np.int64)
    for at in range(0, n, _BLOCK):  # the votes a block of segments at a time: a long job's stay small
        block = slice(at, min(n, at + _BLOCK))
        parts = np.concatenate(partials[block])
        owner = np.repeat(np.arange(block.stop - at), [len(p) for p in partials[block]])
        nearest = np.argmax(parts @ centroids.T, axis=1)
        votes = np.bincount(owner * k + nearest, minlength=(block.stop - at) * k).reshape(-1, k)
        # the most votes; among those, the segment's own mean embedding nearest
        sims = np.where(votes == votes.max(axis=1, keepdims=True), vectors[block] @ centroids.T, -np.inf)
        out[block] = np.argmax(sims, axis=1)
    return out


def label_all(embeddings: Sequence[Embedding], durations_ms: Sequence[int], config: ClusterConfig) -> list[int]:
    """Every segment's speaker label, 1.. in order of first appearance, from all of them at once
    (the whole file in hand: a merge must also pass ``Within``, calibrated on the file's own voices)."""
    if not embeddings:
        return []
    vectors = np.stack([e.vector for e in embeddings])
    durations = np.asarray(durations_ms, np.float64)
    clusters = _cluster(vectors, [e.partials for e in embeddings], durations, config, within=Within())
    first: dict[int, int] = {}
    return [first.setdefault(int(c), len(first) + 1) for c in clusters]


@dataclass
class _Seen:
    segment_id: int
    embedding: Embedding
    duration_ms: int
    label: int  # as last told


class OnlineSpeakers:
    """A stream's speakers, its segments given in order (``assign``). Not thread-safe: one stream's."""

    def __init__(self, config: ClusterConfig, window: int = WINDOW) -> None:
        self.config = config
        self._window_size = window
        self._window: collections.deque[_Seen] = collections.deque()
        self._anchors: dict[int, Anchor] = {}  # label -> its settled segments

    @property
    def count(self) -> int:
        """Speakers told apart so far."""
        return len(set(self._anchors) | {s.label for s in self._window})

    def assign(self, segment_id: int, emb: Embedding, duration_ms: int) -> tuple[int, tuple[tuple[int, int], ...]]:
        """The segment's label, and the revisions of earlier segments' labels it brings, each
        (segment id, its new label), in segment order."""
        seen = _Seen(segment_id, emb, max(duration_ms, 1), 0)
        self._window.append(seen)
        if len(self._window) > self._window_size:
            self._settle(self._window.popleft())
        window = list(self._window)
        labels = list(self._anchors)
        clusters = _cluster(
            np.stack([s.embedding.vector for s in window]),
            [s.embedding.partials for s in window],
            np.array([s.duration_ms for s in window], np.float64),
            self.config,
            [self._anchors[label] for label in labels],
        )
        names = self._names(window, clusters, labels)
        revised = []
        for s, c in zip(window, clusters, strict=True):
            if s is not seen and names[c] != s.label:
                revised.append((s.segment_id, names[c]))
            s.label = names[c]
        return seen.label, tuple(revised)

    def nearest(self, emb: Embedding) -> int | None:
        """The told speaker whose voice ``emb`` is most alike, at least ``config.threshold`` alike
        (each speaker's mean over its segments told so far and its settled ones); None: a voice
        not heard yet, or none told. A guess that assigns nothing (``assign`` labels the segment
        when its turn comes): a conversation leans on it before the segment's result is out."""
        totals: dict[int, np.ndarray] = {label: a.total.astype(np.float64) for label, a in self._anchors.items()}
        for s in self._window:
            if s.label:
                v = s.embedding.vector.astype(np.float64)
                totals[s.label] = totals[s.label] + v if s.label in totals else v
        if not totals:
            return None
        labels = list(totals)
        centroids = np.stack([totals[label] for label in labels])
        centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
        v = emb.vector.astype(np.float64)
        sims = centroids @ (v / max(float(np.linalg.norm(v)), 1e-12))
        best = int(np.argmax(sims))
        return labels[best] if sims[best] >= self.config.threshold else None

    def _names(self, window: list[_Seen], clusters: np.ndarray, anchored: list[int]) -> dict[int, int]:
        """Each cluster's label: an anchor's own; else the told label most of its segments' speech
        carries (greedy, largest first), else the lowest free one."""
        names = {c: label for c, label in enumerate(anchored)}
        overlap: dict[tuple[int, int], int] = collections.Counter()
        for s, c in zip(window, clusters, strict=True):
            if s.label and int(c) not in names:
                overlap[int(c), s.label] += s.duration_ms
        taken = set(names.values())
        for (c, label), _ in sorted(overlap.items(), key=lambda kv: (-kv[1], kv[0])):
            if c not in names and label not in taken:
                names[c] = label
                taken.add(label)
        free = (label for label in range(1, MAX_SPEAKERS + 1) if label not in taken)
        for c in sorted(set(clusters.tolist())):
            if c not in names:
                names[c] = next(free)
        return names

    def _settle(self, s: _Seen) -> None:
        """``s`` leaves the window: its label is final, and its voice joins its speaker's anchor."""
        a = self._anchors.get(s.label)
        v = s.embedding.vector.astype(np.float64)
        self._anchors[s.label] = Anchor(v, 1) if a is None else Anchor(a.total + v, a.count + 1)
