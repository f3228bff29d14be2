"""Which events of a stream reach the caller, across the calls of a resumed stream (pure).

A resumed call repeats some of what the lost call said: the audio after the last final result is
sent again, so its speech events, live captions and (after a crash) even segments the caller
already has may come again. The tracker lets each through once:

- a segment whose id was delivered is dropped (ids go 0, 1, 2... across calls);
- a live caption of a segment whose final was delivered is dropped;
- a commit (simultaneous mode) of a segment whose final was delivered is dropped. The open
  segment's audio is sent again from its start, so a resumed call translates it again from its
  beginning: its commits start over. They are delivered, the first per target marked ``restart``
  (what the lost call committed of it was already heard and cannot be taken back; the segment's
  final result holds the resumed call's text);
- speech events alternate started/ended with non-decreasing offsets (on each channel of a stream
  of separate channels): a repeat is dropped.

It also knows where a lost stream resumes: the end of the last final result, or the drain's
``resume_offset_ms`` when a server handed the stream over. A segment that came back UNAVAILABLE
(its server's model worker died) is delivered but does not count as done: the resumed call
translates its span again, under a later id.
"""

from __future__ import annotations

import dataclasses

from translate_svc.client.types import Commit, Interim, Segment, SpeechEvent, SpeechEventType


class StreamTracker:
    def __init__(self) -> None:
        #: the id the next segment must have (every smaller one was delivered)
        self.next_segment_id = 0
        #: audio before this (ms, original timeline) produced every result it will: resume here
        self.committed_ms = 0
        #: per channel (0: the channels mixed; 1, 2: a stream of separate channels), whether its
        #: speech is open and the offset of its last speech event
        self._speech: dict[int, tuple[bool, int]] = {}
        #: (segment id, target) of open segments with commits delivered from the current call
        self._committed: set[tuple[int, str]] = set()
        #: the same from earlier calls: their next commit on this call starts the text over
        self._restarting: set[tuple[int, str]] = set()

    @property
    def resume_offset_ms(self) -> int:
        return self.committed_ms

    def segment(self, seg: Segment) -> bool:
        """True: deliver it (new); False: a repeat from a resumed call."""
        if seg.segment_id < self.next_segment_id:
            return False
        self.next_segment_id = seg.segment_id + 1
        self._committed = {k for k in self._committed if k[0] > seg.segment_id}
        self._restarting = {k for k in self._restarting if k[0] > seg.segment_id}
        if seg.error is None or seg.error.code != "UNAVAILABLE":
            self.committed_ms = max(self.committed_ms, seg.end_ms)
        return True

    def interim(self, caption: Interim) -> bool:
        return caption.segment_id >= self.next_segment_id

    def commit(self, c: Commit) -> Commit | None:
        """The commit to deliver (marked ``restart`` if it starts its segment over), or None: a repeat."""
        if c.segment_id < self.next_segment_id:
            return None
        key = (c.segment_id, c.target)
        self._committed.add(key)
        if key in self._restarting:
            self._restarting.discard(key)
            return dataclasses.replace(c, restart=True)
        return c

    def new_call(self) -> None:
        """A resumed call starts: the open segments' commits will start over on it."""
        self._restarting |= self._committed
        self._committed = set()

    @property
    def speech_open(self) -> bool:
        """Speech is open (on some channel)."""
        return any(open_ for open_, _ in self._speech.values())

    def speech(self, ev: SpeechEvent) -> bool:
        started = ev.type is SpeechEventType.STARTED
        open_, last_ms = self._speech.get(ev.channel, (False, -1))
        if ev.offset_ms < last_ms or started == open_:
            return False
        self._speech[ev.channel] = (started, ev.offset_ms)
        return True

    def drained(self, resume_offset_ms: int) -> None:
        """A server ended the call with DRAINING: everything before ``resume_offset_ms`` is done."""
        self.committed_ms = max(self.committed_ms, resume_offset_ms)

    def progress(self) -> tuple[int, int]:
        """A marker that changes whenever the stream moved on (for counting resumes in a row)."""
        return self.next_segment_id, self.committed_ms
