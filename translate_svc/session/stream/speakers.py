"""One stream's speaker labels: each closed segment's voice embedded off the event loop as it
closes, then labelled in segment order as its result goes out (``SegmentTracker.emit_ready`` waits for
the label), so the online clustering sees segments in the stream's order; a result also carries the
revisions of earlier segments' labels that its segment brought (``SegmentResult.speakers_revised``;
``speakers/cluster.py``). A segment labelled by its majority voice; its transcript's words carry
the segment's label.

A whole file in hand (a clip, a job: ``keep_all``) is labelled again once every segment is out,
over all of its segments at once (``relabel``: ``cluster.label_all``, on the speaker pool), which
no early segment can mislead. Event loop only; the embeddings and that clustering run on
the ear's speaker pool (``ear.py``: its own few threads, never the loop's default executor, which
clip decodes and imports share; security finding J1); a stream's clustering, bounded by
``cluster.WINDOW``, runs as its result goes out (under a millisecond a segment: docs/performance.md).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from concurrent.futures import Executor

from translate_svc.speakers.cluster import ClusterConfig, OnlineSpeakers, label_all
from translate_svc.speakers.encoder import Embedding, SpeakerEncoder
from translate_svc.types import Segment, SegmentResult

logger = logging.getLogger(__name__)


class SpeakerLabels:
    def __init__(
        self,
        max_speakers: int,
        on_ready: Callable[[], None],
        pool: Executor,
        encoder: SpeakerEncoder | None = None,
    ) -> None:
        """``pool``: where voices are embedded (``EarPools.speakers``)."""
        self._encoder = encoder or SpeakerEncoder.shared()
        self._pool = pool
        self._config = ClusterConfig(max_speakers=max_speakers)
        self._speakers = OnlineSpeakers(self._config)
        self._on_ready = on_ready  # a segment's embedding is back: its result may go out
        self._pending: dict[int, tuple[asyncio.Future[Embedding], int]] = {}
        #: each labelled segment's embedding and length in ms, by id, kept for ``relabel`` and
        #: ``take`` (None: not kept)
        self._all: dict[int, tuple[Embedding, int]] | None = None

    def keep_all(self) -> None:
        """The whole file is in hand (a clip, a job): keep every segment's embedding to label them
        all again at the end (``relabel``, or a job's ``take``). Called before the first segment closes."""
        self._all = {}

    def take(self, segment_id: int) -> tuple[Embedding, int] | None:
        """A kept segment's embedding and length (ms), no longer kept here (a job keeps it on disk:
        ``jobs/voices.py``); None when it has none (its embedding failed)."""
        return None if self._all is None else self._all.pop(segment_id, None)

    def segment_closed(self, seg: Segment) -> None:
        """Start embedding ``seg``'s voice (on the speaker pool)."""
        fut = asyncio.get_running_loop().run_in_executor(self._pool, self._encoder.embed, seg.samples)
        fut.add_done_callback(lambda _: self._on_ready())
        self._pending[seg.segment_id] = (fut, seg.end_ms - seg.start_ms)

    def embedding(self, segment_id: int) -> asyncio.Future[Embedding] | None:
        """``segment_id``'s embedding on its way (done or not); None once labelled, or never embedded."""
        entry = self._pending.get(segment_id)
        return None if entry is None else entry[0]

    def likely(self, emb: Embedding) -> int | None:
        """The told speaker this voice most likely is (``OnlineSpeakers.nearest``): a guess before
        the segment's turn to be labelled; None: a voice not heard yet."""
        return self._speakers.nearest(emb)

    def ready(self, segment_id: int) -> bool:
        """Whether ``segment_id``'s result may go out (its embedding is back, or it has none)."""
        entry = self._pending.get(segment_id)
        return entry is None or entry[0].done()

    def label(self, result: SegmentResult) -> SegmentResult:
        """``result`` with its speaker (and its words'); in segment order, once ``ready``."""
        entry = self._pending.pop(result.segment_id, None)
        if entry is None:
            return result
        fut, duration_ms = entry
        if fut.cancelled() or fut.exception() is not None:
            logger.error("embedding segment %d's voice failed", result.segment_id, exc_info=fut.exception())
            return result
        emb = fut.result()
        speaker, revised = self._speakers.assign(result.segment_id, emb, duration_ms)
        if self._all is not None:
            self._all[result.segment_id] = (emb, duration_ms)
        return _labelled(result, speaker, revised)

    async def relabel(self, results: list[SegmentResult]) -> list[SegmentResult]:
        """``results`` (all of a ``keep_all`` file's, out of ``label``) labelled over all their
        segments at once, on the speaker pool; no revisions (each label is final)."""
        kept = self._all or {}
        labels = await self.cluster_all([e for e, _ in kept.values()], [d for _, d in kept.values()])
        final = dict(zip(kept, labels, strict=True))
        return [_labelled(r, final[r.segment_id], ()) if r.segment_id in final else r for r in results]

    async def cluster_all(self, embeddings: list[Embedding], durations_ms: list[int]) -> list[int]:
        """``cluster.label_all`` at this stream's bound, on the speaker pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, label_all, embeddings, durations_ms, self._config)

    def drop(self) -> None:
        for fut, _ in self._pending.values():
            fut.cancel()
        self._pending.clear()
        self._on_ready = _nothing


def _labelled(result: SegmentResult, speaker: int, revised: tuple[tuple[int, int], ...]) -> SegmentResult:
    """``result`` with its speaker, its words', and the revisions its segment brought."""
    transcript = result.transcript
    if transcript is not None and transcript.words:
        words = tuple(dataclasses.replace(w, speaker=speaker) for w in transcript.words)
        transcript = dataclasses.replace(transcript, words=words)
    return dataclasses.replace(result, speaker=speaker, transcript=transcript, speakers_revised=revised)


def _nothing() -> None:
    """A dropped labeller's ``on_ready``."""
