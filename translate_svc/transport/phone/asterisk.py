"""Asterisk ``chan_websocket`` (Asterisk 20.16, 21.11, 22.6, 23+; also ARI external media over a
WebSocket), sans I/O, in both control modes (Asterisk's "WebSocket" channel driver page).

From Asterisk: BINARY frames of the channel's codec, and TEXT control events, either plain text
(``MEDIA_START connection_id:<id> channel:<name> format:ulaw optimal_frame_size:160``; a command
or event and its parameters on one line) or JSON (``{"event": "MEDIA_START", ...}``), whichever
the channel was set to (``f(json)``); we answer in the mode ``MEDIA_START`` came in. Events read:
``MEDIA_START``, ``MEDIA_XOFF``/``MEDIA_XON`` (flow control), ``DTMF_END``,
``MEDIA_MARK_PROCESSED`` (JSON), ``MEDIA_BUFFERING_COMPLETED`` (plain text), ``STATUS``,
``QUEUE_DRAINED``. To Asterisk: whole frames of ``optimal_frame_size`` in BINARY messages of at
most 65,500 bytes, each segment's speech followed by ``MARK_MEDIA`` (JSON; played when
``MEDIA_MARK_PROCESSED`` comes back) or bracketed by ``START_MEDIA_BUFFERING`` and
``STOP_MEDIA_BUFFERING <id>`` (plain text, which has no marks: played when
``MEDIA_BUFFERING_COMPLETED <id>`` comes back); ``FLUSH_MEDIA``; ``HANGUP``.
"""

from __future__ import annotations

import json
from typing import Any

from translate_svc.errors import InvalidInput
from translate_svc.session.events import AudioIn, Invalid, StreamRequest
from translate_svc.transport.telephony.call import CallCodec, CarrierEvent, Dtmf, Flow, Played, Started
from translate_svc.types import AudioEncoding

#: the largest message Asterisk's WebSocket code takes (more closes the socket and hangs up)
MAX_ASTERISK_MESSAGE = 65_500
#: Asterisk's format names -> the call's codec
FORMATS: dict[str, CallCodec] = {
    "ulaw": CallCodec(AudioEncoding.MULAW, 8000),
    "alaw": CallCodec(AudioEncoding.ALAW, 8000),
    "slin": CallCodec(AudioEncoding.LINEAR16, 8000),
    "slin12": CallCodec(AudioEncoding.LINEAR16, 12000),
    "slin16": CallCodec(AudioEncoding.LINEAR16, 16000),
    "slin24": CallCodec(AudioEncoding.LINEAR16, 24000),
    "slin32": CallCodec(AudioEncoding.LINEAR16, 32000),
    "slin44": CallCodec(AudioEncoding.LINEAR16, 44100),
    "slin48": CallCodec(AudioEncoding.LINEAR16, 48000),
}
#: channel variables (JSON mode) that set a call parameter
CHANNEL_VARIABLES = {
    "TRANSLATE_SOURCE": "source",
    "TRANSLATE_TARGET": "target",
    "TRANSLATE_CALL": "call",
    "TRANSLATE_ROOM": "room",
    "TRANSLATE_PARTICIPANT": "participant",
    "TRANSLATE_NOISE_SUPPRESSION": "noise_suppression",
    "TRANSLATE_SPEED": "speed",
}
#: events that need nothing from us
_IGNORED = frozenset({"STATUS", "QUEUE_DRAINED", "DTMF_BEGIN", "MEDIA_STOP"})

In = StreamRequest | CarrierEvent


def _invalid(message: str) -> Invalid:
    return Invalid(InvalidInput(message))


def parse_plain(text: str) -> tuple[str, dict[str, str], list[str]]:
    """A plain-text event: its name, its ``key:value`` parameters, its bare ones."""
    name, *rest = text.strip().split()
    named: dict[str, str] = {}
    bare: list[str] = []
    for part in rest:
        key, sep, value = part.partition(":")
        if sep and key.isidentifier():
            named[key] = value
        else:
            bare.append(part)
    return name, named, bare


class AsteriskFraming:
    """One chan_websocket channel's messages, both ways. Not thread-safe: one per call."""

    carrier = "asterisk"
    close_is_hangup = True

    def __init__(self) -> None:
        self.codec: CallCodec | None = None
        self.json_mode = False
        self.frame_bytes = 0
        self._buffering = False  # plain text: a START_MEDIA_BUFFERING is open

    def receive(self, data: str | bytes) -> list[In]:
        if isinstance(data, bytes):
            if self.codec is None:
                return [_invalid("media came before MEDIA_START: Asterisk announces the channel's format first")]
            if len(data) % self.codec.sample_bytes:
                return [_invalid("a media frame is not 16-bit PCM (an odd number of bytes): not the announced format")]
            return [AudioIn(data, field="media frame")] if data else []
        text = data.strip()
        if not text:
            return [_invalid("an empty control message")]
        if text.startswith("{"):
            try:
                msg = json.loads(text)
            except ValueError:
                return [_invalid("a control message is not JSON (it starts with `{`)")]
            except RecursionError:  # nested deeper than the parser goes
                return [_invalid("a control message nests too deep: Asterisk's JSON events are flat objects")]
            if not isinstance(msg, dict) or not isinstance(msg.get("event"), str):
                return [_invalid('a JSON control message must be an object with an "event"')]
            return self._event(msg["event"], msg, [], json_mode=True)
        name, named, bare = parse_plain(text)
        return self._event(name, dict(named), bare, json_mode=False)

    def _event(self, name: str, params: dict[str, Any], bare: list[str], *, json_mode: bool) -> list[In]:
        if name == "MEDIA_START":
            return self._start(params, json_mode)
        if name == "MEDIA_XOFF":
            return [Flow(True)]
        if name == "MEDIA_XON":
            return [Flow(False)]
        if name in ("MEDIA_MARK_PROCESSED", "MEDIA_BUFFERING_COMPLETED"):
            ident = params.get("correlation_id") or (bare[0] if bare else "")
            return [Played(str(ident))] if ident else []
        if name == "DTMF_END":
            return [Dtmf(str(params.get("digit", "")))]
        if name in _IGNORED:
            return []
        shown = name if len(name) <= 32 and name.isprintable() else "?"
        return [_invalid(f'unknown event "{shown}" from chan_websocket')]

    def _start(self, params: dict[str, Any], json_mode: bool) -> list[In]:
        if self.codec is not None:
            return [_invalid("a second MEDIA_START: a channel starts once")]
        fmt = str(params.get("format", ""))
        codec = FORMATS.get(fmt)
        if codec is None:
            return [_invalid(f"the channel's format is not served: dial it with c() of {', '.join(FORMATS)}")]
        try:
            frame = int(params.get("optimal_frame_size") or codec.frame_bytes)
        except (TypeError, ValueError):
            return [_invalid("MEDIA_START's optimal_frame_size must be a number of bytes")]
        if not 0 < frame <= MAX_ASTERISK_MESSAGE or frame % codec.sample_bytes:
            return [_invalid("MEDIA_START's optimal_frame_size must be a whole number of samples under 65,500 bytes")]
        self.codec, self.frame_bytes, self.json_mode = codec, frame, json_mode
        ident = str(params.get("channel_id") or params.get("connection_id") or "")[:64]
        variables = params.get("channel_variables")
        extra: dict[str, str] = {}
        if isinstance(variables, dict):  # set in the dialplan (JSON mode only carries them)
            for key, param in CHANNEL_VARIABLES.items():
                if isinstance(variables.get(key), str):
                    extra[param] = variables[key]
        return [Started(codec, ident, extra)]

    # -- to Asterisk ------------------------------------------------------------------------------

    def _command(self, name: str, **params: str) -> str:
        if self.json_mode:
            return json.dumps({"command": name, **params})
        return " ".join((name, *params.values()))

    def media(self, audio: bytes) -> list[str | bytes]:
        """Whole frames (a chunk's tail padded with silence), in messages under 65,500 bytes."""
        assert self.codec is not None
        frame = self.frame_bytes
        rest = len(audio) % frame
        if rest:
            audio += self.codec.silence(frame - rest)
        step = MAX_ASTERISK_MESSAGE // frame * frame
        out: list[str | bytes] = []
        if not self.json_mode and not self._buffering:
            out.append(self._command("START_MEDIA_BUFFERING"))
            self._buffering = True
        out += [audio[i : i + step] for i in range(0, len(audio), step)]
        return out

    def mark(self, name: str) -> list[str | bytes]:
        if self.json_mode:
            return [self._command("MARK_MEDIA", correlation_id=name)]
        self._buffering = False
        return [self._command("STOP_MEDIA_BUFFERING", correlation_id=name)]

    def clear(self) -> list[str | bytes]:
        self._buffering = False  # FLUSH_MEDIA ends a bulk transfer too
        return [self._command("FLUSH_MEDIA")]

    def hangup(self) -> list[str | bytes]:
        return [self._command("HANGUP")]
