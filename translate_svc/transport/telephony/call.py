"""What every phone framing shares, sans I/O: a call's codec (``CallCodec``), its setup from what a
carrier can send (``CallSetup``: the URL's query, Twilio's ``customParameters``), the stream
core's config for it, and the carrier's events that are not audio (``Played``, ``Dtmf``,
``Hangup``, ``Flow``). Pure and thread-safe."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from translate_svc.audio.g711 import ALAW_SILENCE, MULAW_SILENCE, decode_alaw, decode_mulaw, encode_alaw, encode_mulaw
from translate_svc.audio.limits import MAX_SAMPLE_RATE_HZ, MIN_SAMPLE_RATE_HZ
from translate_svc.errors import InvalidInput
from translate_svc.session.events import RoomJoin, StreamConfig
from translate_svc.settings import PhoneSettings
from translate_svc.types import (
    NO_PARTIES,
    SPEED_MAX,
    SPEED_MIN,
    AudioEncoding,
    AudioFormat,
    EarOptions,
    OptionError,
    OutputOptions,
    PartySpeech,
    SimultaneousOptions,
    check_speed,
)
from translate_svc.vad.segmenter import EAGERNESS, SegmenterConfig
from translate_svc.wire.pcm import float_to_pcm16, pcm16_to_float

#: the call parameter ``eagerness``'s value for the silence rule (where the server's default is another)
SILENCE_RULE = "silence"

#: a phone frame: what carriers send every 20 ms, and what the AudioSocket pacer sends
FRAME_MS = 20
#: the longest a call parameter (a language, a call id) may be; longer is refused unread
MAX_PARAM_CHARS = 64


@dataclass(frozen=True)
class CallCodec:
    """The call's audio on the wire: µ-law, A-law or 16-bit little-endian PCM, mono, at ``rate``."""

    encoding: AudioEncoding
    rate: int

    def __post_init__(self) -> None:
        if self.encoding not in (AudioEncoding.MULAW, AudioEncoding.ALAW, AudioEncoding.LINEAR16):
            raise ValueError(f"not a phone codec: {self.encoding}")

    @property
    def sample_bytes(self) -> int:
        return 2 if self.encoding is AudioEncoding.LINEAR16 else 1

    @property
    def frame_bytes(self) -> int:
        """One 20 ms frame."""
        return self.rate * FRAME_MS // 1000 * self.sample_bytes

    def seconds(self, n_bytes: int) -> float:
        return n_bytes / (self.rate * self.sample_bytes)

    @property
    def format(self) -> AudioFormat:
        return AudioFormat(self.encoding, self.rate, 1)

    def encode(self, samples: np.ndarray) -> bytes:
        """Float samples at ``rate`` -> the wire's bytes."""
        if self.encoding is AudioEncoding.MULAW:
            return encode_mulaw(samples)
        if self.encoding is AudioEncoding.ALAW:
            return encode_alaw(samples)
        return bytes(float_to_pcm16(samples).astype("<i2").tobytes())

    def decode(self, data: bytes) -> np.ndarray:
        """The wire's bytes -> float32 samples at ``rate``."""
        if self.encoding is AudioEncoding.MULAW:
            return decode_mulaw(data)
        if self.encoding is AudioEncoding.ALAW:
            return decode_alaw(data)
        return pcm16_to_float(np.frombuffer(data[: len(data) // 2 * 2], "<i2"))

    def silence(self, n_bytes: int) -> bytes:
        if self.encoding is AudioEncoding.MULAW:
            return bytes([MULAW_SILENCE]) * n_bytes
        if self.encoding is AudioEncoding.ALAW:
            return bytes([ALAW_SILENCE]) * n_bytes
        return bytes(n_bytes)

    def whole_frames(self, data: bytes) -> bytes:
        """``data`` padded with silence to a whole number of frames (a frame's tail is not dropped)."""
        rest = len(data) % self.frame_bytes
        return data if rest == 0 else data + self.silence(self.frame_bytes - rest)


def check_rate(rate: int, where: str) -> None:
    if not MIN_SAMPLE_RATE_HZ <= rate <= MAX_SAMPLE_RATE_HZ:
        raise InvalidInput(
            f"{where}: the call's sample rate {rate} Hz is not served: use {MIN_SAMPLE_RATE_HZ} to "
            f"{MAX_SAMPLE_RATE_HZ} Hz (µ-law or A-law at 8000 Hz, or 16-bit PCM)"
        )


@dataclass(frozen=True)
class CallSetup:
    """What one call asks for: the language spoken on it, the one it hears (or a conversation's
    languages in their place), simultaneous mode, for a two-party call the call's id (its two legs
    name the same one), and the room it speaks into (docs/rooms.md)."""

    source: str
    target: str
    simultaneous: bool
    #: two-party: the call both legs name (``call``); None: a single-leg call
    pair: str | None = None
    #: speak into this room (``room``, ``participant``); None: an ordinary call
    room: RoomJoin | None = None
    #: RNNoise before the VAD (``noise_suppression``: ``0``/``1``)
    noise_suppression: bool = False
    #: the speaking rate of the translation the caller hears (``speed``): 1.5 speaks it
    #: in 1/1.5 of the time, so a caller who falls behind the speaker catches up
    speed: float = 1.0
    #: a conversation's languages (``conversation``: ``eng,spa``), as sent: each segment is
    #: identified among them and its translation into the other party's language is played; the
    #: stream core checks them (``session/task/conversation.py``). None: ``source`` -> ``target``
    conversation: tuple[str, ...] | None = None
    #: the end of a turn (``eagerness``): ``low``/``medium``/``high``/``auto``, the end-of-turn
    #: model at each pause (docs/api.md, "Turns that end on meaning"); ``silence``, the silence
    #: rule. None: the server's (``vad.eagerness``)
    eagerness: str | None = None
    #: a conversation's voice and speaking rate per party (``voices``: ``spa:2,eng:5``; ``speeds``:
    #: ``eng:0.85``), keyed by the language the party hears, as ``conversation`` names it; the
    #: stream core checks them (``check_parties``)
    parties: PartySpeech = NO_PARTIES


def _param(params: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = params.get(name)
        if value is not None:
            value = str(value).strip()
            if len(value) > MAX_PARAM_CHARS or not value.isprintable():
                raise InvalidInput(f"the call parameter `{name}`: send {MAX_PARAM_CHARS} printable characters at most")
            return value or None
    return None


#: the call parameters that say whom a call meets: the room it speaks into, as whom, and the other
#: leg of a two-party call. A call whose URL is signed (Twilio's signature covers the URL alone)
#: takes them from that URL only: the carrier's start message is not signed
SIGNED_PARAMS = ("room", "x_room", "participant", "call")


def call_params(url: Mapping[str, str], start: Mapping[str, str], *, signed: bool) -> dict[str, str]:
    """A call's parameters: the URL's, with those of the carrier's start message on top (Twilio's
    ``customParameters``). ``signed``: the URL is signed and the start message is not, so the start
    message may not set a ``SIGNED_PARAMS`` parameter to anything but the URL's (InvalidInput: a
    replayed signed URL cannot choose another room or call than the one it was signed for)."""
    if signed:
        for name in SIGNED_PARAMS:
            given = start.get(name)
            if given is not None and str(given).strip() != url.get(name, "").strip():
                raise InvalidInput(
                    f"the call parameter `{name}` came in the start message, which is not signed: a call checked "
                    "by its X-Twilio-Signature names its room, participant and two-party call in the signed URL "
                    f"(the <Stream> url's path: .../{name}=<value>, as `translate-svc phone-config twilio` prints it)"
                )
    return {**url, **start}


def call_setup(params: Mapping[str, str], settings: PhoneSettings) -> CallSetup:
    """A call's setup from its parameters (the URL's query, with Twilio's ``customParameters`` on
    top): ``source``/``target`` (model codes or BCP-47 tags; the settings' when absent),
    ``simultaneous`` (``0``/``1``), ``noise_suppression`` (``0``/``1``: RNNoise before the VAD),
    ``speed`` (the speaking rate, ``SPEED_MIN``..``SPEED_MAX``; the settings' when absent),
    ``call`` (two-party), ``room`` (or ``x_room``, as on the OpenAI door) and ``participant``:
    speak into a room; ``conversation`` (``eng,spa``: two people on one line, in place of
    ``source`` and ``target``, which then have no default); ``eagerness`` (how a turn ends:
    ``CallSetup.eagerness``). A room's or a conversation's call runs
    in segment mode unless it
    asks for ``simultaneous`` (which a room refuses: not carried into rooms yet). InvalidInput says
    what to fix."""
    talk = _param(params, "conversation")
    conversation = None if talk is None else tuple(x.strip() for x in talk.split(",") if x.strip())
    # a conversation stands in for the settings' languages; one sent beside it is the core's to refuse
    source = _param(params, "source", "source_language") or (
        "" if conversation is not None else settings.source_language
    )
    target = _param(params, "target", "target_language") or (
        "" if conversation is not None else settings.target_language
    )
    simul = _param(params, "simultaneous")
    if simul is not None and simul not in ("0", "1", "true", "false"):
        raise InvalidInput('the call parameter `simultaneous` must be "0" or "1"')
    name = _param(params, "room", "x_room")
    participant = _param(params, "participant") or ""
    if participant and name is None:
        raise InvalidInput("the call parameter `participant` names who speaks in a room: send `room` with it")
    room = RoomJoin(name, participant) if name is not None else None
    # the server's simultaneous default is for calls that can take it: a room's and a
    # conversation's run in segment mode unless they ask (and are then told why not)
    default = settings.simultaneous and room is None and conversation is None
    simultaneous = default if simul is None else simul in ("1", "true")
    noise = _param(params, "noise_suppression")
    if noise is not None and noise not in ("0", "1", "true", "false"):
        raise InvalidInput('the call parameter `noise_suppression` must be "0" or "1"')
    speed = _speed(_param(params, "speed"), settings.speed)
    pair = _param(params, "call")
    eagerness = _param(params, "eagerness")
    if eagerness is not None and eagerness not in (*EAGERNESS, SILENCE_RULE):
        raise InvalidInput(
            f"the call parameter `eagerness` must be one of {', '.join(EAGERNESS)} (the end-of-turn model at "
            f'each pause) or "{SILENCE_RULE}" (a pause of vad.min_silence_ms ends the segment)'
        )
    parties = PartySpeech(
        tuple((lang, int(v)) for lang, v in _per_party(params, "voices", "spa:2,eng:5", int)),
        tuple((lang, float(v)) for lang, v in _per_party(params, "speeds", "eng:0.85", float)),
    )
    return CallSetup(
        source, target, simultaneous, pair, room, noise in ("1", "true"), speed, conversation, eagerness, parties
    )


def _per_party(params: Mapping[str, str], name: str, example: str, kind: type) -> list[tuple[str, float]]:
    """A conversation's ``voices`` or ``speeds``: ``language:value`` pairs separated by commas
    (InvalidInput naming the parameter and an example); what the values may be is the core's to say."""
    value = _param(params, name)
    if value is None:
        return []
    pairs = []
    for item in value.split(","):
        lang, sep, number = item.partition(":")
        try:
            parsed = kind(number.strip()) if sep and lang.strip() else None
        except ValueError:
            parsed = None
        if parsed is None:
            raise InvalidInput(
                f"the call parameter `{name}` is language:value pairs separated by commas, keyed by the languages "
                f"of `conversation`, such as {example}"
            )
        pairs.append((lang.strip(), parsed))
    return pairs


def _speed(value: str | None, default: float) -> float:
    """The call parameter ``speed`` (a decimal number such as ``1.25``; at most ``MAX_PARAM_CHARS``
    characters, so the value a refusal shows is bounded), or ``default``."""
    if value is None:
        return default
    field = "the call parameter `speed`"
    try:
        number = float(value)
    except ValueError:
        raise InvalidInput(
            f"{field} must be a number from {SPEED_MIN} to {SPEED_MAX} such as 1.25 (1 is the model's own rate)"
        ) from None
    try:
        return check_speed(number, field)
    except OptionError as e:
        raise InvalidInput(str(e)) from None


def stream_config(setup: CallSetup, codec: CallCodec, vad: SegmenterConfig) -> StreamConfig:
    """The stream core's config of a call: its codec in, one target's speech out at the call's rate
    (no transcript unless it speaks into a room, whose listeners read it), simultaneous at the
    server's defaults when asked for; a conversation's languages in place of source and target."""
    transcript = setup.room is not None
    if setup.eagerness is not None:
        vad = dataclasses.replace(vad, eagerness="" if setup.eagerness == SILENCE_RULE else setup.eagerness)
    output = OutputOptions(
        text=True, speech=True, transcript=transcript, speech_sample_rate_hz=codec.rate, speed=setup.speed
    )
    return StreamConfig(
        format=codec.format,
        source_language=setup.source,
        target_languages=(setup.target,) if setup.target else (),
        output=output,
        vad=vad,
        simultaneous=SimultaneousOptions() if setup.simultaneous else None,
        room=setup.room,
        ear=EarOptions(noise_suppression=setup.noise_suppression),
        conversation=setup.conversation,
        parties=setup.parties,
    )


# -- the carrier's events that are not audio ---------------------------------------------------


@dataclass(frozen=True)
class Started:
    """The carrier said which call this is and how its audio comes (Twilio ``start``, Asterisk
    ``MEDIA_START``, AudioSocket's UUID and first audio frame)."""

    codec: CallCodec
    call_id: str
    #: the call's parameters from the carrier's own message (Twilio's ``customParameters``)
    params: Mapping[str, str]


@dataclass(frozen=True)
class Played:
    """The carrier has played everything sent before the mark ``name``."""

    name: str


@dataclass(frozen=True)
class Dtmf:
    digit: str


@dataclass(frozen=True)
class Hangup:
    """The carrier ended the call (Twilio ``stop``, AudioSocket ``0x00``): no more audio comes."""

    reason: str


@dataclass(frozen=True)
class Flow:
    """The carrier's flow control: ``paused`` on Asterisk's ``MEDIA_XOFF``, not on ``MEDIA_XON``."""

    paused: bool


CarrierEvent = Started | Played | Dtmf | Hangup | Flow
