"""What audio the service accepts, in one leaf both decoders use: sample rates, the Opus clock, clip length.

``codec`` (raw audio, libsndfile containers) and ``opus`` (Opus packets, WebM via PyAV) refuse the
same things with the same words; both import these from here and nothing from each other, so
neither reaches into the other's private helpers and there is no import cycle between them. The
rate limits and the Opus clock are stated in ``rates`` (the client distribution's: the SDK checks
them too) and re-exported here for the session's task check and the doors (light: this module
imports ``rates`` and ``errors`` only).
The model's own rate is not a limit of the input: ``types.MODEL_SAMPLE_RATE``. Pure and thread-safe.
"""

from __future__ import annotations

import math
import sys

from translate_svc.errors import InvalidInput

# The rates and the Opus clock are the client distribution's (translate_svc.wire.rates): the SDK
# checks them too. Re-exported here, where the server's decoders and checks read them.
from translate_svc.wire.rates import MAX_SAMPLE_RATE_HZ as MAX_SAMPLE_RATE_HZ
from translate_svc.wire.rates import MIN_SAMPLE_RATE_HZ as MIN_SAMPLE_RATE_HZ
from translate_svc.wire.rates import OPUS_RATE as OPUS_RATE

#: The most channels a container may have (as raw audio: mono or stereo). Every channel is
#: decoded before the downmix: more would multiply the CPU and memory a clip costs.
MAX_CONTAINER_CHANNELS = 2
#: The most frames a decoder allocates up front from a header's stated length (256 MiB of float32).
PREALLOCATE_MAX_FRAMES = 1 << 26
#: OpenAI's realtime audio (its WebSocket protocol): PCM16 mono at this rate, in and out.
REALTIME_RATE_HZ = 24_000


def check_container_rate(rate: int) -> None:
    """Raise ``InvalidInput`` unless a container's own sample rate is one the service accepts."""
    if not MIN_SAMPLE_RATE_HZ <= rate <= MAX_SAMPLE_RATE_HZ:
        raise InvalidInput(
            f"audio container has sample rate {rate} Hz: resample it to between "
            f"{MIN_SAMPLE_RATE_HZ} and {MAX_SAMPLE_RATE_HZ} Hz"
        )


def check_max_seconds(max_seconds: float | None) -> None:
    """A caller's bug, not the client's: the clip-length limit must be a positive finite number (or None)."""
    if max_seconds is not None and not (max_seconds > 0 and math.isfinite(max_seconds)):
        raise ValueError(f"max_seconds must be a positive number of seconds, not {max_seconds!r}")


def max_frames(max_seconds: float, rate: int) -> int:
    """The most frames a clip of at most ``max_seconds`` holds at ``rate`` (more is too long)."""
    return sys.maxsize if math.isinf(max_seconds) else math.floor(max_seconds * rate)


def too_long(max_seconds: float, *, seconds: float | None = None) -> str:
    """The refusal of a clip over ``max_seconds``: its length if known (``seconds``), and what to do
    (``marking/clips.py`` words it again for a detection, by its "Translate takes at most")."""
    if seconds is None:
        length = f"is longer than {max_seconds:g} s"
    else:  # just over the limit must not print as the limit itself
        shown = f"{seconds:.1f}" if round(seconds, 1) > max_seconds else f"{seconds:.4f}"
        length = f"is {shown} s long"
    return (
        f"the clip {length}; Translate takes at most {max_seconds:g} s "
        "(use StreamingTranslate for longer audio, or split the clip)"
    )


def no_channel(channels: int, channel: int) -> str:
    """Why a clip of ``channels`` channels has no ``channel`` (0-based) to read."""
    return (
        f"the audio has {channels} channel(s): there is no channel {channel + 1} to translate on its own; send "
        "one channel per party (stereo), or leave the channels mixed"
    )
