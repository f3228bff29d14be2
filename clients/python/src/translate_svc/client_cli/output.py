"""What the client commands write, computed without I/O: output names, the JSON result, dub tracks,
subtitles, latency summaries. ``cli/files.py`` writes them.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import soundfile as sf

from translate_svc.client import ModelInfo, Segment, Translation, WordTiming
from translate_svc.subtitles import Cue, TimedWord, cue_text
from translate_svc.wire.pcm import float_to_pcm16 as to_pcm16

#: the ``format`` field of the JSON result ``translate`` writes (``stream``: ``translate-svc.stream.v1``)
RESULT_FORMAT: Final = "translate-svc.result.v1"
SUBTITLE_FORMATS: Final = ("srt", "vtt")
TEXT_FORMATS: Final = ("json", *SUBTITLE_FORMATS)
#: silence between segments in the "segments only" track (``--concat``)
CONCAT_GAP_MS: Final = 300


# -- output names ---------------------------------------------------------------------------------


def output_bases(paths: Sequence[Path]) -> list[str]:
    """A base name per input, for ``<base>.json``, ``<base>.<target>.wav``...: the file's stem, unless
    several inputs share it (``a/x.wav``, ``b/x.wav``): then the shortest run of parent directories
    that tells them apart is put before it, joined with ``_`` (``a_x``, ``b_x``); files that differ
    only by extension keep it (``x.wav``, ``x.flac``). Whatever still collides gets ``-2``, ``-3``."""
    absolute = [p.absolute() for p in paths]
    bases = [p.stem for p in absolute]
    groups: dict[str, list[int]] = {}
    for i, b in enumerate(bases):
        groups.setdefault(b, []).append(i)
    for members in groups.values():
        if len(members) < 2:
            continue
        depth = max(len(absolute[i].parent.parts) - 1 for i in members)
        for with_ext in (False, True):
            found = None
            for k in range(0 if with_ext else 1, depth + 1):
                names = [_with_parents(absolute[i], k, with_ext) for i in members]
                if len(set(names)) == len(names):
                    found = names
                    break
            if found is not None:
                for i, name in zip(members, found, strict=True):
                    bases[i] = name
                break
    seen: dict[str, int] = {}
    out = []
    for b in bases:
        n = seen.get(b, 0) + 1
        seen[b] = n
        out.append(b if n == 1 else f"{b}-{n}")
    return out


def _with_parents(path: Path, k: int, with_ext: bool) -> str:
    parents = [p for p in path.parent.parts if p not in ("/", "\\")][-k:] if k else []
    return "_".join([*parents, path.name if with_ext else path.stem])


def translate_outputs(
    base: str, targets: Sequence[str], formats: Sequence[str], *, speech: bool, concat: bool
) -> list[str]:
    """File names ``translate`` writes for one input (in one directory)."""
    names = [f"{base}.json"] if "json" in formats else []
    for t in targets:
        if speech:
            names.append(f"{base}.{t}.wav")
            if concat:
                names.append(f"{base}.{t}.segments.wav")
        names += [f"{base}.{t}.{fmt}" for fmt in SUBTITLE_FORMATS if fmt in formats]
    if not targets:  # ASR only: subtitles of the transcript
        names += [f"{base}.transcript.{fmt}" for fmt in SUBTITLE_FORMATS if fmt in formats]
    return names


# -- JSON -------------------------------------------------------------------------------------------


def model_json(model: ModelInfo) -> dict[str, Any]:
    return {
        "name": model.name,
        "revision": model.revision,
        "is_test_model": model.is_test_model,
        "num_speakers": model.num_speakers,
    }


def _speech_json(t: Translation) -> dict[str, Any] | None:
    if not t.has_speech:
        return None
    return {
        "sample_rate_hz": t.sample_rate,
        "num_samples": t.num_samples,
        "duration_ms": round(t.duration_s * 1000, 3),
    }


def _words_json(words: Iterable[WordTiming]) -> list[dict[str, Any]]:
    return [{"word": w.word, "start_ms": w.start_ms, "end_ms": w.end_ms} for w in words]


def segment_json(seg: Segment) -> dict[str, Any]:
    """One segment, nothing dropped: ids and times as numbers, status, transcript, every target."""
    return {
        "segment_id": seg.segment_id,
        "start_ms": seg.start_ms,
        "end_ms": seg.end_ms,
        "status": {"code": seg.error.code, "message": seg.error.message}
        if seg.error
        else {"code": "OK", "message": ""},
        "transcript": seg.transcript,
        "transcript_language": seg.transcript_language,
        **({"language_scores": dict(seg.language_scores)} if seg.language_scores else {}),
        **({"transcript_words": _words_json(seg.transcript_words)} if seg.transcript_words else {}),
        "translations": [
            {
                "target_language": t.target,
                "text": t.text,
                "speech": _speech_json(t),
                **({"words": _words_json(t.words)} if t.words else {}),
            }
            for t in seg.translations
        ],
        "timing": {
            "queue_ms": seg.timing.queue_ms,
            "model_ms": seg.timing.model_ms,
            "total_ms": seg.timing.total_ms,
            "vad_wait_ms": seg.timing.vad_wait_ms,
            "speech_ms": seg.timing.speech_ms,
            "language_id_ms": seg.timing.language_id_ms,
        },
    }


def result_json(
    *,
    input_path: str,
    via: str,
    source: str | None,
    targets: Sequence[str],
    model: ModelInfo,
    audio_duration_ms: int,
    segments: Sequence[Segment],
    files: dict[str, dict[str, Any]],
    conversation: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The document ``translate`` writes to ``<base>.json`` (shape in ``translate --help``)."""
    return {
        "format": RESULT_FORMAT,
        "input": input_path,
        "via": via,
        "source_language": source,
        "target_languages": list(targets),
        **({"conversation": list(conversation)} if conversation is not None else {}),
        "model": model_json(model),
        "audio_duration_ms": audio_duration_ms,
        "segments": [segment_json(s) for s in segments],
        "files": files,
    }


# -- audio ------------------------------------------------------------------------------------------


def samples_at(ms: float, rate: int) -> int:
    return round(ms * rate / 1000)


def dub_track(
    duration_ms: int, rate: int, pieces: Iterable[tuple[float, np.ndarray[Any, Any]]], *, extend: bool = False
) -> tuple[np.ndarray[Any, Any], int]:
    """The source's length of silence with each segment's speech (float32, at ``rate``) mixed in
    at its ``start_ms``: speech longer than the gap to the next segment overlaps it (summed and
    clipped); later segments never move. Speech past the source's end is cut unless ``extend``.
    Returns (int16 samples, samples cut)."""
    n = samples_at(duration_ms, rate)
    placed = [(samples_at(start_ms, rate), np.asarray(audio, np.float32)) for start_ms, audio in pieces]
    if extend:
        n = max([n, *(off + len(a) for off, a in placed)])
    track = np.zeros(n, np.float32)
    cut = 0
    for off, audio in placed:
        if off >= n:
            cut += len(audio)
            continue
        take = min(len(audio), n - off)
        cut += len(audio) - take
        track[off : off + take] += audio[:take]
    return to_pcm16(track), cut


def concat_track(
    pieces: Iterable[np.ndarray[Any, Any]], rate: int, gap_ms: int = CONCAT_GAP_MS
) -> np.ndarray[Any, Any]:
    """Every segment's speech back to back, ``gap_ms`` of silence between (the "segments only" track)."""
    gap = np.zeros(samples_at(gap_ms, rate), np.float32)
    parts: list[np.ndarray[Any, Any]] = []
    for audio in pieces:
        if parts:
            parts.append(gap)
        parts.append(np.asarray(audio, np.float32))
    return to_pcm16(np.concatenate(parts) if parts else np.zeros(0, np.float32))


def wav_bytes(samples: np.ndarray[Any, Any], rate: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


# -- subtitles (shaped and written by ``translate_svc.subtitles``) ----------------------------------


def cues(segments: Iterable[Segment], target: str | None) -> list[Cue]:
    """One cue per segment with text in ``target`` (None: its transcript), timed by its span."""
    out: list[Cue] = []
    for seg in segments:
        if not seg.ok:
            continue
        texts = [seg.transcript or ""] if target is None else [t.text for t in seg.translations if t.target == target]
        for text in map(cue_text, texts):
            if text:
                out.append((seg.start_ms, max(seg.end_ms, seg.start_ms + 1), text))
    return out


def timed_words(segments: Iterable[Segment], target: str | None) -> list[list[TimedWord]]:
    """Per segment with word timings, its words on the output's timeline: the transcript's as they
    come (the stream's timeline), a translation's from its segment's ``start_ms`` (where the dub
    track puts its speech)."""
    out = []
    for seg in segments:
        if not seg.ok:
            continue
        if target is None:
            words = [(w.start_ms, w.end_ms, w.word) for w in seg.transcript_words]
        else:
            words = [
                (seg.start_ms + w.start_ms, seg.start_ms + w.end_ms, w.word)
                for t in seg.translations
                if t.target == target
                for w in t.words
            ]
        if words:
            out.append(words)
    return out


# -- latency ----------------------------------------------------------------------------------------


def nearest_rank(sorted_values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank: always one of the values, so never above the max."""
    if not sorted_values:
        raise ValueError("no values")
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def latency_summary(latencies_ms: Sequence[float]) -> str:
    """``p50``/``p95``/``max`` over finite values, or a sentence saying there is nothing to measure."""
    values = sorted(v for v in latencies_ms if math.isfinite(v))
    if not values:
        return "no segments: no latency to report"
    n = len(values)
    return (
        f"latency over {n} segment{'s' if n != 1 else ''}: p50 {nearest_rank(values, 0.5):.0f} ms, "
        f"p95 {nearest_rank(values, 0.95):.0f} ms, max {values[-1]:.0f} ms"
    )
