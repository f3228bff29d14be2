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
    #: the file's C2PA manifest as the server checked it; None: the file carries none
    content_credentials: ContentCredentials | None = None


@dataclass(frozen=True)
class ContentCredentials:
    """A file's C2PA manifest: ``state`` "Trusted" (intact, signed under a CA the server trusts),
    "Valid" (intact, its signer unknown to the server) or "Invalid" (changed since signed, or
    unreadable: ``failures``); ``generated``: it says a trained model made the file; what it names
    (model, source hash, time: the signer's claims, "" when absent) and who signed it."""

    state: str
    generated: bool
    model: str
    source_sha256: str
    created: str
    issuer: str
    signer: str
    failures: tuple[str, ...]


def detection(msg: pb.DetectSyntheticResponse) -> Detection:
    c = msg.content_credentials
    return Detection(
        probability=msg.probability,
        marked=msg.marked,
        conclusive=msg.conclusive,
        spans=tuple((s.start_ms, s.end_ms) for s in msg.spans),
        watermarker=msg.watermarker,
        audio_duration_ms=msg.audio_duration_ms,
        content_credentials=ContentCredentials(
            c.state, c.generated, c.model, c.source_sha256, c.created, c.issuer, c.signer, tuple(c.failures)
        )
        if msg.HasField("content_credentials")
        else None,
    )
