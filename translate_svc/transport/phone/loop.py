"""One phone call through the stream core: the carrier's messages in (through its framing), the
translated speech out (through an ``Outlet``), marks after each segment's speech and the
ear-voice lag when the carrier says it played them.

``PhoneCall`` is the part every framing shares: it turns the framing's output into the stream
core's requests (the config when the carrier says which call this is; ``Invalid`` ends the call
through the core, which logs the reason and writes the access line), renders the core's events as
speech for the call's sink (its own carrier, or the other leg of a two-party call), and at a
call's end that the carrier did not ask for (a drain, a limit) waits up to ``phone.tail_s`` for
the translated tail to be played. ``Outbox`` is the outlet of a carrier that plays what it is sent
(Twilio, Asterisk chan_websocket): one writer per call, paused on the carrier's XOFF, bounded by
``phone.max_held_s`` of unsent speech and a write that does not finish (a carrier that stopped
reading). Event loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Protocol

import numpy as np

from translate_svc.errors import InvalidInput, LimitReached, PermissionDenied, ServiceError, ShuttingDown
from translate_svc.observability import metrics
from translate_svc.observability.access import CallInfo
from translate_svc.session.events import (
    AudioIn,
    Gone,
    Invalid,
    StreamEnded,
    StreamEvent,
    StreamRequest,
    StreamStarted,
)
from translate_svc.session.manager import Admission, SessionManager
from translate_svc.settings import PhoneSettings
from translate_svc.transport.http.caller import Caller, stream_driver
from translate_svc.transport.phone.call import (
    CallCodec,
    CarrierEvent,
    Dtmf,
    Flow,
    Hangup,
    Played,
    Started,
    call_params,
    call_setup,
    stream_config,
)
from translate_svc.transport.phone.mix import UnderMix
from translate_svc.transport.phone.pairs import PairKey, Pairs
from translate_svc.transport.phone.playout import Arrivals, Backlog, LagStats, Marks
from translate_svc.types import Commit, SegmentResult

logger = logging.getLogger(__name__)

Send = Callable[[str | bytes], Awaitable[None]]


class CarrierInput(Protocol):
    """A carrier's messages to us, sans I/O (``twilio.py``, ``asterisk.py``, ``audiosocket.py``)."""

    carrier: str
    codec: CallCodec | None
    #: the carrier hangs up by closing the connection (Asterisk); else a close without its
    #: hang-up message (Twilio's ``stop``) is a carrier that went away
    close_is_hangup: bool

    def receive(self, data: str | bytes) -> list[StreamRequest | CarrierEvent]: ...


class Framing(CarrierInput, Protocol):
    """A WebSocket carrier's messages both ways, sans I/O (``twilio.py``, ``asterisk.py``)."""

    def media(self, audio: bytes) -> list[str | bytes]: ...

    def mark(self, name: str) -> list[str | bytes]: ...

    def clear(self) -> list[str | bytes]: ...

    def hangup(self) -> list[str | bytes]: ...


class Outlet(Protocol):
    """Where a call's translated speech goes, in the call's codec."""

    def begin(self, codec: CallCodec) -> None:
        """The call's audio has started: its codec is known."""

    def speech(self, audio: bytes) -> None: ...

    def mark(self, name: str) -> None: ...

    def played(self, name: str) -> None:
        """The carrier said it played up to the mark ``name``."""

    def clear(self) -> float:
        """Drop the speech not yet played; the seconds dropped."""

    def unplayed(self) -> float:
        """Seconds of speech sent and not yet played."""

    def pause(self, paused: bool) -> None: ...

    def fields(self) -> dict[str, int | float]:
        """Its own figures for the call's access line."""


class CarrierStalled(LimitReached):
    """The carrier stopped taking the call's audio."""


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


class PhoneCall:
    """One call of one leg. Create one per connection; ``run`` it once. Event loop only."""

    def __init__(
        self,
        manager: SessionManager,
        settings: PhoneSettings,
        framing: CarrierInput,
        params: Mapping[str, str],
        caller: Caller,
        call: CallInfo,
        admission: Admission | None,
        *,
        peer_alive: Callable[[], bool] | None = None,
        pairs: Pairs[PhoneCall] | None = None,
    ) -> None:
        self._m = manager
        self._pairs = pairs
        #: a two-party leg's call (its tenant's and the call id), once its config named one
        self.pair: PairKey | None = None
        self.settings = settings
        self.framing = framing
        self.carrier = framing.carrier
        self._params = dict(params)
        self.caller = caller
        self.call = call
        self.outlet: Outlet | None = None
        self.driver = stream_driver(manager, caller, call, admission=admission, peer_alive=peer_alive)
        self.marks = Marks()
        self.arrivals = Arrivals()
        self.lags = LagStats()
        self._all_played = asyncio.Event()
        self._all_played.set()
        self._received_bytes = 0
        #: when the carrier's last audio came (the loop's clock); None: none yet
        self.last_audio_at: float | None = None
        self.hung_up = False
        self.ended: StreamEnded | None = None
        self.refused: ServiceError | None = None
        self._spoken: set[int] = set()
        #: two-party, original voice "under": the other leg's voice and translation for this leg
        self.mix: UnderMix | None = None
        self.call.extra["carrier"] = self.carrier

    # -- the carrier's side -----------------------------------------------------------------------

    async def requests(self, incoming: AsyncIterator[str | bytes | InvalidInput]) -> AsyncIterator[StreamRequest]:
        """The stream core's requests from the carrier's messages; the carrier's other events are
        acted on here. Ends on the carrier's hang-up; a connection that closes without one is
        ``Gone`` (the carrier went away)."""
        loop = asyncio.get_running_loop()
        async for data in incoming:
            if isinstance(data, InvalidInput):  # the transport could not read a message
                yield Invalid(data)
                continue
            for item in self.framing.receive(data):
                if isinstance(item, AudioIn):
                    self._received_bytes += len(item.data)
                    assert self.framing.codec is not None
                    reached = round(1000 * self.framing.codec.seconds(self._received_bytes))
                    self.last_audio_at = loop.time()
                    self.arrivals.record(reached, self.last_audio_at)
                    self._pass_under(item.data)
                    yield item
                elif isinstance(item, Started):
                    if self.outlet is not None:
                        self.outlet.begin(item.codec)
                    yield self._config(item)
                elif isinstance(item, Played):
                    self.played(item.name)
                elif isinstance(item, Flow):
                    if self.outlet is not None:
                        self.outlet.pause(item.paused)
                elif isinstance(item, Hangup):
                    self.hung_up = True
                    return
                elif isinstance(item, Dtmf):
                    logger.debug("dtmf %s", item.digit[:4], extra={"request_id": self.call.request_id})
                else:
                    yield item
        if self.framing.close_is_hangup:
            self.hung_up = True
        else:
            yield Gone()

    def _config(self, started: Started) -> StreamRequest:
        self.call.extra["call_id"] = started.call_id
        try:
            params = call_params(self._params, started.params, signed=self.caller.signed_url)
            setup = call_setup(params, self.settings)
            if setup.pair is not None:
                if self._pairs is None:
                    raise InvalidInput("two-party calls (`call`) are not served on this port")
                key = (self.caller.tenant.name, setup.pair)  # legs meet within their tenant only
                self._pairs.join(key, self)
                self.pair = key
        except InvalidInput as e:
            return Invalid(e)
        return stream_config(setup, started.codec, self._m.vad_defaults)

    def played(self, name: str) -> None:
        """The carrier played everything before the mark ``name``."""
        if self.outlet is not None:
            self.outlet.played(name)
        mark = self.marks.played(name)
        if mark is None:
            return
        if mark.speech_end_at is not None:
            lag = asyncio.get_running_loop().time() - mark.speech_end_at
            metrics.phone_lag(self.carrier, lag)
            (mark.owner or self.lags).observe(lag)
        if not self.marks:
            self._all_played.set()

    # -- the core's side --------------------------------------------------------------------------

    def sink(self) -> PhoneCall | None:
        """The call whose carrier plays this leg's translation: this one, or a two-party leg's
        other leg (None until it joins: nobody hears it)."""
        if self.pair is None or self._pairs is None:
            return self
        return self._pairs.peer(self.pair, self)

    async def run(self, incoming: AsyncIterator[str | bytes | InvalidInput]) -> None:
        """The call, until it ends; its reason is in ``ended`` or ``refused``."""
        try:
            with self.caller.watching(self.driver), self._leaving():
                async with contextlib.aclosing(self.driver.run(self.requests(incoming))) as events:
                    async for ev in events:
                        if isinstance(ev, StreamEnded):
                            self.ended = ev
                            await self._tail(ev)
                            break
                        self._render(ev)
        except ServiceError as e:  # refused before it started (no config, a bad first message)
            self.refused = e
            logger.info(
                "phone call refused: %s", e, extra={"request_id": self.call.request_id, "carrier": self.carrier}
            )

    @contextlib.contextmanager
    def _leaving(self) -> Iterator[None]:
        try:
            yield
        finally:
            if self.pair is not None and self._pairs is not None:
                self._flush_under()
                self._pairs.leave(self.pair, self)

    # -- two-party: this leg's voice under its translation (``mix.py``) ---------------------------

    def _under(self) -> UnderMix | None:
        """The mix of this leg's voice and translation for the other leg (original voice
        "under"); None: not a two-party leg, the voice is removed, or a codec not known yet."""
        if self.pair is None or self.settings.original_voice != "under":
            return None
        sink = self.sink()
        if sink is None or sink.outlet is None or sink.framing.codec is None or self.framing.codec is None:
            return None
        if sink.mix is None:
            sink.mix = UnderMix(self.framing.codec, sink.framing.codec, self.settings.original_gain)
        return sink.mix

    def _pass_under(self, original: bytes) -> None:
        """This leg's audio as it comes carries its voice, and its translation on top, to the other leg."""
        mix = self._under()
        sink = self.sink()
        if mix is None or sink is None or sink.outlet is None:
            return
        audio, passed = mix.under(original)
        if audio:
            sink.outlet.speech(audio)
        for name in passed:
            sink.outlet.mark(name)

    def _flush_under(self) -> None:
        """This leg ends: what is left of its translation goes to the other leg alone."""
        sink = self.sink()
        if sink is None or sink.mix is None or sink.outlet is None:
            return
        audio, passed = sink.mix.rest()
        sink.mix = None
        if audio:
            sink.outlet.speech(audio)
        for name in passed:
            sink.outlet.mark(name)

    def end(self, why: str) -> None:
        """End the call from outside (its carrier stopped taking audio): what is open is
        translated, the call ends with ``carrier_stalled``."""
        logger.warning("phone call ended: %s", why, extra={"request_id": self.call.request_id})
        self.driver.end(CarrierStalled(f"the carrier stopped taking the call's audio: {why}", reason="carrier_stalled"))

    def _render(self, ev: StreamStarted | StreamEvent) -> None:
        if isinstance(ev, Commit):
            if ev.translation.audio is not None and len(ev.translation.audio):
                self._speak(ev.segment_id, ev.translation.audio)
        elif isinstance(ev, SegmentResult):
            if not ev.speech_in_commits:
                for t in ev.translations[:1]:
                    if t.audio is not None and len(t.audio):
                        self._speak(ev.segment_id, t.audio)
            if ev.segment_id in self._spoken:
                self._spoken.discard(ev.segment_id)
                self._mark(ev.segment_id, self.arrivals.time_of(ev.end_ms))
        self.call.extra.update(self.lags.fields())

    def _speak(self, segment_id: int, audio: np.ndarray) -> None:
        sink = self.sink()
        if sink is None or sink.outlet is None or sink.framing.codec is None:
            return  # (a two-party leg whose other leg has not joined yet: nobody to hear it)
        mix = self._under()
        if mix is not None:
            mix.speech(audio)
        else:
            sink.outlet.speech(sink.framing.codec.encode(audio))
        self._spoken.add(segment_id)
        limit = self.settings.max_backlog_s
        if limit is not None and sink.outlet.unplayed() + (mix.held_s if mix else 0.0) > limit:
            dropped = sink.outlet.clear() + (mix.clear() if mix else 0.0)
            sink.marks.drop_all()
            sink._all_played.set()
            self.lags.clears += 1
            self.lags.cleared_s += dropped
            metrics.phone_cleared(self.carrier)
            logger.info("cleared %.1f s of unplayed speech (phone.max_backlog_s)", dropped)

    def _mark(self, segment_id: int, speech_end_at: float | None) -> None:
        sink = self.sink()
        if sink is None or sink.outlet is None:
            return
        mark = sink.marks.add(segment_id, speech_end_at, owner=self.lags)
        sink._all_played.clear()
        mix = self._under()
        if mix is not None:
            mix.mark(mark.name)
        else:
            sink.outlet.mark(mark.name)

    async def _tail(self, ended: StreamEnded) -> None:
        """A call that ends while its carrier is still there (a drain, a limit; not bad input)
        waits up to ``phone.tail_s`` for its translated tail to be played."""
        if self.hung_up or isinstance(ended.limit, (InvalidInput, CarrierStalled)):
            pass
        elif ended.limit is not None and self.marks:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.tail_s):
                    await self._all_played.wait()
        self.call.extra.update(self.lags.fields())
        if self.outlet is not None:
            self.call.extra.update(self.outlet.fields())
        if ended.limit is not None:
            ids = {"request_id": self.call.request_id, "carrier": self.carrier}
            logger.info("phone call ended: %s", ended.reason, extra=ids)


#: a close frame's reason: at most 123 bytes of UTF-8 (RFC 6455 §5.5.1)
MAX_CLOSE_REASON_BYTES = 123


def close_reason(call: PhoneCall) -> str:
    """The WebSocket close's reason: why the call ended (its error's message, cut to what a close
    frame holds); empty for an ordinary end."""
    error = call.refused or (call.ended.limit if call.ended is not None else None)
    if error is None:
        return ""
    raw = str(error).encode()
    if len(raw) > MAX_CLOSE_REASON_BYTES:
        raw = raw[: MAX_CLOSE_REASON_BYTES - 3].decode("utf-8", "ignore").encode() + b"..."
    return raw.decode()


def close_code(call: PhoneCall) -> int:
    """The WebSocket close code of a call's end (RFC 6455 §7.4)."""
    error = call.refused or (call.ended.limit if call.ended is not None else None)
    if error is None:
        return 1000
    if isinstance(error, InvalidInput | PermissionDenied):
        return 1008
    if isinstance(error, ShuttingDown):
        return 1012
    if isinstance(error, LimitReached):
        return 1013 if error.reason not in ("config_timeout", "carrier_stalled") else 1008
    return 1011
