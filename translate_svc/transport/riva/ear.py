"""The Riva door's speaker diarization (issue 72): ``RecognitionConfig.diarization_config`` on
StreamingRecognize -> the stream's speaker labels, returned as each word's ``speaker_tag`` (Riva's
only place for them), so it turns word timings on with it."""

from __future__ import annotations

from riva.client.proto import riva_asr_pb2 as asr

from translate_svc.errors import InvalidInput
from translate_svc.speakers.cluster import MAX_SPEAKERS

#: speakers told apart when ``max_speaker_count`` is 0 (unset)
DEFAULT_SPEAKERS = 4


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
