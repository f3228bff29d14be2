"""What the jobs' tests share (issue 73): the targets they ask for, and a ``TranslateChunked``
answer and a job's stored segments in one comparable shape (times, texts, speech lengths)."""

from __future__ import annotations

from typing import Any

from translate_svc.api.v1 import translate_pb2 as pb

TARGETS = ("spa", "fra")


def chunked_segments(response: pb.TranslateResponse) -> list[dict[str, Any]]:
    return [
        {
            "start_ms": s.start_ms,
            "end_ms": s.end_ms,
            "transcript": s.transcript.text,
            "translations": [(t.target_language, t.text, len(t.audio.content) // 2) for t in s.translations],
        }
        for s in response.segments
    ]


def job_segments(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "start_ms": r["start_ms"],
            "end_ms": r["end_ms"],
            "transcript": r["transcript"]["text"],
            "translations": [(t["target_language"], t["text"], t["audio_ms"] * 16) for t in r["translations"]],
        }
        for r in results
    ]
