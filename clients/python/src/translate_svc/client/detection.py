"""What ``detect_synthetic`` answers: whether a clip carries the watermark translate_svc adds to the
speech it makes, and where (docs/api.md, "Marked speech")."""

from __future__ import annotations

from dataclasses import dataclass

from translate_svc.api.v1 import translate_pb2 as pb


@dataclass(frozen=True)
class Detection:
    """``probability``: how surely the clip carries the mark (0-1, uncalibrated); ``marked``: over the
    server's bound (0.75); ``conclusive``: the clip is long enough (2 s and more) for ``marked`` to
    tell marked from unmarked speech; ``spans``: the (start_ms, end_ms) stretches read as marked;
    ``watermarker``: the mark looked for (scheme and checkpoint); the clip's length."""

    probability: float
    marked: bool
    conclusive: bool
    spans: tuple[tuple[int, int], ...]
    watermarker: str
    audio_duration_ms: int


def detection(msg: pb.DetectSyntheticResponse) -> Detection:
    return Detection(
        probability=msg.probability,
        marked=msg.marked,
        conclusive=msg.conclusive,
        spans=tuple((s.start_ms, s.end_ms) for s in msg.spans),
        watermarker=msg.watermarker,
        audio_duration_ms=msg.audio_duration_ms,
    )
