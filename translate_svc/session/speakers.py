"""One stream's speaker labels: each closed segment's voice embedded off the event loop as it
closes, then labelled in segment order as its result goes out (``JobTracker.emit_ready`` waits for
the label), so the online clustering sees segments in the stream's order and a label, once given,
never changes. A segment labelled by its majority voice (``speakers/cluster.py``); its transcript's
words carry the segment's label. Event loop only; the embedding runs on the ear's speaker pool
(``ear.py``: its own few threads, never the loop's default executor, which clip decodes and
imports share; issue 87 J1).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from concurrent.futures import Executor

from translate_svc.speakers.cluster import ClusterConfig, OnlineSpeakers
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
        self._speakers = OnlineSpeakers(ClusterConfig(max_speakers=max_speakers))
        self._on_ready = on_ready  # a segment's embedding is back: its result may go out
        self._pending: dict[int, tuple[asyncio.Future[Embedding], int]] = {}

    def segment_closed(self, seg: Segment) -> None:
        """Start embedding ``seg``'s voice (on the speaker pool)."""
        fut = asyncio.get_running_loop().run_in_executor(self._pool, self._encoder.embed, seg.samples)
        fut.add_done_callback(lambda _: self._on_ready())
        self._pending[seg.segment_id] = (fut, seg.end_ms - seg.start_ms)

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
        speaker = self._speakers.assign(fut.result(), duration_ms)
        transcript = result.transcript
        if transcript is not None and transcript.words:
            words = tuple(dataclasses.replace(w, speaker=speaker) for w in transcript.words)
            transcript = dataclasses.replace(transcript, words=words)
        return dataclasses.replace(result, speaker=speaker, transcript=transcript)

    def drop(self) -> None:
        for fut, _ in self._pending.values():
            fut.cancel()
        self._pending.clear()
        self._on_ready = _nothing


def _nothing() -> None:
    """A dropped labeller's ``on_ready``."""
