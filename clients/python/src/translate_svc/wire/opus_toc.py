"""How much audio an Opus packet holds, from its first bytes (RFC 6716, 3.1), without decoding it.

Shared by the server (the reorder window: where the next packet in order starts) and the SDK (its
replay buffer); no codec is imported here.
"""

from __future__ import annotations

#: frame sizes of the 32 Opus configurations in 48 kHz samples (RFC 6716, Table 2)
_SILK = (480, 960, 1920, 2880)  # 10, 20, 40, 60 ms (configs 0-11)
_HYBRID = (480, 960)  # 10, 20 ms (configs 12-15)
_CELT = (120, 240, 480, 960)  # 2.5, 5, 10, 20 ms (configs 16-31)
_MAX_PACKET_SAMPLES = 5760  # 120 ms


def packet_samples(packet: bytes) -> int | None:
    """Duration of one Opus packet in 48 kHz samples, from its TOC byte; None when unreadable."""
    if not packet:
        return None
    toc = packet[0]
    config = toc >> 3
    if config < 12:
        frame = _SILK[config % 4]
    elif config < 16:
        frame = _HYBRID[config % 2]
    else:
        frame = _CELT[config % 4]
    code = toc & 0x3
    if code == 0:
        frames = 1
    elif code in (1, 2):
        frames = 2
    else:
        if len(packet) < 2:
            return None
        frames = packet[1] & 0x3F
        if frames == 0:
            return None
    total = frame * frames
    return total if total <= _MAX_PACKET_SAMPLES else None
