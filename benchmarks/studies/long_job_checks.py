"""The checks of ``long_job.py`` (issue 73), pure: a job's segments and ``TranslateChunked``'s in
one shape and where they first differ, a dubbed track's length from its segments, and a webhook's
Standard Webhooks signature checked from the documented format (docs/api.md, the scheme's spec)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from translate_svc.client import Segment

RATE = 16_000
#: a webhook older or newer than this is refused (the scheme's advice: 5 minutes)
WEBHOOK_TOLERANCE_S = 300


def verify_webhook(secret: str, headers: dict[str, str], body: bytes, now: float) -> bool:
    """Whether a delivery is signed with ``secret``: ``webhook-signature`` holds ``v1,<base64 of
    HMAC-SHA256 over "{webhook-id}.{webhook-timestamp}.{body}">`` (one of its space-separated
    entries), keyed with the base64 after ``whsec_``; its timestamp within the tolerance."""
    try:
        msg_id, stamp = headers["webhook-id"], int(headers["webhook-timestamp"])
        signatures = headers["webhook-signature"].split()
    except (KeyError, ValueError):
        return False
    if abs(now - stamp) > WEBHOOK_TOLERANCE_S:
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = base64.b64encode(hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest())
    return any(hmac.compare_digest(expected, s.partition(",")[2].encode()) for s in signatures if s.startswith("v1,"))


def _words(words: Sequence[Any]) -> list[tuple[str, int, int, int]]:
    return [
        (w["word"], w["start_ms"], w["end_ms"], w["speaker"])
        if isinstance(w, dict)
        else (w.word, w.start_ms, w.end_ms, w.speaker)
        for w in words
    ]


def job_record(seg: dict[str, Any]) -> dict[str, Any]:
    """A job's segment (its results JSON) in the shape both sides are compared in."""
    transcript = seg.get("transcript") or {}
    error = seg.get("error")
    return {
        "segment_id": seg["segment_id"],
        "start_ms": seg["start_ms"],
        "end_ms": seg["end_ms"],
        "speaker": seg.get("speaker", 0),
        "transcript": transcript.get("text"),
        "transcript_words": _words(transcript.get("words", [])),
        "translations": [
            {"target": t["target_language"], "text": t["text"], "words": _words(t["words"]), "speech_ms": t["audio_ms"]}
            for t in seg["translations"]
        ],
        "error": None if error is None else error["code"],
    }


def chunked_record(seg: Segment) -> dict[str, Any]:
    """A ``TranslateChunked`` segment (the SDK's) in the same shape."""
    return {
        "segment_id": seg.segment_id,
        "start_ms": seg.start_ms,
        "end_ms": seg.end_ms,
        "speaker": seg.speaker,
        "transcript": seg.transcript,
        "transcript_words": _words(seg.transcript_words),
        "translations": [
            {
                "target": t.target,
                "text": t.text,
                "words": _words(t.words),
                "speech_ms": round(t.num_samples * 1000 / t.sample_rate) if t.audio is not None else 0,
            }
            for t in seg.translations
        ],
        "error": None if seg.error is None else seg.error.code,
    }


def first_difference(a: Any, b: Any, where: str = "") -> str | None:
    """Where ``a`` (the job's) and ``b`` (TranslateChunked's) first differ, and how; None if equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                return f"{where}.{key}: only in {'the job' if key in a else 'TranslateChunked'}"
            if (found := first_difference(a[key], b[key], f"{where}.{key}")) is not None:
                return found
        return None
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            if (found := first_difference(x, y, f"{where}[{i}]")) is not None:
                return found
        if len(a) != len(b):
            return f"{where}: {len(a)} items in the job, {len(b)} in TranslateChunked"
        return None
    if a != b:
        return f"{where}: job {a!r:.80} vs TranslateChunked {b!r:.80}"
    return None


@dataclass
class Comparison:
    job_segments: int
    chunked_segments: int
    differing: int
    first: str | None

    @property
    def equal(self) -> bool:
        return self.first is None


def compare(job: Sequence[dict[str, Any]], chunked: Sequence[dict[str, Any]]) -> Comparison:
    """Every segment of the job against TranslateChunked's (both as ``job_record``/``chunked_record``)."""
    differing, first = 0, None
    for i, (a, b) in enumerate(zip(job, chunked, strict=False)):
        if (found := first_difference(a, b)) is not None:
            differing += 1
            first = first or f"segment {i} (job's id {a.get('segment_id')}){found}"
    if len(job) != len(chunked) and first is None:
        first = f"the job has {len(job)} segments, TranslateChunked {len(chunked)}"
    return Comparison(len(job), len(chunked), differing, first)


def implied_track_samples(source_frames: int, source_rate: int, rate: int = RATE) -> int:
    """A dubbed track's length: the source's, at the track's rate (issue 91, jobs/dub.py: each
    segment's speech at its start, the track as long as the audio)."""
    return round(source_frames * rate / source_rate)
