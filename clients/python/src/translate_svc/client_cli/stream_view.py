"""What a ``stream`` command has received, shown as it arrives: human lines, JSON lines, latencies.

Kept when the command is interrupted: the summary and the dub tracks are made from it after Ctrl-C.
"""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass, field
from typing import IO

from rich.console import Console
from rich.text import Text

from translate_svc.client import (
    Commit,
    Draining,
    EagerEndOfTurn,
    Interim,
    ModelInfo,
    Segment,
    SpeechEvent,
    StreamEnd,
    StreamEvent,
    StreamInfo,
    TurnResumed,
)
from translate_svc.client_cli.common import one_line
from translate_svc.client_cli.event_lines import EventLines
from translate_svc.client_cli.output import latency_summary, model_json, nearest_rank, segment_json

#: the ``format`` of ``stream``'s first JSON line
STREAM_FORMAT = "translate-svc.stream.v1"


@dataclass
class StreamView(EventLines):
    """One stream's events so far; ``human`` gets a line per event, ``jsonl`` (if any) a JSON object."""

    label: str
    targets: list[str]
    human: Console
    jsonl: IO[str] | None
    realtime: bool
    #: a conversation's languages (``targets`` then holds them too); None: fixed targets
    conversation: list[str] | None = None
    segments: list[Segment] = field(default_factory=list)
    #: simultaneous mode: every commit, in arrival order (their speech makes the dub track)
    commits: list[Commit] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    sent_ends_ms: list[float] = field(default_factory=list)
    sent_times: list[float] = field(default_factory=list)
    audio_sent_ms: float = 0.0
    audio_received_ms: int | None = None
    t0: float = field(default_factory=time.perf_counter)
    model: ModelInfo | None = None
    summary_done: bool = False

    def started(self, info: StreamInfo, source: str | None) -> None:
        """The stream was accepted: the clock starts now."""
        self.model = info.model
        self.t0 = time.perf_counter()
        self.emit(
            {
                "type": "started",
                "format": STREAM_FORMAT,
                "input": self.label,
                "session_id": info.session_id,
                "server": info.address,
                "source_language": source,
                "target_languages": [] if self.conversation is not None else self.targets,
                **({"conversation": self.conversation} if self.conversation is not None else {}),
                "model": model_json(info.model),
                "simultaneous": None
                if info.simultaneous is None
                else {"step_ms": info.simultaneous.step_ms, "agreement": info.simultaneous.agreement},
            }
        )

    def sent(self, end_ms: float) -> None:
        self.audio_sent_ms = end_ms
        self.sent_ends_ms.append(end_ms)
        self.sent_times.append(time.perf_counter())

    def latency_ms(self, end_ms: int) -> float | None:
        """From the moment the segment's last audio was sent to now."""
        if not self.sent_ends_ms:
            return None
        i = bisect.bisect_left(self.sent_ends_ms, end_ms)
        t_sent = self.sent_times[min(i, len(self.sent_times) - 1)]
        return (time.perf_counter() - t_sent) * 1000

    def on_event(self, ev: StreamEvent) -> None:
        if isinstance(ev, Segment):
            self._segment(ev)
        elif isinstance(ev, Commit):
            self._commit(ev)
        elif isinstance(ev, SpeechEvent):
            self.emit({"type": "speech", "event": ev.type.value, "offset_ms": ev.offset_ms})
            self.say((f"speech {ev.type.value} at {ev.offset_ms} ms", "dim"))
        elif isinstance(ev, EagerEndOfTurn):
            self.emit({"type": "eager_end", "segment_id": ev.segment_id, "start_ms": ev.start_ms, "end_ms": ev.end_ms})
            self.say((f"segment {ev.segment_id} may end at {ev.end_ms} ms: translating it now", "dim"))
        elif isinstance(ev, TurnResumed):
            self.emit({"type": "turn_resumed", "segment_id": ev.segment_id, "offset_ms": ev.offset_ms})
            self.say((f"segment {ev.segment_id} goes on: speech resumed at {ev.offset_ms} ms", "dim"))
        elif isinstance(ev, Interim):
            self._interim(ev)
        elif isinstance(ev, Draining):
            self.emit({"type": "draining", "remaining_ms": ev.remaining_ms})
            self.say((f"the server is shutting down; the stream moves in {ev.remaining_ms} ms", "yellow"))
        elif isinstance(ev, StreamEnd):
            self.audio_received_ms = ev.audio_received_ms
            self.emit(
                {
                    "type": "end",
                    "reason": ev.reason.value,
                    "segments_total": ev.segments_total,
                    "audio_received_ms": ev.audio_received_ms,
                    "audio_filled_ms": ev.audio_filled_ms,
                    "code": ev.code.name,
                    "message": ev.message,
                }
            )
            why = "" if ev.clean else f" ({ev.reason.value})"
            self.say(f"ended{why}: {ev.segments_total} segments, {ev.audio_received_ms} ms of audio")

    def _segment(self, ev: Segment) -> None:
        lat = self.latency_ms(ev.end_ms)
        self.segments.append(ev)
        if lat is not None:
            self.latencies.append(lat)
        simul = {"speech_in_commits": True} if ev.speech_in_commits else {}
        self.emit(
            {"type": "segment", **segment_json(ev), **simul, "latency_ms": None if lat is None else round(lat, 1)}
        )
        texts = "; ".join(f"{t.target}: {one_line(t.text)!r}" for t in ev.translations)
        said = f" {one_line(ev.transcript)!r} ->" if ev.transcript is not None else ""
        if ev.detected_language is not None:  # detected (--from auto, --conversation): its source first
            said = f" {ev.detected_language}:{said}"
        status = "" if ev.error is None else f"  {ev.error.code}: {one_line(ev.error.message)}"
        lat_s = "" if lat is None else f"  latency {lat:.0f} ms"
        self.say(f"segment {ev.segment_id} [{ev.start_ms}-{ev.end_ms} ms]{lat_s} |{said} {texts}", (status, "red"))

    def _commit(self, ev: Commit) -> None:
        t = ev.translation
        chunk_ms = round(t.duration_s * 1000, 1) if t.has_speech else 0
        self.commits.append(ev)
        self.emit(
            {
                "type": "commit",
                "segment_id": ev.segment_id,
                "target_language": t.target,
                "text": t.text,
                "source_ms": ev.source_ms,
                "speech_ms": chunk_ms,
                "final": ev.final,
                "restart": ev.restart,
            }
        )
        marks = (" final" if ev.final else "") + (" (restart: the segment is translated again)" if ev.restart else "")
        self.say(
            f"commit {ev.segment_id} {t.target} +{one_line(t.text)!r} at {ev.source_ms} ms, {chunk_ms:g} ms speech",
            (marks, "dim"),
        )

    def _interim(self, ev: Interim) -> None:
        self.emit(
            {
                "type": "interim",
                "segment_id": ev.segment_id,
                "start_ms": ev.start_ms,
                "end_ms": ev.end_ms,
                "transcript": ev.transcript,
                "translations": [{"target_language": t.target, "text": t.text} for t in ev.translations],
            }
        )
        self.say((f"caption {ev.segment_id}: " + "; ".join(one_line(t.text) for t in ev.translations), "dim"))

    def summary(self, *, interrupted: bool) -> None:
        """The last JSON line and the latency line (once, also after Ctrl-C)."""
        if self.summary_done:
            return
        self.summary_done = True
        values = sorted(self.latencies)
        latency = (
            {
                "n": len(values),
                "p50": round(nearest_rank(values, 0.5), 1),
                "p95": round(nearest_rank(values, 0.95), 1),
                "max": round(values[-1], 1),
            }
            if values
            else None
        )
        self.emit(
            {
                "type": "summary",
                "input": self.label,
                "segments": len(self.segments),
                "failed": sum(1 for s in self.segments if not s.ok),
                "audio_sent_ms": round(self.audio_sent_ms, 1),
                "interrupted": interrupted,
                "latency_ms": latency,
            }
        )
        what = "segment's last audio sent -> its result"
        if not self.realtime:
            what += "; audio sent faster than real time, so this includes waiting behind earlier audio"
        text = latency_summary(values)
        self.human.print(Text(text + (f" ({what})" if values else "")), soft_wrap=True)
