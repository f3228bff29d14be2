"""Online clustering of a stream's voice embeddings into speakers: labels stable over the stream.

Each segment's embedding (``encoder.Embedding``) is compared, by cosine similarity, with the
centroids of the speakers heard so far, in segment order: it joins the most similar when that
similarity reaches ``threshold``; else it starts a new speaker while the stream has fewer than
``max_speakers`` (and the segment is long enough to trust its voice: ``min_new_ms``); else it joins
the most similar anyway. A segment holding two voices gets one label: its partials (1.6 s each)
vote for their nearest speaker and the majority wins (the segment's own mean embedding breaks a
tie); its words carry that label. A joined speaker's centroid moves to the mean of its segments'
embeddings, weighted by length, so early labels stay put. Labels are 1, 2, ... in order of first
appearance. Pure and synchronous; one per stream, on the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from translate_svc.speakers.encoder import Embedding

#: the most speakers one stream may ask to be told apart
MAX_SPEAKERS = 8
#: cosine similarity at which a segment's voice is a known speaker's (tuned on ../shared/audio:
#: docs/performance.md, "Speaker labels")
DEFAULT_THRESHOLD = 0.7
#: a segment shorter than this never starts a new speaker (its embedding is too noisy)
DEFAULT_MIN_NEW_MS = 1000


@dataclass(frozen=True)
class ClusterConfig:
    max_speakers: int = 2
    threshold: float = DEFAULT_THRESHOLD
    min_new_ms: int = DEFAULT_MIN_NEW_MS

    def __post_init__(self) -> None:
        if not 1 <= self.max_speakers <= MAX_SPEAKERS:
            raise ValueError(f"max_speakers is {self.max_speakers}: use 1..{MAX_SPEAKERS}")


class OnlineSpeakers:
    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self._sums: list[np.ndarray] = []  # per speaker: length-weighted sum of its embeddings

    @property
    def count(self) -> int:
        return len(self._sums)

    def _centroids(self) -> np.ndarray:
        c = np.stack(self._sums)
        out: np.ndarray = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
        return out

    def assign(self, emb: Embedding, duration_ms: int) -> int:
        """The segment's speaker label (1-based); the speaker's centroid takes the segment in."""
        cfg = self.config
        if not self._sums:
            return self._new(emb, duration_ms)
        centroids = self._centroids()
        sims = centroids @ emb.vector
        best = int(np.argmax(sims))
        if sims[best] < cfg.threshold and self.count < cfg.max_speakers and duration_ms >= cfg.min_new_ms:
            return self._new(emb, duration_ms)
        votes = np.bincount(np.argmax(emb.partials @ centroids.T, axis=1), minlength=self.count)
        top = np.flatnonzero(votes == votes.max())
        label = best if best in top else int(top[np.argmax(sims[top])])
        self._sums[label] = self._sums[label] + emb.vector * max(duration_ms, 1)
        return label + 1

    def _new(self, emb: Embedding, duration_ms: int) -> int:
        self._sums.append(emb.vector * max(duration_ms, 1))
        return len(self._sums)
