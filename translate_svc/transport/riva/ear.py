"""The Riva door's ear. Speaker diarization: ``RecognitionConfig.diarization_config`` on
StreamingRecognize -> the stream's speaker labels, returned as each word's ``speaker_tag`` (Riva's
only place for them), so it turns word timings on with it. Noise suppression:
``custom_configuration["noise_suppression"]`` (our extension: Riva's config has no field for it)
on every stream that takes audio."""

from __future__ import annotations

from riva.client.proto import riva_asr_pb2 as asr

from translate_svc.errors import InvalidInput, shown
from translate_svc.types import MAX_SPEAKERS

#: speakers told apart when ``max_speaker_count`` is 0 (unset)
DEFAULT_SPEAKERS = 4
#: ``custom_configuration``'s key for noise suppression (RNNoise before the VAD and the model)
NOISE_KEY = "noise_suppression"


def diarization(cfg: asr.RecognitionConfig, field: str) -> int:
    """The most speakers to tell apart (0: off); ``field``: the config's name in messages."""
    d = cfg.diarization_config
    if not d.enable_speaker_diarization:
        return 0
    n = d.max_speaker_count or DEFAULT_SPEAKERS
    if not 1 <= n <= MAX_SPEAKERS:
        raise InvalidInput(
            f"{field}.diarization_config.max_speaker_count is {d.max_speaker_count}: use 1..{MAX_SPEAKERS} "
            f"(0: {DEFAULT_SPEAKERS})"
        )
    return n


def noise_suppression(cfg: asr.RecognitionConfig, field: str) -> bool:
    """``custom_configuration["noise_suppression"]``: ``true`` (or ``1``) runs RNNoise on the
    stream before the VAD; ``false``, ``0`` or absent: off. ``field``: the config's name in messages."""
    given = cfg.custom_configuration.get(NOISE_KEY)
    if given is None or given.strip().lower() in ("false", "0"):
        return False
    if given.strip().lower() in ("true", "1"):
        return True
    raise InvalidInput(
        f'{field}.custom_configuration[{NOISE_KEY}] is {shown(given, 40)}: "true" (RNNoise before the VAD) or "false"'
    )
