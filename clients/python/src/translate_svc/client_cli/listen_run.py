"""The work of ``listen``: check the language, listen through the SDK, show each event as a text
line or a JSON line as it arrives, and write each speaker's speech after the end (or Ctrl-C)."""

from __future__ import annotations

import asyncio
import glob
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from rich.console import Console
from rich.text import Text

from translate_svc.client import (
    Draining,
    ListenDropped,
    ListenEnd,
    ListenEndedError,
    ListenEvent,
    ListenStarted,
    RoomCaption,
    RoomSegment,
)
from translate_svc.client_cli import files
from translate_svc.client_cli.common import EXIT_INTERRUPTED, EXIT_OK, NOISE_WARNING, CliError, err, note, one_line, out
from translate_svc.client_cli.event_lines import EventLines
from translate_svc.client_cli.flags import Connection
from translate_svc.client_cli.lang import UnknownLanguage, resolve_language, server_languages
from translate_svc.client_cli.output import segment_json
from translate_svc.languages import guess_model_code

#: the ``format`` of ``listen --json``'s ``started`` line
LISTEN_FORMAT = "translate-svc.listen.v1"


@dataclass(frozen=True)
class ListenPlan:
    """One ``listen`` command's options."""

    room: str
    language: str
    participant: str | None
    as_json: bool
    out_dir: Path | None
    overwrite: bool
    resume: bool
    lang_check: bool
    #: the speaking rate asked for (None: each speaker's own)
    speed: float | None = None
    #: a conversation's turns heard in this language with their own audio (else as text)
    original: bool = False


@dataclass
class ListenView(EventLines):
    """What a listen received so far: a text line per event (``human``: stdout, or stderr when
    ``jsonl`` is stdout), a JSON line too with ``--json``, and each speaker's live segments with
    speech (for ``--out``)."""

    human: Console
    jsonl: IO[str] | None
    segments: int = 0
    backlog: int = 0
    captions: int = 0
    dropped: int = 0
    resumes: int = 0
    #: speaker -> its live segments that carry speech, in arrival order
    speech: dict[str, list[RoomSegment]] = field(default_factory=dict)
    t0: float = field(default_factory=time.perf_counter)
    summary_done: bool = False

    def on_event(self, ev: ListenEvent) -> None:
        if isinstance(ev, RoomSegment):
            self._segment(ev)
        elif isinstance(ev, RoomCaption):
            self._caption(ev)
        elif isinstance(ev, ListenStarted):
            self._started(ev)
        elif isinstance(ev, ListenDropped):
            self.dropped += ev.count
            self.emit({"type": "dropped", "count": ev.count, "total": ev.total})
            self.say((f"fell behind: the server dropped {ev.count} event(s) ({ev.total} on this call)", "yellow"))
        elif isinstance(ev, Draining):
            self.emit({"type": "draining", "remaining_ms": ev.remaining_ms})
            self.say((f"the server is shutting down; the listen ends in {ev.remaining_ms} ms", "yellow"))
        elif isinstance(ev, ListenEnd):
            self.emit({"type": "end", "reason": ev.reason.value, "code": ev.code.name, "message": ev.message})
            self.say((f"the server ended the listen: {ev.reason.value} ({ev.code.name})", "yellow"))

    def _started(self, ev: ListenStarted) -> None:
        self.resumes = ev.resumes
        speakers = [{"id": s.id, "first_segment_id": s.first_segment_id} for s in ev.speakers]
        self.emit(
            {
                "type": "started",
                "format": LISTEN_FORMAT,
                "room": ev.room,
                "language": ev.language,
                "participant": ev.participant,
                "backlog": ev.backlog,
                "speakers": speakers,
                "server": ev.address,
                "resumes": ev.resumes,
            }
        )
        again = f" again (move {ev.resumes})" if ev.resumes else ""
        who = ", ".join(s.id for s in ev.speakers) or "none yet"
        self.say(
            f"listening{again} to room {ev.room} in {ev.language} on {ev.address}: "
            f"{ev.backlog} backlog segment(s) follow; speakers: {who}"
        )

    def _segment(self, ev: RoomSegment) -> None:
        seg = ev.segment
        self.segments += 1
        self.backlog += ev.backlog
        if not ev.backlog and ev.translation is not None and ev.translation.has_speech:
            self.speech.setdefault(ev.speaker, []).append(ev)
        self.emit({"type": "segment", "speaker": ev.speaker, "backlog": ev.backlog, **segment_json(seg)})
        mark = ("[backlog] ", "dim") if ev.backlog else ""
        said = f" {one_line(seg.transcript)!r} ->" if seg.transcript is not None else ""
        text = one_line(ev.translation.text) if ev.translation is not None else ""
        status = "" if seg.error is None else f"  {seg.error.code}: {one_line(seg.error.message)}"
        self.say(
            mark, f"{ev.speaker} {seg.segment_id} [{seg.start_ms}-{seg.end_ms} ms] |{said} {text!r}", (status, "red")
        )

    def _caption(self, ev: RoomCaption) -> None:
        c = ev.caption
        self.captions += 1
        text = c.translations[0].text if c.translations else ""
        self.emit(
            {
                "type": "caption",
                "speaker": ev.speaker,
                "segment_id": c.segment_id,
                "start_ms": c.start_ms,
                "end_ms": c.end_ms,
                "transcript": c.transcript,
                "text": text,
            }
        )
        self.say((f"caption {ev.speaker} {c.segment_id}: {one_line(text)}", "dim"))

    def summary(self, room: str, language: str, *, interrupted: bool) -> None:
        if self.summary_done:
            return
        self.summary_done = True
        self.emit(
            {
                "type": "summary",
                "room": room,
                "language": language,
                "segments": self.segments,
                "backlog_segments": self.backlog,
                "captions": self.captions,
                "dropped": self.dropped,
                "resumes": self.resumes,
                "interrupted": interrupted,
            }
        )
        lost = f", {self.dropped} event(s) dropped (fell behind)" if self.dropped else ""
        self.say(
            f"heard {self.segments} segment(s) ({self.backlog} from the backlog), {self.captions} caption(s){lost}"
        )


class ListenJob:
    """One ``listen`` command; ``view`` keeps what arrived for ``finish`` (also after Ctrl-C)."""

    def __init__(self, conn: Connection, plan: ListenPlan) -> None:
        self.conn = conn
        self.plan = plan
        self.language = plan.language
        self.view: ListenView | None = None

    def run(self) -> int:
        plan = self.plan
        if plan.out_dir is not None:
            files.check_dir(plan.out_dir)
        return asyncio.run(self._main())

    async def _main(self) -> int:
        plan = self.plan
        async with self.conn.client() as client:
            langs = await server_languages(client, plan.lang_check)
            if langs is None:
                self.language = guess_model_code(plan.language) if plan.lang_check else plan.language.strip()
            else:
                if langs.model.is_test_model:
                    note(NOISE_WARNING, "bold yellow")
                try:
                    lang = resolve_language(plan.language, langs.languages, what="language (--language)")
                except UnknownLanguage as e:
                    raise CliError(str(e)) from None
                if not lang.text_output:
                    raise CliError(f"{lang.code} ({lang.name}) has no text output on this model: it cannot be heard")
                self.language = lang.code
            self._check_outputs()
            view = self.view = ListenView(err if plan.as_json else out, sys.stdout if plan.as_json else None)
            ended: ListenEndedError | None = None
            async with client.listen(
                plan.room,
                self.language,
                plan.participant,
                resume=plan.resume,
                speed=plan.speed,
                original=plan.original,
            ) as room:
                try:
                    async for ev in room:
                        view.on_event(ev)
                except ListenEndedError as e:
                    ended = e  # what arrived is written first
        code = self.finish(interrupted=False)
        if ended is not None:
            raise ended  # one line, exit 1 (common.from_status)
        return code

    def _check_outputs(self) -> None:
        """Before listening: no speech file of this room and language in --out, unless --overwrite
        (the speakers are known only as they speak, so the files they would take are looked for)."""
        plan = self.plan
        if plan.out_dir is None or plan.overwrite or not plan.out_dir.is_dir():
            return
        taken = sorted(plan.out_dir.glob(f"{glob.escape(plan.room)}.*.{glob.escape(self.language)}.wav"))
        if taken:
            raise CliError(
                f"{taken[0]} already exists (a speech file of room {plan.room} in {self.language}): pass "
                "--overwrite to replace such files, or choose another --out"
            )

    def finish(self, *, interrupted: bool) -> int:
        """The summary, and each speaker's speech; the exit code."""
        view, plan = self.view, self.plan
        if view is None:  # interrupted before the listen started
            return EXIT_INTERRUPTED
        view.summary(plan.room, self.language, interrupted=interrupted)
        if plan.out_dir is not None:
            self._write_speech(view, plan.out_dir)
        return EXIT_INTERRUPTED if interrupted else EXIT_OK

    def _write_speech(self, view: ListenView, out_dir: Path) -> None:
        if not view.speech:
            note("no speech arrived (the speakers' output had none, or only the backlog came): nothing written")
            return
        tracks = [
            (f"{self.plan.room}.{speaker}" + (f".{n}" if n > 1 else ""), part)
            for speaker, segments in view.speech.items()
            for n, part in enumerate(timelines(segments), 1)
        ]
        files.check_free([out_dir / f"{base}.{self.language}.wav" for base, _ in tracks], self.plan.overwrite)
        files.make_dir(out_dir)
        for base, part in tracks:
            start = part[0].start_ms
            pieces: list[files.Piece] = []
            for ev in part:
                t = ev.translation
                assert t is not None and t.audio is not None
                pieces.append((ev.start_ms - start, t.audio, t.sample_rate))
            written, _ = files.write_speech(
                *(out_dir, base, self.language, [], part[-1].end_ms - start),
                rate=0,
                concat=False,
                extend=True,
                overwrite=self.plan.overwrite,
                pieces=pieces,
            )
            for p in written:
                view.human.print(Text(f"wrote {p}"), soft_wrap=True)


def timelines(segments: list[RoomSegment]) -> list[list[RoomSegment]]:
    """A speaker's segments cut where its timeline starts again (a new stream of the same speaker:
    its spans restart from 0), each part on one timeline."""
    parts: list[list[RoomSegment]] = []
    for ev in segments:
        if not parts or ev.start_ms < parts[-1][-1].start_ms:
            parts.append([])
        parts[-1].append(ev)
    return parts
