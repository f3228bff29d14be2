"""translate.proto's option messages <-> the domain's options, for every door that speaks that
proto: the Translator (``grpc/``: a stream's config, a clip, a text) and the jobs door's gRPC
service (``jobs/grpc_door.py``: ``CreateJob``). ``OutputOptions`` (its speaking rate and
profanity filter included), a clip's or a job's ``SpeechFit``, and the ``noise_suppression`` and
``speakers`` fields (``EarOptions``), each parsed once here so the two doors refuse the same value
in the same words, and neither door imports the other (the door independence contract). Pure
functions: safe from any thread."""

from __future__ import annotations

from typing import Protocol

from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.audio.limits import OPUS_RATE  # Opus's clock: Opus speech's default rate
from translate_svc.errors import InvalidInput
from translate_svc.session.task.checks import check_ear, options_at
from translate_svc.types import (
    DubFit,
    EarOptions,
    OutputOptions,
    Profanity,
    SpeechEncoding,
)

_SPEECH_ENCODINGS = {
    pb.SPEECH_ENCODING_UNSPECIFIED: SpeechEncoding.LINEAR16,
    pb.SPEECH_ENCODING_LINEAR16: SpeechEncoding.LINEAR16,
    pb.SPEECH_ENCODING_OPUS: SpeechEncoding.OPUS,
}
_SPEECH_ENCODINGS_BACK = {
    SpeechEncoding.LINEAR16: pb.SPEECH_ENCODING_LINEAR16,
    SpeechEncoding.OPUS: pb.SPEECH_ENCODING_OPUS,
}


def output_options(msg: pb.OutputOptions, has: bool) -> OutputOptions:
    """Absent message or absent field: true (text, speech, transcript), 16 kHz, speaker 0."""
    if not has:
        return OutputOptions()
    d = OutputOptions()
    if msg.speech_encoding not in _SPEECH_ENCODINGS:
        raise InvalidInput(
            f"output.speech_encoding is {msg.speech_encoding}: use SPEECH_ENCODING_LINEAR16 or SPEECH_ENCODING_OPUS"
        )
    if msg.profanity not in pb.ProfanityFilter.values():
        raise InvalidInput(f"output.profanity is {msg.profanity}: use one of {', '.join(pb.ProfanityFilter.keys())}")
    encoding = _SPEECH_ENCODINGS[msg.speech_encoding]
    default_rate = OPUS_RATE if encoding is SpeechEncoding.OPUS else d.speech_sample_rate_hz
    with options_at("output."):
        return OutputOptions(
            text=msg.text if msg.HasField("text") else d.text,
            speech=msg.speech if msg.HasField("speech") else d.speech,
            transcript=msg.transcript if msg.HasField("transcript") else d.transcript,
            speech_sample_rate_hz=msg.speech_sample_rate_hz or default_rate,
            speaker_id=msg.speaker_id if msg.HasField("speaker_id") else d.speaker_id,
            speech_encoding=encoding,
            word_timings=msg.word_timings,
            profanity=Profanity(pb.ProfanityFilter.Name(msg.profanity)[17:].lower()) if msg.profanity else None,
            speed=round(msg.speed, 6) if msg.HasField("speed") else d.speed,  # a float32 as the client wrote it
        )


def speech_fit(msg: pb.SpeechFit, has: bool, default: DubFit) -> DubFit | None:
    """A clip's or a job's ``fit`` (dubbing to the source's clock): None when absent; an
    unset bound is the server's (``default``: ``jobs.fit_slowest``, ``jobs.fit_fastest``); the
    bound checks itself (``DubFit``), refused as InvalidInput naming ``fit.slowest`` or ``fit.fastest``."""
    if not has:
        return None
    with options_at("fit."):
        return DubFit(
            round(msg.slowest, 6) if msg.HasField("slowest") else default.slowest,
            round(msg.fastest, 6) if msg.HasField("fastest") else default.fastest,
        )


def output_options_to_pb(o: OutputOptions) -> pb.OutputOptions:
    return pb.OutputOptions(
        text=o.text,
        speech=o.speech,
        transcript=o.transcript,
        speech_sample_rate_hz=o.speech_sample_rate_hz,
        speaker_id=o.speaker_id,
        speech_encoding=_SPEECH_ENCODINGS_BACK[o.speech_encoding],
        word_timings=o.word_timings,
        profanity=getattr(pb, f"PROFANITY_FILTER_{(o.profanity or 'unspecified').upper()}"),
        speed=o.speed,
    )


# -- noise suppression and speaker labels (``EarOptions``) ----------------------------------

_NOISE_SUPPRESSIONS = (pb.NOISE_SUPPRESSION_UNSPECIFIED, pb.NOISE_SUPPRESSION_OFF, pb.NOISE_SUPPRESSION_RNNOISE)


class _HasEar(Protocol):
    noise_suppression: int
    speakers: int


def channel_mode(mode: int, field: str) -> bool:
    """A ``ChannelMode``: whether the channels are heard apart (SEPARATE) or mixed."""
    if mode not in (pb.CHANNEL_MODE_MIXED, pb.CHANNEL_MODE_SEPARATE):
        raise InvalidInput(f"{field} {mode} is unknown: send MIXED or SEPARATE")
    return mode == pb.CHANNEL_MODE_SEPARATE


def ear_options(msg: _HasEar, where: str) -> EarOptions:
    """``where``: the message's name in messages ("config", "request")."""
    ns = msg.noise_suppression
    if ns not in _NOISE_SUPPRESSIONS:
        raise InvalidInput(
            f"{where}.noise_suppression is {ns}: use NOISE_SUPPRESSION_OFF (or leave it unset) or "
            "NOISE_SUPPRESSION_RNNOISE"
        )
    with options_at(f"{where}."):
        ear = EarOptions(noise_suppression=ns == pb.NOISE_SUPPRESSION_RNNOISE, speakers=msg.speakers)
    check_ear(ear)
    return ear


def ear_to_pb(ear: EarOptions, msg: pb.StreamingConfig) -> None:
    """The resolved options into StreamStarted's config."""
    msg.noise_suppression = pb.NOISE_SUPPRESSION_RNNOISE if ear.noise_suppression else pb.NOISE_SUPPRESSION_OFF
    msg.speakers = ear.speakers
