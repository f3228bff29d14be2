"""Twilio Media Streams (``<Connect><Stream>``, bidirectional) and its cousins, sans I/O.

From the carrier, JSON text frames (Twilio's "WebSocket messages" page): ``connected``, ``start``
(``streamSid``, ``callSid``, ``customParameters``, ``mediaFormat``: audio/x-mulaw at 8000 Hz),
``media`` (``track``, ``chunk``, ``timestamp``, base64 ``payload``), ``dtmf``, ``mark`` (a mark
we sent, echoed once the audio before it has played), ``stop``. To it: ``media`` (base64 in the
call's codec), ``mark`` and ``clear``. SignalWire speaks Twilio's names; Telnyx the same events
with ``stream_id`` and a ``media_format`` of PCMU/PCMA; Exotel snake_case names and base64 16-bit
PCM (``Dialect``). Every refusal is an ``Invalid`` request: the stream core ends the call with it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from translate_svc.errors import InvalidInput
from translate_svc.session.events import AudioIn, Invalid, StreamRequest
from translate_svc.transport.phone.call import (
    CallCodec,
    CarrierEvent,
    Dtmf,
    Hangup,
    Played,
    Started,
    check_rate,
)
from translate_svc.types import AudioEncoding

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
    {"audio/x-mulaw": AudioEncoding.MULAW, "audio/x-alaw": AudioEncoding.ALAW},
)
TELNYX = Dialect(
    "telnyx",
    "stream_id",
    "start",
    "custom_parameters",
    "media_format",
    "sample_rate",
    {"PCMU": AudioEncoding.MULAW, "PCMA": AudioEncoding.ALAW, "L16": AudioEncoding.LINEAR16},
)
EXOTEL = Dialect(
    "exotel", "stream_sid", "start", "custom_parameters", "media_format", "sample_rate",
    {"raw/slin": AudioEncoding.LINEAR16, "base64": AudioEncoding.LINEAR16, "audio/x-l16": AudioEncoding.LINEAR16},
)  # fmt: skip
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
        return [
            self._out("media", media={"payload": base64.b64encode(audio[i : i + step]).decode()})
            for i in range(0, len(audio), step)
        ]

    def mark(self, name: str) -> list[str | bytes]:
        return [self._out("mark", mark={"name": name})]

    def clear(self) -> list[str | bytes]:
        return [self._out("clear")]

    def hangup(self) -> list[str | bytes]:
        return []  # the stream ends when the socket closes; the call goes on with the next TwiML verb


def _obj(msg: dict[str, Any], key: str) -> dict[str, Any]:
    value = msg.get(key)
    return value if isinstance(value, dict) else {}
