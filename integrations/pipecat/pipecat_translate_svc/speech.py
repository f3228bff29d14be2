"""The translated speech as Pipecat TTS frames: one context per segment and target
(``TTSStartedFrame``, ``TTSAudioRawFrame`` pieces, ``TTSStoppedFrame``), routed to the output
transport's destinations, and none of it once its turn was interrupted.

Kept apart from the service, which decides *which* targets speak; this decides how their speech
goes out, under the one lock that orders speech pushes against interruptions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pipecat.frames.frames import Frame, TTSAudioRawFrame, TTSStartedFrame, TTSStoppedFrame

from pipecat_translate_svc.calls import Call
from translate_svc.client import Translation

#: translated speech is pushed in frames of this much audio (the output transport re-chunks it)
SPEECH_FRAME_S = 0.1


class SpeechOutput:
    """Pushes translated speech downstream (``push``: the service's ``push_frame``).

    Event loop only. ``lock`` orders speech pushes against interruptions: an interruption cannot
    come between the check of a piece and its push.
    """

    def __init__(
        self, push: Callable[[Frame], Awaitable[None]], audio_destinations: Mapping[str, str | None] | None
    ) -> None:
        self._push = push
        self._audio_destinations = audio_destinations
        self.lock = asyncio.Lock()  # speech pushes vs. interruptions
        #: translated speech not pushed because its turn was interrupted: pieces and milliseconds
        self.interrupted_pieces = 0
        self.interrupted_ms = 0

    async def interrupt(self, cut: Callable[[], None]) -> None:
        """An interruption: speech pushed from now on is checked against this cut (``cut``: marks
        the service's streams, as they are once the lock is held)."""
        async with self.lock:
            cut()

    def destination(self, target: str) -> str | None:
        return None if self._audio_destinations is None else self._audio_destinations.get(target)

    @staticmethod
    def _context_id(call: Call, segment_id: int, target: str) -> str:
        return f"translate-svc-{call.number}-{segment_id}-{target}"

    async def push(
        self,
        call: Call,
        segment_id: int,
        t: Translation,
        *,
        meta: dict[str, Any],
        end_ms: int | None = None,
        last: bool = True,
    ) -> None:
        """Push one piece of translated speech (a segment's, or a commit's chunk) unless its
        turn was interrupted; ``last`` ends its context with a ``TTSStoppedFrame``."""
        assert t.audio is not None
        pcm = t.pcm16().astype("<i2").tobytes()
        rate = t.sample_rate
        key = (segment_id, t.target)
        context_id = self._context_id(call, segment_id, t.target)
        destination = self.destination(t.target)
        step = max(2, int(rate * SPEECH_FRAME_S) * 2)
        for offset in range(0, len(pcm), step):
            async with self.lock:  # an interruption cannot come between the check and the push
                if call.interrupted(segment_id, end_ms):
                    self.interrupted_pieces += 1
                    self.interrupted_ms += (len(pcm) - offset) * 1000 // (2 * rate)
                    call.open.discard(key)
                    return
                if key not in call.open:
                    call.open.add(key)
                    started = TTSStartedFrame(context_id=context_id, append_to_context=False)
                    started.transport_destination = destination
                    await self._push(started)
                frame = TTSAudioRawFrame(pcm[offset : offset + step], rate, 1, context_id=context_id)
                frame.transport_destination = destination
                frame.metadata["translate_svc"] = meta
                await self._push(frame)
        if last:
            await self.close(call, segment_id, t.target)

    async def close(self, call: Call, segment_id: int, target: str | None) -> None:
        """``TTSStoppedFrame`` for the open speech of ``segment_id`` (one target or all)."""
        async with self.lock:
            for key in sorted(k for k in call.open if k[0] == segment_id and target in (None, k[1])):
                call.open.discard(key)
                stopped = TTSStoppedFrame(context_id=self._context_id(call, *key))
                stopped.transport_destination = self.destination(key[1])
                await self._push(stopped)
