"""Asterisk AudioSocket's TCP port (``phone.audiosocket_port``): one call per connection, its frames
through ``audiosocket.py``, the call through the stream core (``loop.PhoneCall``).

Asterisk does not time what it is sent on AudioSocket: we are the player. ``PacedOutlet`` sends one
20 ms audio frame per 20 ms slot from the call's first audio frame on, the translation's speech
when there is some and silence when there is none, never ahead of its slot (a wake late by less
than ``playout.CATCH_UP_S`` sends the slots it missed; a slot later than that is skipped, not made
up in a long burst); a mark is played when the frame with the end of its speech has gone out.
``SlotClock`` is the one timer of the process's AudioSocket calls: it wakes on one 20 ms grid of
the loop's monotonic clock and writes every due call's frames, so 50 calls cost one wake per
20 ms, not 50 tasks each woken on its own. A peer that stops reading is found by what waits in
our socket's buffer (the kernel's send buffer is set small): past ``phone.max_held_s`` of frames
the call ends. AudioSocket has no token: every call is the default tenant's (bind the port to a
private network). Event loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
from collections.abc import AsyncIterator, Callable

from translate_svc.errors import ServiceError
from translate_svc.observability import metrics
from translate_svc.session.manager import SessionManager
from translate_svc.settings import PhoneSettings
from translate_svc.transport.calls import call_info
from translate_svc.transport.phone.audiosocket import AudioSocketFraming, frame
from translate_svc.transport.phone.call import FRAME_MS, CallCodec
from translate_svc.transport.phone.loop import Caller, PhoneCall
from translate_svc.transport.phone.pairs import Pairs
from translate_svc.transport.phone.playout import EARLY_S, FramePacer, SpeechQueue

logger = logging.getLogger(__name__)

#: the kernel's send buffer of a call's socket: about a second of 48 kHz frames; what waits past
#: it is ours to count
SEND_BUFFER_BYTES = 32 * 1024
READ_BYTES = 16 * 1024
FRAME_S = FRAME_MS / 1000


class SlotClock:
    """The one timer of a process's paced calls: wakes on a grid of ``frame_s`` steps of the loop's
    monotonic clock (from the first call of a busy spell) and has every member send the frames now
    due. A call's slots start on the grid, so each wake serves every call. Event loop only."""

    def __init__(self, frame_s: float = FRAME_S) -> None:
        self.frame_s = frame_s
        self._members: dict[PacedOutlet, None] = {}
        self._origin = 0.0
        self._timer: asyncio.TimerHandle | None = None
        #: wakes so far (for tests: one per grid step, however many calls)
        self.wakes = 0

    def join(self, outlet: PacedOutlet) -> float:
        """Add a call; the time of its first slot (the grid step now due, or the next one)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if not self._members:
            self._origin = now
        self._members[outlet] = None
        start = self._origin + math.ceil((now - EARLY_S - self._origin) / self.frame_s) * self.frame_s
        if self._timer is None:
            self._timer = loop.call_at(start, self._tick)
        return start

    def leave(self, outlet: PacedOutlet) -> None:
        self._members.pop(outlet, None)
        if not self._members and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        self.wakes += 1
        for outlet in list(self._members):
            try:
                outlet.tick(now)
            except Exception:  # one call's failure must not stop every other call's frames
                logger.exception("AudioSocket pacing failed; the call is ended")
                self.leave(outlet)
                outlet.fail("the pacer failed")
        if self._members:
            step = math.floor((now + EARLY_S - self._origin) / self.frame_s) + 1
            self._timer = loop.call_at(self._origin + step * self.frame_s, self._tick)
        else:
            self._timer = None


class PacedOutlet:
    """A call's speech, one 20 ms frame per slot (an ``Outlet``). Event loop only."""

    def __init__(
        self,
        framing: AudioSocketFraming,
        writer: asyncio.StreamWriter,
        clock: SlotClock,
        *,
        max_held_s: float,
        on_played: Callable[[str], None],
        on_stall: Callable[[str], None],
    ) -> None:
        self._framing = framing
        self._writer = writer
        self._clock = clock
        self._max_held_s = max_held_s
        self._on_played = on_played
        self._on_stall = on_stall
        self.queue = SpeechQueue()
        self.codec: CallCodec | None = None
        self.pacer: FramePacer | None = None
        self.speech_frames = 0
        self.late_max_s = 0.0
        self.stalled = False
        self._held_limit = 0

    def begin(self, codec: CallCodec) -> None:
        self.codec = codec
        self._held_limit = int(self._max_held_s * 1000 / FRAME_MS) * (codec.frame_bytes + 3)
        self.pacer = FramePacer(self._clock.join(self), self._clock.frame_s)

    def speech(self, audio: bytes) -> None:
        self.queue.put(audio)
        assert self.codec is not None
        if self.codec.seconds(self.queue.held_bytes) > self._max_held_s:
            self._stall(f"more than {self._max_held_s:g} s of speech waited for its slots (phone.max_held_s)")

    def mark(self, name: str) -> None:
        self.queue.put_mark(name)

    def played(self, name: str) -> None:
        """(We play the marks ourselves: the queue knows what is unplayed.)"""

    def clear(self) -> float:
        assert self.codec is not None
        return self.codec.seconds(self.queue.clear())

    def unplayed(self) -> float:
        return self.codec.seconds(self.queue.held_bytes) if self.codec is not None else 0.0

    def pause(self, paused: bool) -> None:
        """(AudioSocket has no flow control.)"""

    def _stall(self, why: str) -> None:
        if not self.stalled:
            self.stalled = True
            self._clock.leave(self)
            self._on_stall(why)

    def fail(self, why: str) -> None:
        self._stall(why)

    def tick(self, now: float) -> None:
        """The clock's wake: a frame for each slot now due (``SlotClock``)."""
        codec, pacer, transport = self.codec, self.pacer, self._writer.transport
        if codec is None or pacer is None or self.stalled:
            return
        if transport.is_closing():
            self._clock.leave(self)
            return
        n = codec.frame_bytes
        for late in pacer.slots(now):
            speech, passed = self.queue.take(n)
            if speech:
                self.speech_frames += 1
            pcm = speech + codec.silence(n - len(speech))
            if transport.get_write_buffer_size() > self._held_limit:
                self._stall(f"the peer stopped reading: over {self._max_held_s:g} s of frames wait in its socket")
                return
            self._writer.write(self._framing.audio_frame(pcm))
            self.late_max_s = max(self.late_max_s, late)
            metrics.phone_frame_late(late)
            for name in passed:
                self._on_played(name)

    def fields(self) -> dict[str, int | float]:
        """The call's frame counts, read once its stream has ended: the outlet leaves the clock
        first, so no frame is written after it is counted (the access line equals what was sent)."""
        self._clock.leave(self)
        pacer = self.pacer
        if pacer is None:
            return {}
        return {
            "frame_slots": pacer.k,
            "frames_sent": pacer.sent,
            "frames_speech": self.speech_frames,
            "frames_skipped": pacer.skipped,
            "frame_late_max_ms": round(1000 * self.late_max_s, 1),
        }

    async def close(self) -> None:
        self._clock.leave(self)


class AudioSocketServer:
    """The AudioSocket port. Event loop only."""

    def __init__(
        self,
        manager: SessionManager,
        settings: PhoneSettings,
        caller: Caller,
        pairs: Pairs[PhoneCall],
        *,
        reuse_port: bool = False,
    ) -> None:
        self._m = manager
        self.settings = settings
        self._caller = caller
        self._pairs = pairs
        self._reuse_port = reuse_port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        #: the one pacer of this process's AudioSocket calls
        self.clock = SlotClock()
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(
            self._handle, host, port, reuse_port=self._reuse_port or None, limit=READ_BYTES
        )
        self.port = self._server.sockets[0].getsockname()[1]

    def stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()

    async def stop(self) -> None:
        self.stop_listening()
        for w in list(self._writers):
            w.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            await self._call(reader, writer)
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            writer.close()

    async def _call(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        peer = writer.get_extra_info("peername")
        call = call_info(None, "phone_audiosocket", f"{peer[0]}:{peer[1]}" if peer else "")
        try:
            admission = self._m.admit_stream(self._caller.tenant)
        except ServiceError as e:
            logger.info("AudioSocket call refused: %s", e, extra={"request_id": call.request_id})
            writer.write(frame(0xFF, b"\x04") + frame(0x00))  # an error, then the hang-up
            return
        framing = AudioSocketFraming(min(self.settings.max_message_bytes, 0xFFFF))
        phone_call = PhoneCall(self._m, self.settings, framing, {}, self._caller, call, admission, pairs=self._pairs)
        outlet = PacedOutlet(
            framing,
            writer,
            self.clock,
            max_held_s=self.settings.max_held_s,
            on_played=phone_call.played,
            on_stall=phone_call.end,
        )
        phone_call.outlet = outlet
        try:
            await phone_call.run(_incoming(reader))
        finally:
            admission.release()
            await outlet.close()
        if not phone_call.hung_up and not outlet.stalled and not writer.transport.is_closing():
            writer.write(framing.hangup())  # the call is over on our side: Asterisk hangs up
            with contextlib.suppress(ConnectionError, TimeoutError):
                async with asyncio.timeout(1.0):
                    await writer.drain()
        elif outlet.stalled:
            writer.transport.abort()


async def _incoming(reader: asyncio.StreamReader) -> AsyncIterator[str | bytes]:
    while True:
        try:
            data = await reader.read(READ_BYTES)
        except ConnectionError:
            return
        if not data:
            return
        yield data
