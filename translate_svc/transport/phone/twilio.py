"""Twilio Media Streams (``<Connect><Stream>``, bidirectional) and its cousins, sans I/O.

From the carrier, JSON text frames (Twilio's "WebSocket messages" page): ``connected``, ``start``
(``streamSid``, ``callSid``, ``customParameters``, ``mediaFormat``: audio/x-mulaw at 8000 Hz),
``media`` (``track``, ``chunk``, ``timestamp``, base64 ``payload``), ``dtmf``, ``mark`` (a mark
we sent, echoed once the audio before it has played), ``stop``. To it: ``media`` (base64 in the
call's codec), ``mark`` and ``clear``. The cousins (``Dialect``; docs/telephony.md cites each
vendor's page): SignalWire speaks Twilio's names, PCMU or ``audio/x-L16`` at 16/24 kHz; Telnyx the
same events with ``stream_id``, a ``media_format`` of PCMU/PCMA/L16, ``error`` frames about what
it was sent (logged; the stream goes on) and media of whole 20 ms RTP frames; Exotel snake_case
names, ``audio/x-raw`` 16-bit PCM, and media of a multiple of 320 bytes, 3.2 KB at least. Every
refusal is an ``Invalid`` request: the stream core ends the call with it.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from translate_svc.errors import InvalidInput
from translate_svc.session.events import AudioIn, Invalid, StreamRequest
from translate_svc.transport.telephony.call import (
    CallCodec,
    CarrierEvent,
    Dtmf,
    Hangup,
    Played,
    Started,
    check_rate,
)
from translate_svc.types import AudioEncoding

logger = logging.getLogger(__name__)

#: the most speech one outbound ``media`` message carries (Twilio plays what it is sent in order)
MEDIA_SECONDS = 1.0


@dataclass(frozen=True)
class Dialect:
    """One carrier's names for Twilio's shape."""

    name: str
    sid: str  # the stream's id, in every message both ways
    start: str  # the start message's object
    custom: str  # its custom parameters
    media_format: str
    rate: str  # the media format's sample rate key
    #: the media format's encoding names -> the codec's encoding
    encodings: Mapping[str, AudioEncoding]
    #: events the carrier sends about what it was sent (Telnyx ``error``): logged, the call goes on
    notices: tuple[str, ...] = ()
    #: an outbound media message holds whole 20 ms frames (Telnyx: RTP, 20 ms to 30 s a message)
    whole_frames: bool = False
    #: an outbound media message holds a whole number of this many bytes, and this many at least
    #: (Exotel: multiples of 320 bytes, 3.2 KB at least, or playback has gaps); 0: any
    media_multiple: int = 0
    media_min_bytes: int = 0


TWILIO = Dialect(
    "twilio",
    "streamSid",
    "start",
    "customParameters",
    "mediaFormat",
    "sampleRate",
    {"audio/x-mulaw": AudioEncoding.MULAW},
)
SIGNALWIRE = Dialect(
    "signalwire",
    "streamSid",
    "start",
    "customParameters",
    "mediaFormat",
    "sampleRate",
    {
        "audio/x-mulaw": AudioEncoding.MULAW,
        "audio/x-alaw": AudioEncoding.ALAW,
        # ``codec="L16@16000h"`` or ``"L16@24000h"``: "Linear PCM", read little-endian
        "audio/x-L16": AudioEncoding.LINEAR16,
    },
)
TELNYX = Dialect(
    "telnyx",
    "stream_id",
    "start",
    "custom_parameters",
    "media_format",
    "sample_rate",
    {"PCMU": AudioEncoding.MULAW, "PCMA": AudioEncoding.ALAW, "L16": AudioEncoding.LINEAR16},
    notices=("error",),
    whole_frames=True,
)
EXOTEL = Dialect(
    "exotel",
    "stream_sid",
    "start",
    "custom_parameters",
    "media_format",
    "sample_rate",
    {
        "audio/x-raw": AudioEncoding.LINEAR16,
        "raw/slin": AudioEncoding.LINEAR16,
        "base64": AudioEncoding.LINEAR16,
        "audio/x-l16": AudioEncoding.LINEAR16,
    },
    media_multiple=320,
    media_min_bytes=3200,
)
DIALECTS: dict[str, Dialect] = {d.name: d for d in (TWILIO, SIGNALWIRE, TELNYX, EXOTEL)}

In = StreamRequest | CarrierEvent


def _invalid(message: str) -> Invalid:
    return Invalid(InvalidInput(message))


class TwilioFraming:
    """One Media Stream's messages, both ways. Not thread-safe: one per call."""

    close_is_hangup = False

    def __init__(self, dialect: Dialect = TWILIO) -> None:
        self.dialect = dialect
        self.carrier = dialect.name
        self.codec: CallCodec | None = None
        self.stream_sid = ""
        #: the tracks taken as the call's audio (a both-tracks stream's other track is not)
        self.track = "inbound"
        #: the carrier's notices about what it was sent (Telnyx ``error``), the first one logged
        self.notices = 0

    def receive(self, data: str | bytes) -> list[In]:
        if isinstance(data, bytes):
            return [_invalid(f"{self.carrier} sends JSON text frames: a binary frame is not a Media Streams message")]
        try:
            msg = json.loads(data)
        except ValueError:
            return [_invalid("a message is not JSON: Media Streams messages are JSON objects")]
        except RecursionError:  # nested deeper than the parser goes: no Media Streams message is
            return [_invalid("a message nests too deep: Media Streams messages are flat JSON objects")]
        if not isinstance(msg, dict):
            return [_invalid("a message is not a JSON object: Media Streams messages are JSON objects")]
        event = msg.get("event")
        if event == "media":
            return self._media(msg)
        if event == "connected":
            return []
        if event == "start":
            return self._start(msg)
        if event == "mark":
            name = _obj(msg, "mark").get("name")
            return [Played(name)] if isinstance(name, str) else [_invalid("a mark message has no mark.name")]
        if event == "dtmf":
            digit = _obj(msg, "dtmf").get("digit")
            return [Dtmf(digit)] if isinstance(digit, str) else []
        if event == "stop":
            return [Hangup("stop")]
        if event in self.dialect.notices:
            self._notice(msg, str(event))
            return []
        shown = event if isinstance(event, str) and len(event) <= 32 and event.isprintable() else "?"
        return [_invalid(f'unknown event "{shown}": a Media Stream sends connected, start, media, dtmf, mark and stop')]

    def _start(self, msg: dict[str, Any]) -> list[In]:
        if self.codec is not None:
            return [_invalid("a second start message: a Media Stream starts once")]
        d = self.dialect
        start = _obj(msg, d.start)
        sid = msg.get(d.sid) or start.get(d.sid)
        fmt = _obj(start, d.media_format)
        encoding = d.encodings.get(str(fmt.get("encoding", "")))
        if encoding is None:
            names = ", ".join(d.encodings)
            return [_invalid(f"start.{d.media_format}.encoding is not served on this path: {names}")]
        try:
            rate = int(fmt.get(d.rate, 8000))
            channels = int(fmt.get("channels", 1))
            check_rate(rate, f"start.{d.media_format}")
        except (TypeError, ValueError):
            return [_invalid(f"start.{d.media_format}.{d.rate} must be a number of Hz")]
        except InvalidInput as e:
            return [Invalid(e)]
        if channels != 1:
            return [_invalid(f"start.{d.media_format}.channels must be 1: phone audio is mono")]
        custom = start.get(d.custom) or {}
        if not isinstance(custom, dict):
            return [_invalid(f"start.{d.custom} must be an object")]
        tracks = start.get("tracks")
        if isinstance(tracks, list) and tracks and "inbound" not in tracks:
            self.track = str(tracks[0])
        self.stream_sid = str(sid or "")[:64]
        self.codec = CallCodec(encoding, rate)
        params = {str(k): str(v) for k, v in custom.items()}
        call_id = str(start.get("callSid") or start.get("call_control_id") or start.get("call_sid") or "")[:64]
        return [Started(self.codec, call_id, params)]

    def _notice(self, msg: dict[str, Any], event: str) -> None:
        """The carrier says a message we sent was bad (Telnyx: ``error.code``, ``title``,
        ``detail``): the first one of a call is logged (clipped), later ones only counted."""
        self.notices += 1
        body = _obj(msg, event)
        said = " ".join(_shown(body.get(k)) for k in ("code", "title", "detail"))
        level = logging.WARNING if self.notices == 1 else logging.DEBUG
        logger.log(level, "%s sent %s %d of this call: %s", self.carrier, event, self.notices, said)

    def _media(self, msg: dict[str, Any]) -> list[In]:
        if self.codec is None:
            return [_invalid("media came before start: a Media Stream sends start first")]
        media = _obj(msg, "media")
        track = media.get("track")
        if isinstance(track, str) and track not in (self.track, self.track + "_track"):
            return []  # the other side of a both-tracks stream
        payload = media.get("payload")
        if not isinstance(payload, str):
            return [_invalid("a media message has no media.payload (base64)")]
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            return [_invalid("media.payload is not base64: send the call's audio base64-encoded")]
        if len(data) % self.codec.sample_bytes:
            return [_invalid("media.payload is not 16-bit PCM: it has an odd number of bytes")]
        return [AudioIn(data, field="media.payload")] if data else []

    # -- to the carrier ---------------------------------------------------------------------------

    def _out(self, event: str, **body: Any) -> str:
        return json.dumps({"event": event, self.dialect.sid: self.stream_sid, **body})

    def media(self, audio: bytes) -> list[str | bytes]:
        assert self.codec is not None
        step = int(MEDIA_SECONDS * self.codec.rate) * self.codec.sample_bytes
        chunks = [audio[i : i + step] for i in range(0, len(audio), step)]
        if chunks:  # the others are whole seconds: a whole number of frames, of 320 bytes
            chunks[-1] = self._fit(chunks[-1])
        return [self._out("media", media={"payload": base64.b64encode(c).decode()}) for c in chunks]

    def _fit(self, chunk: bytes) -> bytes:
        """A media message's audio as the carrier takes it: padded with silence to whole frames
        (Telnyx), to a multiple of the carrier's unit and to its least size (Exotel)."""
        assert self.codec is not None
        d = self.dialect
        unit = self.codec.frame_bytes if d.whole_frames else d.media_multiple
        if unit and len(chunk) % unit:
            chunk += self.codec.silence(unit - len(chunk) % unit)
        if len(chunk) < d.media_min_bytes:
            chunk += self.codec.silence(d.media_min_bytes - len(chunk))
        return chunk

    def mark(self, name: str) -> list[str | bytes]:
        return [self._out("mark", mark={"name": name})]

    def clear(self) -> list[str | bytes]:
        return [self._out("clear")]

    def hangup(self) -> list[str | bytes]:
        return []  # the stream ends when the socket closes; the call goes on with the next TwiML verb


def _shown(value: object) -> str:
    """A carrier's string for a log line: printable, 64 characters at most."""
    text = str(value) if isinstance(value, (str, int)) else "?"
    return text[:64] if text[:64].isprintable() else "?"


def _obj(msg: dict[str, Any], key: str) -> dict[str, Any]:
    value = msg.get(key)
    return value if isinstance(value, dict) else {}
