"""One phone call through the stream core, whatever carries it (a WebSocket carrier or AudioSocket
on the phone door, RTP on the SIP door): the carrier's messages in (through its framing), the
translated speech out (through an ``Outlet``), marks after each segment's speech and the
ear-voice lag when the carrier says it played them.

``PhoneCall`` is the part every carrier shares: it turns the framing's output into the stream
core's requests (the config when the carrier says which call this is; ``Invalid`` ends the call
through the core, which logs the reason and writes the access line), renders the core's events as
speech for its own carrier or, on a two-party call, sends it to the other leg wherever that
leg is (``pairs.py``: through the cluster store) and plays what the other leg sends, and at a
call's end that the carrier did not ask for (a drain, a limit) waits up to ``phone.tail_s`` for
the translated tail to be played. The outlets are the doors': a carrier that plays what it is
sent has ``phone/outbox.py``'s ``Outbox``; one that does not is paced (``pacing.py``). Event loop
only.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Protocol

import numpy as np

from translate_svc.cluster.store import StoreUnavailable
from translate_svc.errors import InvalidInput, LimitReached, ServiceError
from translate_svc.observability import metrics
from translate_svc.observability.access import CallInfo
from translate_svc.session.admission import Admission
from translate_svc.session.events import (
    AudioIn,
    Gone,
    Invalid,
    StreamEnded,
    StreamEvent,
    StreamRequest,
    StreamStarted,
)
from translate_svc.session.manager import SessionManager
from translate_svc.settings import PhoneSettings
from translate_svc.transport.http.caller import Caller, stream_driver
from translate_svc.transport.telephony import pair_wire as wire
from translate_svc.transport.telephony.call import (
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
from translate_svc.transport.telephony.mix import UnderMix
from translate_svc.transport.telephony.pairs import PairKey, PairLeg, Pairs
from translate_svc.transport.telephony.playout import Arrivals, LagStats, Marks
from translate_svc.types import Commit, SegmentResult

logger = logging.getLogger(__name__)


class CarrierInput(Protocol):
    """A carrier's messages to us, sans I/O (``twilio.py``, ``asterisk.py``, ``audiosocket.py``)."""

    carrier: str
    codec: CallCodec | None
    #: the carrier hangs up by closing the connection (Asterisk); else a close without its
    #: hang-up message (Twilio's ``stop``) is a carrier that went away
    close_is_hangup: bool

    def receive(self, data: str | bytes) -> list[StreamRequest | CarrierEvent]: ...


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


#: a two-party leg's marks sent to its partner and not yet played, at most (the oldest forgotten)
MAX_SENT_MARKS = 4096


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
        pairs: Pairs | None = None,
    ) -> None:
        self._m = manager
        self._pairs = pairs
        #: a two-party leg's call (its tenant's and the call id), once its config named one
        self.pair: PairKey | None = None
        #: a two-party leg's place in its call (its partner, wherever it is)
        self.link: PairLeg | None = None
        #: the marks sent to the partner, by token: when their speech ended (this leg's clock)
        self._sent_marks: dict[int, float | None] = {}
        self._tokens = itertools.count(1)
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
                    yield await self._config(item)
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

    async def _config(self, started: Started) -> StreamRequest:
        self.call.extra["call_id"] = started.call_id
        try:
            params = call_params(self._params, started.params, signed=self.caller.signed_url)
            setup = call_setup(params, self.settings)
            if setup.pair is not None:
                if self._pairs is None:
                    raise InvalidInput("two-party calls (`call`) are not served on this port")
                key = (self.caller.tenant.name, setup.pair)  # legs meet within their tenant only
                self.link = await self._pairs.join(key, wire.LegInfo(started.codec, self.carrier), self)
                self.pair = key
        except (InvalidInput, StoreUnavailable) as e:
            return Invalid(e)
        return stream_config(setup, started.codec, self._m.vad_defaults)

    def played(self, name: str) -> None:
        """The carrier played everything before the mark ``name``."""
        if self.outlet is not None:
            self.outlet.played(name)
        mark = self.marks.played(name)
        if mark is None:
            return
        if mark.token is not None:  # the partner's: its lag is the partner's to observe
            if self.link is not None:
                self.link.send(wire.Played(mark.token))
        elif mark.speech_end_at is not None:
            lag = asyncio.get_running_loop().time() - mark.speech_end_at
            metrics.phone_lag(self.carrier, lag)
            (mark.owner or self.lags).observe(lag)
        if not self.marks:
            self._all_played.set()

    # -- the core's side --------------------------------------------------------------------------

    async def run(self, incoming: AsyncIterator[str | bytes | InvalidInput]) -> None:
        """The call, until it ends; its reason is in ``ended`` or ``refused``."""
        try:
            with self.caller.watching(self.driver):
                try:
                    async with contextlib.aclosing(self.driver.run(self.requests(incoming))) as events:
                        async for ev in events:
                            if isinstance(ev, StreamEnded):
                                self.ended = ev
                                await self._tail(ev)
                                break
                            self._render(ev)
                finally:
                    await self._leave()
        except ServiceError as e:  # refused before it started (no config, a bad first message)
            self.refused = e
            logger.info(
                "phone call refused: %s", e, extra={"request_id": self.call.request_id, "carrier": self.carrier}
            )

    async def _leave(self) -> None:
        """A two-party leg leaves its call (the partner plays what it holds of this leg alone)."""
        link, self.link = self.link, None
        if link is not None:
            await link.close()

    # -- two-party: what the partner sends this leg (``pairs.Listener``) -------------------------

    def heard(self, message: wire.Message) -> None:
        """A message from the partner, wherever it is."""
        if isinstance(message, wire.Speech):
            dropped = self._hear_speech(message.codec.decode(message.audio), message.codec)
            if dropped is not None and self.link is not None:
                self.link.send(wire.Cleared(dropped))
        elif isinstance(message, wire.Original):
            self._hear_original(message.codec, message.audio)
        elif isinstance(message, wire.Mark):
            self._hear_mark(message.segment_id, None, None, message.token)
        elif isinstance(message, wire.Left):
            self._hear_rest()
        elif isinstance(message, wire.Played):
            self._partner_played(message.token)
        else:
            self._count_clear(message.seconds)

    def alone(self, seconds: float) -> None:
        """No partner came within ``phone.partner_timeout_s``: the call ends, saying so."""
        why = (
            f"the other leg of this two-party call did not join within {seconds:g} s (phone.partner_timeout_s): "
            "both legs name the same `call`"
        )
        logger.info("phone call ended: %s", why, extra={"request_id": self.call.request_id, "carrier": self.carrier})
        metrics.phone_partner_timeout(self.carrier)
        self.call.extra["partner_timeout_s"] = seconds
        self.driver.end(LimitReached(f"the call was ended: {why}", reason="partner_timeout"))

    def _partner_played(self, token: int) -> None:
        """The partner's carrier played this leg's mark ``token`` (and every one before it)."""
        if token not in self._sent_marks:
            return
        while True:
            first = next(iter(self._sent_marks))
            speech_end_at = self._sent_marks.pop(first)
            if first == token:
                break
        if speech_end_at is not None:
            lag = asyncio.get_running_loop().time() - speech_end_at
            info = self.link.partner_info if self.link is not None else None
            metrics.phone_lag(info.carrier if info is not None else self.carrier, lag)
            self.lags.observe(lag)

    # -- playing into this leg's carrier: its own translation, or its partner's -------------------

    def _under(self, speaker: CallCodec) -> UnderMix | None:
        """The mix of the partner's voice and translation for this leg (original voice "under");
        None: not a two-party leg, the voice is removed, or this leg's codec not known yet."""
        if self.pair is None or self.settings.original_voice != "under" or self.framing.codec is None:
            return None
        if self.mix is None:
            self.mix = UnderMix(speaker, self.framing.codec, self.settings.original_gain)
        return self.mix

    def _hear_original(self, speaker: CallCodec, original: bytes) -> None:
        """The partner's audio as it came carries its voice, and its translation on top, to this leg."""
        mix = self._under(speaker)
        if mix is None or self.outlet is None:
            return
        audio, passed = mix.under(original)
        if audio:
            self.outlet.speech(audio)
        for name in passed:
            self.outlet.mark(name)

    def _hear_rest(self) -> None:
        """The partner left: what is left of its translation goes to this leg alone."""
        mix, self.mix = self.mix, None
        if mix is None or self.outlet is None:
            return
        audio, passed = mix.rest()
        if audio:
            self.outlet.speech(audio)
        for name in passed:
            self.outlet.mark(name)

    def _hear_speech(self, audio: np.ndarray, speaker: CallCodec | None) -> float | None:
        """Translated speech for this leg's carrier (``speaker``: the partner's codec; None: this
        leg's own). The seconds of unplayed speech cleared past ``phone.max_backlog_s``, or None."""
        if self.outlet is None or self.framing.codec is None:
            return None
        mix = self._under(speaker) if speaker is not None else None
        if mix is not None:
            mix.speech(audio)
        else:
            self.outlet.speech(self.framing.codec.encode(audio))
        limit = self.settings.max_backlog_s
        if limit is None or self.outlet.unplayed() + (mix.held_s if mix else 0.0) <= limit:
            return None
        dropped = self.outlet.clear() + (mix.clear() if mix else 0.0)
        self.marks.drop_all()
        self._all_played.set()
        logger.info("cleared %.1f s of unplayed speech (phone.max_backlog_s)", dropped)
        return dropped

    def _hear_mark(
        self, segment_id: int, speech_end_at: float | None, owner: LagStats | None, token: int | None
    ) -> None:
        if self.outlet is None:
            return
        mark = self.marks.add(segment_id, speech_end_at, owner=owner, token=token)
        self._all_played.clear()
        if self.mix is not None:
            self.mix.mark(mark.name)
        else:
            self.outlet.mark(mark.name)

    def _count_clear(self, dropped: float) -> None:
        """This leg's translation was cleared unplayed (by its own carrier's outlet or its partner's)."""
        self.lags.clears += 1
        self.lags.cleared_s += dropped
        metrics.phone_cleared(self.carrier)

    # -- this leg's translation and voice, to its own carrier or to its partner -------------------

    def _pass_under(self, original: bytes) -> None:
        """A two-party leg's audio as it comes goes to the partner, to carry this leg's voice under
        its translation (original voice "under")."""
        if self.link is not None and self.settings.original_voice == "under" and self.framing.codec is not None:
            self.link.send(wire.Original(self.framing.codec, original))

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
        codec = self.framing.codec
        if self.pair is not None:  # to the partner (none yet: nobody to hear it)
            if self.link is not None and codec is not None and self.link.send(wire.Speech(codec, codec.encode(audio))):
                self._spoken.add(segment_id)
            return
        if self.outlet is None or codec is None:
            return
        self._spoken.add(segment_id)
        dropped = self._hear_speech(audio, None)
        if dropped is not None:
            self._count_clear(dropped)

    def _mark(self, segment_id: int, speech_end_at: float | None) -> None:
        if self.pair is None:
            self._hear_mark(segment_id, speech_end_at, self.lags, None)
            return
        token = next(self._tokens)
        if self.link is not None and self.link.send(wire.Mark(token, segment_id)):
            self._sent_marks[token] = speech_end_at
            if len(self._sent_marks) > MAX_SENT_MARKS:
                self._sent_marks.pop(next(iter(self._sent_marks)))

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
        if self.link is not None and self.link.lost:
            self.call.extra["pair_lost"] = self.link.lost  # (the store failed under the call)
        if self.outlet is not None:
            self.call.extra.update(self.outlet.fields())
        if ended.limit is not None:
            ids = {"request_id": self.call.request_id, "carrier": self.carrier}
            logger.info("phone call ended: %s", ended.reason, extra=ids)


#: a close frame's reason: at most 123 bytes of UTF-8 (RFC 6455 §5.5.1)
MAX_CLOSE_REASON_BYTES = 123


def close_reason(call: PhoneCall) -> str:
    """Why the call ended, as a carrier's hang-up carries it (a WebSocket close's reason, a SIP
    BYE's): its error's message, cut to what a close frame holds; empty for an ordinary end."""
    error = call.refused or (call.ended.limit if call.ended is not None else None)
    if error is None:
        return ""
    raw = str(error).encode()
    if len(raw) > MAX_CLOSE_REASON_BYTES:
        raw = raw[: MAX_CLOSE_REASON_BYTES - 3].decode("utf-8", "ignore").encode() + b"..."
    return raw.decode()
