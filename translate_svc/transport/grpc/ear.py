"""The gRPC door's noise suppression and speaker options: StreamingConfig's and
TranslateRequest's ``noise_suppression`` and ``speakers`` <-> ``EarOptions``; a result's speaker."""

from __future__ import annotations

from typing import Protocol

from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.errors import InvalidInput
from translate_svc.session.task.checks import check_ear
from translate_svc.types import EarOptions

_KNOWN = (pb.NOISE_SUPPRESSION_UNSPECIFIED, pb.NOISE_SUPPRESSION_OFF, pb.NOISE_SUPPRESSION_RNNOISE)


class _HasEar(Protocol):
    noise_suppression: int
    speakers: int


def ear_options(msg: _HasEar, where: str) -> EarOptions:
    """``where``: the message's name in messages ("config", "request")."""
    ns = msg.noise_suppression
    if ns not in _KNOWN:
        raise InvalidInput(
            f"{where}.noise_suppression is {ns}: use NOISE_SUPPRESSION_OFF (or leave it unset) or "
            "NOISE_SUPPRESSION_RNNOISE"
        )
    ear = EarOptions(noise_suppression=ns == pb.NOISE_SUPPRESSION_RNNOISE, speakers=msg.speakers)
    check_ear(ear, f"{where}.speakers")
    return ear


def ear_to_pb(ear: EarOptions, msg: pb.StreamingConfig) -> None:
    """The resolved options into StreamStarted's config."""
    msg.noise_suppression = pb.NOISE_SUPPRESSION_RNNOISE if ear.noise_suppression else pb.NOISE_SUPPRESSION_OFF
    msg.speakers = ear.speakers
