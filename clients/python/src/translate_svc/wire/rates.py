"""The sample rates the service accepts and the Opus clock: stated here once, for the server and its
client SDK (``translate_svc.audio.limits`` imports them; the SDK and the client commands check them
before a call). A leaf of the client distribution: imports nothing. Pure and thread-safe.
"""

from __future__ import annotations

#: Opus's clock (RFC 7587): the rate Opus always decodes (and here encodes) at, and the unit of an
#: OPUS stream's timeline and packet timestamps, whatever rate the sender encoded at.
OPUS_RATE = 48_000

#: Sample rates accepted for raw audio and in containers, and asked of speech output
#: (``output.speech_sample_rate_hz``).
MIN_SAMPLE_RATE_HZ = 8_000
MAX_SAMPLE_RATE_HZ = 48_000
