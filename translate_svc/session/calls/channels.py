"""A stream whose channels are parties (``StreamConfig.separate_channels``): a stereo PCM stream of an
agent on one channel and a caller on the other, each channel heard and translated on its own, as
if each were streamed alone, its results labelled with their channel (and as their speaker).

``ChannelStreams`` is one ``StreamSession`` per channel behind the face the stream driver uses of
a session: every message goes to each channel's session, which decodes its own channel
(``Timeline``'s channel pick); their events come out as one stream's (``ChannelOrder``). Each
channel is a stream of its tenant: it holds a stream slot of its own and both channels' seconds
are charged (as ``Translate``'s separate channels are). Event loop only.

How the channels' events become one stream's:

- **Ids**: a segment gets the stream's next id when it is first named, by its speech's start
  (``SpeechEvent``, its channel's first segment of the region), a caption, a commit or its result;
  so ids follow the order the channels' speech was heard beginning: at real time the order it
  began; audio sent faster than real time to a busy server can be heard further on one channel
  than the other (each channel's session runs on its own), and then a start later in the audio may
  take the earlier id (seen in a loaded `make test`: a burst of 11 s, starts 320 ms apart). A
  caption or commit may name speech that is then discarded (shorter than ``min_speech_ms``, e.g.
  the rest of a region the length cap cut): its channel's ``SpeechEvent`` end says which ids its
  region used, and an id named past them is dropped (no result will carry it; the next segment of
  that channel takes a new one). A caption of a channel's speech before its start is sure
  (``min_speech_ms``) is not sent: a blip's would name an id that only the channel's next speech
  fills, holding the other channel back.
- **Order**: results go out in id order, so in the order their speech was heard beginning: a
  channel's result waits for the other channel's speech heard beginning before it (at most a
  segment: ``max_segment_ms``, and its model time). Speech events, captions and commits go out as
  they come, each naming its channel.
- **The end**: one ``StreamEnded`` once every channel's came (its segments the channels' sum, its
  limit the first given), a server's drain notice once.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable, Sequence

from translate_svc.errors import InvalidInput, ServiceError
from translate_svc.session.admission import Admission
from translate_svc.session.events import Draining, Resume, SpeechEvent, StreamConfig, StreamEnded, StreamEvent
from translate_svc.session.manager import SessionManager
from translate_svc.session.stream.hooks import StreamHooks
from translate_svc.session.stream.session import StreamSession
from translate_svc.session.stream.timeline import Timeline
from translate_svc.session.tenants.tenant import Tenant
from translate_svc.types import (
    AudioEncoding,
    AudioFormat,
    Commit,
    InterimResult,
    SegmentResult,
    TranslationTask,
)

#: the encodings whose channels a stream can take apart (Opus packets are decoded downmixed)
SEPARABLE = (AudioEncoding.LINEAR16, AudioEncoding.FLOAT32, AudioEncoding.MULAW, AudioEncoding.ALAW)


#: speaker labels asked beside separate channels (a stream's or a clip's), refused
SPEAKERS_BESIDE_CHANNELS = (
    "speakers and separate channels are both set: each channel is its own speaker (labelled with its channel); "
    "drop speakers"
)


def check_separable(fmt: AudioFormat, *, resume: Resume | None, room: bool, speakers: int) -> None:
    """What a stream of separate channels cannot take, refused saying what to send instead."""
    if fmt.encoding not in SEPARABLE:
        raise InvalidInput(
            f"channel_mode SEPARATE takes raw PCM (LINEAR16, FLOAT32, MULAW or ALAW) of 2 channels, not "
            f"{fmt.encoding.name}: send the channels interleaved as PCM, or mix them (MIXED)"
        )
    if fmt.channels != 2:
        raise InvalidInput(
            f"channel_mode SEPARATE needs 2 interleaved channels; the format says {fmt.channels}: set "
            "format.channels to 2, or send MIXED"
        )
    if speakers:
        raise InvalidInput(SPEAKERS_BESIDE_CHANNELS)
    if room:
        raise InvalidInput("a room's speaker is one voice: a stream of separate channels cannot speak into a room")
    if resume is not None:
        raise InvalidInput(
            "a stream of separate channels cannot be resumed: start a new stream (resume takes one channel's stream)"
        )


class ChannelOrder:
    """The channels' events as one stream's: ids given in the order segments are named, results in
    id order (module docstring). Pure: events in, events out."""

    def __init__(self, channels: int) -> None:
        self.channels = channels
        #: the stream's next segment id
        self.next_id = 0
        self._ids: dict[tuple[int, int], int] = {}  # (channel, its own id) -> the stream's id
        self._out = 0  # the next id whose result goes out
        self._held: dict[int, SegmentResult] = {}  # results waiting for an earlier id's
        self._dropped: set[int] = set()  # ids named for speech that was then discarded
        self._ended: dict[int, StreamEnded] = {}
        self._speaking: set[int] = set()  # channels between a SpeechEvent start and its end
        self._drained = False

    def id_of(self, channel: int, own: int) -> int:
        """The stream's id for ``channel``'s segment ``own`` (given now if it has none)."""
        key = (channel, own)
        got = self._ids.get(key)
        if got is None:
            got = self._ids[key] = self.next_id
            self.next_id += 1
        return got

    def first_id(self, firsts: Sequence[int]) -> int:
        """The stream's first segment that a change applies to, from each channel's own (by channel)."""
        return min(self._ids.get((c, own), self.next_id) for c, own in enumerate(firsts, 1))

    def take(self, channel: int, ev: StreamEvent) -> list[StreamEvent]:
        """``channel``'s next event -> what goes out now, in order."""
        if isinstance(ev, SegmentResult):
            sid = self.id_of(channel, ev.segment_id)
            del self._ids[(channel, ev.segment_id)]
            self._held[sid] = dataclasses.replace(ev, segment_id=sid, channel=channel, speaker=channel)
            return self._release()
        if isinstance(ev, SpeechEvent):
            if ev.started:
                self._speaking.add(channel)
                first = self.id_of(channel, ev.next_segment_id)
                return [dataclasses.replace(ev, next_segment_id=first, channel=channel)]
            self._speaking.discard(channel)
            self._drop_after(channel, ev.next_segment_id)  # the region used ids before it only
            return [dataclasses.replace(ev, next_segment_id=self.next_id, channel=channel), *self._release()]
        if isinstance(ev, InterimResult) and channel not in self._speaking:
            return []  # speech not yet sure to be kept (a blip may be discarded): no id is given for it
        if isinstance(ev, InterimResult | Commit):
            return [dataclasses.replace(ev, segment_id=self.id_of(channel, ev.segment_id), channel=channel)]
        if isinstance(ev, Draining):
            if self._drained:
                return []
            self._drained = True
            return [ev]
        if isinstance(ev, StreamEnded):
            self._ended[channel] = ev
            self._drop_after(channel, -1)
            if len(self._ended) < self.channels:
                return self._release()
            return [*self._release(), self._end()]
        return [ev]

    @property
    def held(self) -> int:
        """Results waiting for an earlier segment's."""
        return len(self._held)

    def _drop_after(self, channel: int, last: int) -> None:
        """``channel``'s ids from ``last`` on name no segment (its speech was discarded, or it ended)."""
        for key in [k for k in self._ids if k[0] == channel and k[1] >= last]:
            self._dropped.add(self._ids.pop(key))

    def _release(self) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        while True:
            if self._out in self._dropped:
                self._dropped.discard(self._out)
            elif self._out in self._held:
                out.append(self._held.pop(self._out))
            else:
                return out
            self._out += 1

    def _end(self) -> StreamEnded:
        ends = [self._ended[c] for c in sorted(self._ended)]
        first = ends[0]
        return dataclasses.replace(
            first,
            segments_total=sum(e.segments_total for e in ends),
            limit=next((e.limit for e in ends if e.limit is not None), None),
            resume_offset_ms=min(e.resume_offset_ms for e in ends),
        )


class ChannelStreams:
    """One stream of separate channels: a ``StreamSession`` per channel (1-based: ``sessions[0]``
    hears channel 1) behind the face the stream driver uses. Event loop only."""

    def __init__(self, sessions: Sequence[StreamSession]) -> None:
        self.sessions = tuple(sessions)
        first = self.sessions[0]
        #: the stream's names: its first channel's (each channel's session has its own too)
        self.session_id = first.session_id
        self.resume_token = ""  # not resumable (``check_separable``)
        self.resume: Resume | None = None
        self.fmt = first.fmt
        self.vad_settings = first.vad_settings
        self.interim_interval_ms = first.interim_interval_ms
        self.notices = first.notices
        self.order = ChannelOrder(len(self.sessions))
        self.jobs = _Jobs(self)

    @property
    def task(self) -> TranslationTask:
        return self.sessions[0].task

    @property
    def timeline(self) -> Timeline:
        """Every channel's timeline is the stream's (each gets every message)."""
        return self.sessions[0].timeline

    @property
    def audio_received_ms(self) -> int:
        return self.sessions[0].audio_received_ms

    @property
    def heard_ms(self) -> int:
        """Each channel's audio, as its tenant is charged for it (two channels: twice the time)."""
        return sum(s.audio_received_ms for s in self.sessions)

    @property
    def may_hold_speech(self) -> bool:
        return any(s.may_hold_speech for s in self.sessions)

    async def feed(self, data: bytes, timestamp: int | None = None) -> None:
        for s in self.sessions:
            await s.feed(data, timestamp)

    async def feed_packet(self, data: bytes, timestamp: int) -> None:
        for s in self.sessions:
            await s.feed_packet(data, timestamp)

    async def flush(self) -> None:
        for s in self.sessions:
            await s.flush()

    async def close_stalled(self) -> bool:
        closed = [await s.close_stalled() for s in self.sessions]
        return any(closed)

    async def finish(self, limit: ServiceError | None = None) -> None:
        await asyncio.gather(*(s.finish(limit) for s in self.sessions))

    def retarget(self, task: TranslationTask) -> int:
        return self.order.first_id([s.retarget(task) for s in self.sessions])

    async def answer(self, ev: StreamEvent) -> None:
        """An event for the reader now (an update's answer), on the first channel's queue."""
        await self.sessions[0].answer(ev)

    def fail(self, error: ServiceError) -> None:
        for s in self.sessions:
            s.fail(error)

    def abort(self) -> None:
        for s in self.sessions:
            s.abort()

    def close(self) -> None:
        for s in self.sessions:
            s.close()

    async def events(self, on_read: Callable[[], None] | None = None) -> AsyncIterator[StreamEvent]:
        """The channels' events as one stream's (``ChannelOrder``), each channel's read one event
        ahead at most (its session's backpressure holds: an event is read when it can go out or
        must wait in order); ends after the one ``StreamEnded`` (raising its limit). A channel's
        failure is the stream's. ``on_read``: called as each channel's event is read, whether it
        goes out now or waits in order (a job's feed waits for its sessions' results to be read:
        one held here is read, and the audio that lets an earlier one finish must come)."""
        readers = [s.events().__aiter__() for s in self.sessions]
        asked: dict[asyncio.Future[StreamEvent], int] = {}

        def ask(channel: int) -> None:
            asked[asyncio.ensure_future(anext(readers[channel - 1]))] = channel

        for channel in range(1, len(readers) + 1):
            ask(channel)
        try:
            while asked:
                done, _ = await asyncio.wait(asked, return_when=asyncio.FIRST_COMPLETED)
                for got in sorted(done, key=asked.__getitem__):
                    channel = asked.pop(got)
                    ev = got.result()  # a channel's failure ends the stream
                    if on_read is not None:
                        on_read()
                    if not isinstance(ev, StreamEnded):
                        ask(channel)  # (after its StreamEnded a channel's events raise its limit or end)
                    for out in self.order.take(channel, ev):
                        yield out
                        if isinstance(out, StreamEnded):
                            if out.limit is not None:
                                raise out.limit
                            return
        finally:
            for got in asked:
                got.cancel()
            await asyncio.gather(*asked, return_exceptions=True)


async def open_channels(
    manager: SessionManager,
    config: StreamConfig,
    task: TranslationTask,
    tenant: Tenant,
    admission: Admission,
    hooks: StreamHooks,
) -> ChannelStreams:
    """A session per channel of ``config``'s stream (checked: ``check_separable``), the first on
    the call's ``admission``, each other on a stream slot of its own (a channel is a stream of its
    tenant's); all closed again if one cannot open."""
    opened: list[StreamSession] = []
    try:
        for channel in range(config.format.channels):
            opened.append(
                await manager.open_stream(
                    config.format,
                    task,
                    config.vad,
                    interim_interval_ms=config.interim_interval_ms,
                    tenant=tenant,
                    admission=admission if channel == 0 else None,
                    hooks=hooks,
                    channel=channel,
                )
            )
    except BaseException:
        for session in opened:
            session.close()
        raise
    return ChannelStreams(opened)


class _Jobs:
    """What the driver reads of a stream's segments: whether its end is queued, its next id."""

    def __init__(self, streams: ChannelStreams) -> None:
        self._streams = streams

    @property
    def ended(self) -> bool:
        return all(s.jobs.ended for s in self._streams.sessions)

    @property
    def next_id(self) -> int:
        return self._streams.order.next_id
