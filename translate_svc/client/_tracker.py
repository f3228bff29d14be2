"""Which events of a stream reach the caller, across the calls of a resumed stream (pure).

A resumed call repeats some of what the lost call said: the audio after the last final result is
sent again, so its speech events, live captions and (after a crash) even segments the caller
already has may come again. The tracker lets each through once:

- a segment whose id was delivered is dropped (ids go 0, 1, 2... across calls);
- a live caption of a segment whose final was delivered is dropped;
- speech events alternate started/ended with non-decreasing offsets: a repeat is dropped.

It also knows where a lost stream resumes: the end of the last final result, or the drain's
``resume_offset_ms`` when a server handed the stream over. A segment that came back UNAVAILABLE
(its server's model worker died) is delivered but does not count as done: the resumed call
translates its span again, under a later id.
"""

from __future__ import annotations

from translate_svc.client.types import Interim, Segment, SpeechEvent, SpeechEventType


class StreamTracker:
    def __init__(self) -> None:
        #: the id the next segment must have (every smaller one was delivered)
        self.next_segment_id = 0
        #: audio before this (ms, original timeline) produced every result it will: resume here
        self.committed_ms = 0
        self.speech_open = False
        self._last_speech_ms = -1

    @property
    def resume_offset_ms(self) -> int:
        return self.committed_ms

    def segment(self, seg: Segment) -> bool:
        """True: deliver it (new); False: a repeat from a resumed call."""
        if seg.segment_id < self.next_segment_id:
            return False
        self.next_segment_id = seg.segment_id + 1
        if seg.error is None or seg.error.code != "UNAVAILABLE":
            self.committed_ms = max(self.committed_ms, seg.end_ms)
        return True

    def interim(self, caption: Interim) -> bool:
        return caption.segment_id >= self.next_segment_id

    def speech(self, ev: SpeechEvent) -> bool:
        started = ev.type is SpeechEventType.STARTED
        if ev.offset_ms < self._last_speech_ms or started == self.speech_open:
            return False
        self.speech_open = started
        self._last_speech_ms = ev.offset_ms
        return True

    def drained(self, resume_offset_ms: int) -> None:
        """A server ended the call with DRAINING: everything before ``resume_offset_ms`` is done."""
        self.committed_ms = max(self.committed_ms, resume_offset_ms)

    def progress(self) -> tuple[int, int]:
        """A marker that changes whenever the stream moved on (for counting resumes in a row)."""
        return self.next_segment_id, self.committed_ms
