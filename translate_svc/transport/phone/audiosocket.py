"""Asterisk AudioSocket, sans I/O (the protocol definition on Asterisk's "AudioSocket" page).

A TCP stream of frames, each a 3-byte header (a kind, then the payload's length as a big-endian
16-bit number) and its payload: ``0x00`` hang-up, ``0x01`` the call's UUID (16 bytes), ``0x03`` a
DTMF digit, ``0x10`` 16-bit little-endian mono PCM at 8 kHz (``0x11``-``0x16``: 12, 16, 24, 32,
44.1 and 48 kHz), ``0xff`` an error. The same frames go back; we send one 20 ms audio frame per
20 ms (``audiosocket_server.py``). A frame's length is checked against the bound from its header,
before its payload is held.
"""

from __future__ import annotations

import uuid

from translate_svc.errors import InvalidInput
from translate_svc.session.events import AudioIn, Invalid, StreamRequest
from translate_svc.transport.telephony.call import CallCodec, CarrierEvent, Dtmf, Hangup, Started
from translate_svc.types import AudioEncoding

HEADER_BYTES = 3
KIND_HANGUP = 0x00
KIND_UUID = 0x01
KIND_DTMF = 0x03
KIND_ERROR = 0xFF
#: the audio kinds and their rates
AUDIO_KINDS: dict[int, int] = {0x10: 8000, 0x11: 12000, 0x12: 16000, 0x13: 24000, 0x14: 32000, 0x15: 44100, 0x16: 48000}
KIND_OF_RATE = {rate: kind for kind, rate in AUDIO_KINDS.items()}

In = StreamRequest | CarrierEvent


def frame(kind: int, payload: bytes = b"") -> bytes:
    return bytes([kind]) + len(payload).to_bytes(2, "big") + payload


def _invalid(message: str) -> Invalid:
    return Invalid(InvalidInput(message))


class AudioSocketFraming:
    """One AudioSocket connection's frames, both ways. Not thread-safe: one per call."""

    carrier = "audiosocket"
    close_is_hangup = True

    def __init__(self, max_frame_bytes: int) -> None:
        self._max = max_frame_bytes
        self._buf = bytearray()
        self.codec: CallCodec | None = None
        self.call_id: str | None = None
        self._broken = False

    def receive(self, data: str | bytes) -> list[In]:
        """The frames completed by ``data`` (bytes as they came off the socket)."""
        if self._broken or isinstance(data, str):
            return []
        self._buf += data
        out: list[In] = []
        while len(self._buf) >= HEADER_BYTES:
            kind = self._buf[0]
            length = int.from_bytes(self._buf[1:3], "big")
            if length > self._max:
                self._broken = True
                self._buf.clear()
                return [*out, _invalid(f"a frame of {length} bytes is over phone.max_message_bytes ({self._max})")]
            if len(self._buf) < HEADER_BYTES + length:
                break
            payload = bytes(self._buf[HEADER_BYTES : HEADER_BYTES + length])
            del self._buf[: HEADER_BYTES + length]
            out += self._frame(kind, payload)
            if self._broken:
                self._buf.clear()
                break
        return out

    def _frame(self, kind: int, payload: bytes) -> list[In]:
        if kind in AUDIO_KINDS:
            return self._audio(AUDIO_KINDS[kind], payload)
        if kind == KIND_UUID:
            if self.call_id is not None:
                return self._fail("a second UUID frame: a connection carries one call")
            if len(payload) != 16:
                return self._fail("the UUID frame must carry 16 bytes")
            self.call_id = str(uuid.UUID(bytes=payload))
            return []
        if kind == KIND_HANGUP:
            return [Hangup("hangup")]
        if kind == KIND_DTMF:
            return [Dtmf(payload[:1].decode("ascii", "replace"))]
        if kind == KIND_ERROR:
            return [Hangup("error")]
        return self._fail(f"unknown frame kind 0x{kind:02x}: AudioSocket has 0x00, 0x01, 0x03, 0x10-0x16 and 0xff")

    def _audio(self, rate: int, payload: bytes) -> list[In]:
        if self.call_id is None:
            return self._fail("audio came before the call's UUID frame (0x01)")
        if len(payload) % 2:
            return self._fail("an audio frame is not 16-bit PCM (an odd number of bytes)")
        out: list[In] = []
        if self.codec is None:
            self.codec = CallCodec(AudioEncoding.LINEAR16, rate)
            out.append(Started(self.codec, self.call_id, {}))
        elif self.codec.rate != rate:
            return self._fail(f"the audio's rate changed mid-call ({self.codec.rate} Hz, then {rate} Hz)")
        if payload:
            out.append(AudioIn(payload, field="audio frame"))
        return out

    def _fail(self, message: str) -> list[In]:
        self._broken = True  # nothing after a frame we cannot read can be read
        return [_invalid(message)]

    # -- to Asterisk ------------------------------------------------------------------------------

    def audio_frame(self, pcm: bytes) -> bytes:
        assert self.codec is not None
        return frame(KIND_OF_RATE[self.codec.rate], pcm)

    def hangup(self) -> bytes:
        return frame(KIND_HANGUP)
