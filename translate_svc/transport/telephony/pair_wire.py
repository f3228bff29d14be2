"""What one leg of a two-party call sends the other through the cluster store, sans I/O: the
messages (``Speech``, ``Original``, ``Mark``, ``Played``, ``Cleared``, ``Left``), packed several to a
stream entry, and a leg's presence value (its codec and carrier).

Audio crosses in the speaking leg's own phone codec (8 kHz µ-law for Twilio: 8 kB a second), never
as float or 48 kHz PCM. Order is the stream's: one writer per stream (the speaking leg), read in
order by the one listening leg. Pure and thread-safe.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

from translate_svc.transport.telephony.call import CallCodec
from translate_svc.types import AudioEncoding

_LEN = struct.Struct("<I")
_CODEC = struct.Struct("<BI")  # encoding, rate
_MARK = struct.Struct("<Iq")  # token, segment id
_TOKEN = struct.Struct("<I")
_CLEARED = struct.Struct("<d")
_ENCODINGS = (AudioEncoding.MULAW, AudioEncoding.ALAW, AudioEncoding.LINEAR16)


class WireError(ValueError):
    """An entry that is not this module's (another version, or corrupt)."""


@dataclass(frozen=True)
class Speech:
    """The speaker's translation, in the speaker's codec."""

    codec: CallCodec
    audio: bytes


@dataclass(frozen=True)
class Original:
    """A chunk of the speaker's own voice as its carrier sent it (``phone.original_voice = "under"``)."""

    codec: CallCodec
    audio: bytes


@dataclass(frozen=True)
class Mark:
    """The end of a segment's translation: the listener's carrier says when it played it."""

    token: int
    segment_id: int


@dataclass(frozen=True)
class Played:
    """(Listener to speaker) the listener's carrier played up to the speaker's mark ``token``."""

    token: int


@dataclass(frozen=True)
class Cleared:
    """(Listener to speaker) the listener dropped ``seconds`` of the speaker's unplayed translation
    (``phone.max_backlog_s``)."""

    seconds: float


@dataclass(frozen=True)
class Left:
    """The speaker's leg ended: what the listener holds of it is played alone."""


Message = Speech | Original | Mark | Played | Cleared | Left


def _codec(codec: CallCodec) -> bytes:
    return _CODEC.pack(_ENCODINGS.index(codec.encoding), codec.rate)


def encode(message: Message) -> bytes:
    if isinstance(message, Speech):
        return b"S" + _codec(message.codec) + message.audio
    if isinstance(message, Original):
        return b"O" + _codec(message.codec) + message.audio
    if isinstance(message, Mark):
        return b"M" + _MARK.pack(message.token, message.segment_id)
    if isinstance(message, Played):
        return b"P" + _TOKEN.pack(message.token)
    if isinstance(message, Cleared):
        return b"C" + _CLEARED.pack(message.seconds)
    return b"L"


def decode(data: bytes) -> Message:
    kind, body = data[:1], data[1:]
    try:
        if kind in (b"S", b"O"):
            encoding, rate = _CODEC.unpack_from(body)
            codec = CallCodec(_ENCODINGS[encoding], rate)
            audio = body[_CODEC.size :]
            return Speech(codec, audio) if kind == b"S" else Original(codec, audio)
        if kind == b"M":
            return Mark(*_MARK.unpack(body))
        if kind == b"P":
            return Played(*_TOKEN.unpack(body))
        if kind == b"C":
            return Cleared(*_CLEARED.unpack(body))
        if kind == b"L" and not body:
            return Left()
    except (struct.error, IndexError, ValueError) as e:
        raise WireError(f"a two-party message of kind {kind!r} is malformed: {e}") from None
    raise WireError(f"not a two-party message: kind {kind!r}")


def pack(messages: list[bytes]) -> bytes:
    """Several encoded messages as one stream entry (each length-prefixed)."""
    return b"".join(_LEN.pack(len(m)) + m for m in messages)


def unpack(entry: bytes) -> list[Message]:
    out: list[Message] = []
    at = 0
    while at < len(entry):
        if at + _LEN.size > len(entry):
            raise WireError("a two-party entry ends inside a length")
        (n,) = _LEN.unpack_from(entry, at)
        at += _LEN.size
        if at + n > len(entry):
            raise WireError("a two-party entry ends inside a message")
        out.append(decode(entry[at : at + n]))
        at += n
    return out


@dataclass(frozen=True)
class LegInfo:
    """What a leg tells its partner through its presence: how its audio comes, and its carrier."""

    codec: CallCodec
    carrier: str

    def to_bytes(self) -> bytes:
        return json.dumps(
            {"encoding": self.codec.encoding.value, "rate": self.codec.rate, "carrier": self.carrier}
        ).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> LegInfo:
        try:
            doc = json.loads(data)
            return cls(CallCodec(AudioEncoding(doc["encoding"]), int(doc["rate"])), str(doc["carrier"]))
        except (ValueError, KeyError, TypeError) as e:
            raise WireError(f"a two-party leg's presence is malformed: {e}") from None
