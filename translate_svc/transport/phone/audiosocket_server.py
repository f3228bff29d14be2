"""Asterisk AudioSocket's TCP port (``phone.audiosocket_port``): one call per connection, its frames
through ``audiosocket.py``, the call through the stream core (``telephony.loop.PhoneCall``).

Asterisk does not time what it is sent on AudioSocket: we are the player. ``PacedOutlet`` is the
call's paced speech (``telephony.pacing.PacedSpeech``: one 20 ms audio frame per 20 ms slot of the
process's one ``SlotClock``, from the call's first audio frame on), each frame an AudioSocket audio
frame. A peer that stops reading is found by what waits in our socket's buffer (the kernel's send
buffer is set small): past ``phone.max_held_s`` of frames the call ends.

AudioSocket has no credentials, so the port is bounded on its own: it listens on
``phone.audiosocket_host`` (loopback unless set; start-up warns beyond it); every call is the
tenant ``phone.audiosocket_tenant``'s, whose caps and audio quota in the tokens file apply; at most
``phone.audiosocket_max_calls`` calls at once on the node (a counter of the node's shared
counters), so connections here cannot take every other tenant's streams; and a call whose peer
sends no audio frame for ``phone.audiosocket_input_timeout_s`` is ended (``InputDeadline``).
Refusals are logged at a bounded rate (``RefusalLog``). Event loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable

from translate_svc.errors import LimitReached, ServiceError
from translate_svc.session.manager import SessionManager
from translate_svc.session.tenants.tenant import NO_ROOMS, Tenant
from translate_svc.settings import PhoneSettings
from translate_svc.transport.calls import call_info
from translate_svc.transport.door import is_loopback
from translate_svc.transport.http.caller import Caller
from translate_svc.transport.phone.audiosocket import AudioSocketFraming, frame
from translate_svc.transport.refusal_log import RefusalLog
from translate_svc.transport.telephony.call import FRAME_MS, CallCodec
from translate_svc.transport.telephony.loop import PhoneCall
from translate_svc.transport.telephony.pacing import PacedSpeech, SlotClock
from translate_svc.transport.telephony.pairs import Pairs

logger = logging.getLogger(__name__)

#: the kernel's send buffer of a call's socket: about a second of 48 kHz frames; what waits past
#: it is ours to count
SEND_BUFFER_BYTES = 32 * 1024
READ_BYTES = 16 * 1024
#: the node's counter of AudioSocket calls (``phone.audiosocket_max_calls``)
CALLS_COUNTER = "phone_audiosocket"
#: AudioSocket's error frame's payload when a call is refused (Asterisk logs the code)
_REFUSED = b"\x04"
#: how long a refused peer's frames are read (and dropped) for, waiting for it to hang up
REFUSAL_LINGER_S = 0.5


class PacedOutlet(PacedSpeech):
    """AudioSocket's paced speech: each frame an audio frame on the call's TCP connection; a peer
    that stops reading is found by what waits in our socket's buffer. Event loop only."""

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
        super().__init__(clock, max_held_s=max_held_s, on_played=on_played, on_stall=on_stall)
        self._framing = framing
        self._writer = writer
        self._held_limit = 0

    def begin(self, codec: CallCodec) -> None:
        self._held_limit = int(self._max_held_s * 1000 / FRAME_MS) * (codec.frame_bytes + 3)
        super().begin(codec)

    def _open(self) -> bool:
        return not self._writer.transport.is_closing()

    def _send(self, pcm: bytes) -> bool:
        if self._writer.transport.get_write_buffer_size() > self._held_limit:
            self._stall(f"the peer stopped reading: over {self._max_held_s:g} s of frames wait in its socket")
            return False
        self._writer.write(self._framing.audio_frame(pcm))
        return True

    async def close(self) -> None:
        self.leave()


class InputDeadline:
    """Ends a call whose peer stops sending audio frames: AudioSocket peers send one every 20 ms,
    silence included, so a call with none for ``timeout_s`` is a peer that only reads (it would
    otherwise hold its slots until ``limits.idle_timeout_s``). Counts from the call's last audio
    frame (before the first, ``limits.config_timeout_ms`` governs). One timer per call, re-armed
    at most once per ``timeout_s``, not per frame. Event loop only."""

    def __init__(self, call: PhoneCall, timeout_s: float) -> None:
        self._call = call
        self._timeout_s = timeout_s
        self.fired = False
        loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = loop.call_later(timeout_s, self._check)

    def _check(self) -> None:
        loop = asyncio.get_running_loop()
        last = self._call.last_audio_at
        due = (last if last is not None else loop.time()) + self._timeout_s
        if last is None or due > loop.time() + 0.001:
            self._timer = loop.call_at(due, self._check)
            return
        self._timer = None
        self.fired = True
        why = (
            f"no audio frame for {self._timeout_s:g} s (phone.audiosocket_input_timeout_s): an AudioSocket "
            "peer sends one every 20 ms, silence included"
        )
        logger.info("AudioSocket call ended: %s", why, extra={"request_id": self._call.call.request_id})
        self._call.driver.end(LimitReached(f"the call was ended: {why}", reason="input_timeout"))

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class AudioSocketServer:
    """The AudioSocket port. Event loop only."""

    def __init__(
        self,
        manager: SessionManager,
        settings: PhoneSettings,
        tenant: Callable[[], Tenant],
        pairs: Pairs,
        *,
        reuse_port: bool = False,
        refusals: RefusalLog | None = None,
    ) -> None:
        self._m = manager
        self.settings = settings
        #: the tenant of a new call, as the tokens file states it now (its caps)
        self._tenant = tenant
        self._pairs = pairs
        self._reuse_port = reuse_port
        self._refusals = refusals or RefusalLog()
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
        if not is_loopback(host):
            logger.warning(
                "AudioSocket listens on %s beyond loopback, and AudioSocket carries no credentials: anyone who "
                "reaches the port places calls as tenant %r (at most %d at once); keep it on a private network "
                "(phone.audiosocket_host)",
                host,
                self.settings.audiosocket_tenant,
                self.settings.audiosocket_max_calls,
            )

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
        where = f"{peer[0]}:{peer[1]}" if peer else ""
        counters = self._m.counters
        try:
            held = await counters.acquire([(CALLS_COUNTER, self.settings.audiosocket_max_calls)])
        except ServiceError as e:  # the node's store cannot answer
            await self._refuse(reader, writer, where, str(e))
            return
        if isinstance(held, str):
            await self._refuse(
                reader, writer, where, f"at phone.audiosocket_max_calls ({self.settings.audiosocket_max_calls})"
            )
            return
        try:
            await self._admitted(reader, writer, where)
        finally:
            counters.release(held)

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str, why: str) -> None:
        """An error frame, then the hang-up; the peer's own frames (it sent its UUID as it
        connected) are read and dropped until it closes, for at most ``REFUSAL_LINGER_S``: a socket
        closed with unread data is reset, and the peer may then never read the error."""
        self._refusals("AudioSocket call", peer, why)
        writer.write(frame(0xFF, _REFUSED) + frame(0x00))
        with contextlib.suppress(OSError, TimeoutError):
            writer.write_eof()
            async with asyncio.timeout(REFUSAL_LINGER_S):
                while await reader.read(READ_BYTES):
                    pass

    async def _admitted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str) -> None:
        """A call within ``phone.audiosocket_max_calls``: its tenant's stream slots, then the call."""
        tenant = self._tenant()
        try:
            admission = await self._m.admit_stream(tenant)
        except ServiceError as e:
            await self._refuse(reader, writer, peer, str(e))
            return
        call = call_info(None, "phone_audiosocket", peer)
        framing = AudioSocketFraming(min(self.settings.max_message_bytes, 0xFFFF))
        caller = Caller(tenant, NO_ROOMS)  # a call without credentials speaks into no room
        phone_call = PhoneCall(self._m, self.settings, framing, {}, caller, call, admission, pairs=self._pairs)
        outlet = PacedOutlet(
            framing,
            writer,
            self.clock,
            max_held_s=self.settings.max_held_s,
            on_played=phone_call.played,
            on_stall=phone_call.end,
        )
        phone_call.outlet = outlet
        deadline = InputDeadline(phone_call, self.settings.audiosocket_input_timeout_s)
        try:
            await phone_call.run(_incoming(reader))
        finally:
            deadline.cancel()
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
