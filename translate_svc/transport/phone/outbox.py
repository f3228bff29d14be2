"""The outlet of a WebSocket carrier that plays what it is sent (Twilio and its cousins, Asterisk
chan_websocket): ``Framing`` is such a carrier's messages both ways (sans I/O: ``twilio.py``,
``asterisk.py``); ``Outbox`` writes a call's messages in order through one writer, paused on the
carrier's XOFF, bounded by ``phone.max_held_s`` of unsent speech and a write that does not finish
(a carrier that stopped reading); ``close_code`` is the WebSocket close of a call's end. The call
itself runs in the telephony floor (``telephony.loop.PhoneCall``). Event loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

from translate_svc.errors import InvalidInput, LimitReached, NotReady, PermissionDenied, ShuttingDown
from translate_svc.transport.telephony.call import CallCodec
from translate_svc.transport.telephony.loop import CarrierInput, PhoneCall
from translate_svc.transport.telephony.playout import Backlog

Send = Callable[[str | bytes], Awaitable[None]]


class Framing(CarrierInput, Protocol):
    """A WebSocket carrier's messages both ways, sans I/O (``twilio.py``, ``asterisk.py``)."""

    def media(self, audio: bytes) -> list[str | bytes]: ...

    def mark(self, name: str) -> list[str | bytes]: ...

    def clear(self) -> list[str | bytes]: ...

    def hangup(self) -> list[str | bytes]: ...


class Outbox:
    """A carrier's outlet when the carrier plays what it is sent: messages in order through one
    writer, paused while the carrier says XOFF. ``on_stall`` is called once when more than
    ``max_held_s`` of speech waits unsent, or a write does not finish within ``write_timeout_s``."""

    def __init__(
        self,
        framing: Framing,
        send: Send,
        *,
        max_held_s: float,
        write_timeout_s: float,
        on_stall: Callable[[str], None],
    ) -> None:
        self._framing = framing
        self._send = send
        self._max_held_s = max_held_s
        self._write_timeout_s = write_timeout_s
        self._on_stall = on_stall
        self._queue: deque[tuple[str | bytes, float]] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.paused = False
        self.held_s = 0.0
        self.backlog = Backlog()
        self.stalled = False
        #: a write did not finish: the carrier stopped reading its socket
        self.write_stuck = False
        self._task = asyncio.get_running_loop().create_task(self._write(), name="phone-outbox")

    def _put(self, messages: list[str | bytes], seconds: float = 0.0) -> None:
        for i, m in enumerate(messages):
            self._queue.append((m, seconds if i == 0 else 0.0))
        self.held_s += seconds
        self._idle.clear()
        self._wake.set()
        if self.held_s > self._max_held_s:
            self._stall(f"more than {self._max_held_s:g} s of speech waited for the carrier (phone.max_held_s)")

    def speech(self, audio: bytes) -> None:
        assert self._framing.codec is not None
        seconds = self._framing.codec.seconds(len(audio))
        self.backlog.sent(seconds, asyncio.get_running_loop().time())
        self._put(self._framing.media(audio), seconds)

    def mark(self, name: str) -> None:
        self.backlog.mark(name)
        self._put(self._framing.mark(name))

    def played(self, name: str) -> None:
        self.backlog.played(name)

    def control(self, messages: list[str | bytes]) -> None:
        self._put(messages)

    def clear(self) -> float:
        dropped = self.backlog.unplayed(asyncio.get_running_loop().time())
        self._queue.clear()
        self.held_s = 0.0
        self.backlog.cleared(asyncio.get_running_loop().time())
        self._put(self._framing.clear())
        return dropped

    def unplayed(self) -> float:
        return self.backlog.unplayed(asyncio.get_running_loop().time())

    def pause(self, paused: bool) -> None:
        self.paused = paused
        self._wake.set()

    def begin(self, codec: CallCodec) -> None:
        """(The carrier paces: nothing to start.)"""

    def fields(self) -> dict[str, int | float]:
        return {}

    async def flushed(self) -> None:
        """Every message queued so far has been written."""
        await self._idle.wait()

    def _stall(self, why: str) -> None:
        if not self.stalled:
            self.stalled = True
            self._on_stall(why)

    async def _write(self) -> None:
        while True:
            while not self._queue or self.paused:
                if not self._queue:
                    self._idle.set()
                self._wake.clear()
                await self._wake.wait()
            message, seconds = self._queue.popleft()
            self.held_s = max(0.0, self.held_s - seconds)
            try:
                async with asyncio.timeout(self._write_timeout_s):
                    await self._send(message)
            except TimeoutError:
                self.write_stuck = True
                self._stall(f"a write to the carrier did not finish within {self._write_timeout_s:g} s")
                return
            except (ConnectionError, RuntimeError):
                return  # the socket is gone: the call ends on its own

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def close_code(call: PhoneCall) -> int:
    """The WebSocket close code of a call's end (RFC 6455 §7.4)."""
    error = call.refused or (call.ended.limit if call.ended is not None else None)
    if error is None:
        return 1000
    if isinstance(error, InvalidInput | PermissionDenied):
        return 1008
    if isinstance(error, ShuttingDown):
        return 1012
    if isinstance(error, NotReady):
        return 1013  # "try again later": the cluster store away as the call started
    if isinstance(error, LimitReached):
        return 1013 if error.reason not in ("config_timeout", "carrier_stalled", "partner_timeout") else 1008
    return 1011
