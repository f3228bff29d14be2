"""The work of ``translate``: each input through Translate or StreamingTranslate, then its table and files."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from translate_svc.client import (
    AsyncTranslateClient,
    AudioFormat,
    ModelInfo,
    OutputOptions,
    Segment,
    StreamEnd,
    StreamEndedError,
    Term,
    TranslateError,
    VadOptions,
)
from translate_svc.client_cli import files
from translate_svc.client_cli.common import (
    EXIT_AUTH,
    EXIT_CONNECT,
    EXIT_FAILED,
    EXIT_OK,
    NOISE_WARNING,
    CliError,
    err,
    error_line,
    from_status,
    note,
    one_line,
    out,
    send_and_read,
    warn,
)
from translate_svc.client_cli.flags import Connection, LanguageFlags
from translate_svc.client_cli.inputs import Clip, load_clip
from translate_svc.client_cli.lang import LangChoice, choose_languages, server_languages
from translate_svc.client_cli.output import (
    SUBTITLE_FORMATS,
    TEXT_FORMATS,
    cues,
    output_bases,
    result_json,
    timed_words,
    translate_outputs,
)
from translate_svc.subtitles import Cue, srt_document, vtt_document, word_cues

#: ``--via auto`` sends clips longer than this through StreamingTranslate (real progress)
AUTO_STREAM_S: Final = 30.0
VIAS: Final = ("auto", "translate", "stream")


@dataclass(frozen=True)
class TranslatePlan:
    """One ``translate`` command's options, checked; the same for every input."""

    lang: LanguageFlags
    formats: list[str]
    concat: bool
    dub_extend: bool
    overwrite: bool
    via: str
    output: OutputOptions  # speech: write dub tracks
    vad: VadOptions | None
    raw: AudioFormat | None
    #: subtitle cues from word timings (``output.word_timings``), not one per segment
    word_cues: bool = False

    def __post_init__(self) -> None:
        bad = [f for f in self.formats if f not in TEXT_FORMATS]
        if bad:
            raise CliError(f"--format {bad[0]!r}: use json, srt or vtt (comma-separated)")
        if self.via not in VIAS:
            raise CliError(f"--via {self.via!r}: use auto, translate or stream")
        if not self.formats and not self.output.speech:
            raise CliError("nothing to write: --no-speech with no --format")
        if self.word_cues and not any(f in SUBTITLE_FORMATS for f in self.formats):
            raise CliError("--word-cues shapes subtitle cues: add --format srt or --format vtt")
        if self.word_cues and not self.lang.asr_only and not self.output.speech:
            raise CliError("--word-cues: translated words are timed in their speech; drop --no-speech")


def parse_formats(values: Sequence[str] | None) -> list[str]:
    """--format, repeated and/or comma-separated (default: json)."""
    return [f.strip().lower() for v in (values or ["json"]) for f in v.split(",") if f.strip()]


def unique_inputs(paths: Sequence[Path]) -> list[Path]:
    """The files to translate, each once; a directory or a missing file is a usage error."""
    inputs: list[Path] = []
    seen: set[Path] = set()
    for f in paths:
        if not f.is_file():
            raise CliError(f"cannot read {f}: {'it is a directory' if f.is_dir() else 'no such file'}")
        key = f.resolve()
        if key in seen:
            warn(f"{f} is given twice: translated once")
            continue
        seen.add(key)
        inputs.append(f)
    return inputs


@dataclass(frozen=True)
class Outcome:
    """What one input's call gave back."""

    rpc: str  # Translate or StreamingTranslate
    segments: list[Segment]
    model: ModelInfo
    duration_ms: int
    took_s: float
    #: the server ended the stream before its end (quota, revoked, ...): written, then raised
    ended: StreamEndedError | None = None


@dataclass
class TranslateJob:
    """One ``translate`` command: the plan, then each input in turn on one client."""

    conn: Connection
    plan: TranslatePlan
    langs: LangChoice = field(default_factory=lambda: LangChoice(None, []))
    terms: list[Term] = field(default_factory=list)

    async def run_all(self, inputs: Sequence[Path], out_dir: Path) -> int:
        plan, speech = self.plan, self.plan.output.speech
        bases = output_bases(inputs)
        async with self.conn.client() as client:
            langs = await server_languages(client, plan.lang.lang_check)
            self.langs = choose_languages(
                plan.lang.source,
                plan.lang.to,
                langs,
                speech=speech,
                speaker_id=plan.output.speaker_id,
                asr_only=plan.lang.asr_only,
                conversation=plan.lang.conversation,
            )
            self.terms = plan.lang.terms(self.langs.languages, langs)
            planned = [
                out_dir / name
                for base in bases
                for name in translate_outputs(
                    base, self.langs.languages, plan.formats, speech=speech, concat=plan.concat
                )
            ]
            files.check_free(planned, plan.overwrite)
            files.check_dir(out_dir)
            code = EXIT_OK
            for path, base in zip(inputs, bases, strict=True):
                try:
                    try:
                        rc = await self.run(client, path, base, out_dir)
                    except TranslateError as e:
                        raise from_status(e, self.conn.server) from None
                except CliError as e:
                    if e.code in (EXIT_CONNECT, EXIT_AUTH) or len(inputs) == 1:
                        raise
                    error_line(f"{path}: {e.message}")  # the other inputs go on
                    rc = e.code
                code = code or rc
            return code

    async def run(self, client: AsyncTranslateClient, path: Path, base: str, out_dir: Path) -> int:
        clip = await asyncio.to_thread(load_clip, path, self.plan.raw)
        via = self.plan.via
        if via == "auto":
            via = "stream" if clip.duration_s > AUTO_STREAM_S else "translate"
        t0 = time.perf_counter()
        with progress_bar() as progress:
            if via == "translate":
                task = progress.add_task(f"{path.name}: translating {clip.duration_s:.1f} s (one call)", total=None)
                result = await client.translate(
                    clip.data,
                    targets=self.langs.targets,
                    source=self.langs.source,
                    detect=self.langs.detect if self.langs.detect is not None else False,
                    conversation=self.langs.conversation,
                    terms=self.terms,
                    format=self.plan.raw,
                    output=self.plan.output,
                    vad=self.plan.vad,
                )
                progress.update(task, total=1, completed=1)
                took = time.perf_counter() - t0
                done = Outcome("Translate", list(result.segments), result.model, result.audio_duration_ms, took)
            else:
                done = await self._by_stream(client, clip, progress, t0)
        code = self._finish(path, base, out_dir, clip, done)
        if done.ended is not None:
            raise done.ended  # after what arrived was written: one line, exit 1
        return code

    async def _by_stream(self, client: AsyncTranslateClient, clip: Clip, progress: Progress, t0: float) -> Outcome:
        total_ms = clip.duration_s * 1000
        task = progress.add_task(f"{Path(clip.label).name}: {clip.duration_s:.1f} s", total=total_ms)
        segments: list[Segment] = []
        end: list[StreamEnd] = []
        async with client.stream(
            targets=self.langs.targets,
            source=self.langs.source,
            detect=self.langs.detect if self.langs.detect is not None else False,
            conversation=self.langs.conversation,
            terms=self.terms,
            format=clip.stream_format(),
            output=self.plan.output,
            vad=self.plan.vad,
        ) as s:

            async def send() -> None:
                for chunk in clip.chunks(200):
                    await s.send(chunk)
                await s.close()

            async def read() -> None:
                async for ev in s:
                    if isinstance(ev, Segment):
                        segments.append(ev)
                        progress.update(task, completed=min(total_ms, ev.end_ms))
                    elif isinstance(ev, StreamEnd):
                        end.append(ev)
                        progress.update(task, completed=total_ms)

            ended: StreamEndedError | None = None
            try:
                await send_and_read(send(), read())
            except StreamEndedError as e:
                ended = e
            assert s.info is not None
            model = s.info.model
        duration_ms = end[0].audio_received_ms if end else round(total_ms)
        return Outcome("StreamingTranslate", segments, model, duration_ms, time.perf_counter() - t0, ended)

    def _finish(self, path: Path, base: str, out_dir: Path, clip: Clip, done: Outcome) -> int:
        if done.model.is_test_model:
            note(NOISE_WARNING, "bold yellow")
        print_table(path, done, transcript=self.langs.transcript, sources=self.langs.conversation is not None)
        files.make_dir(out_dir)
        written = self._write_outputs(out_dir, base, clip, done)
        for p in written:
            out.print(Text(f"wrote {p}"), soft_wrap=True)
        failed = [s for s in done.segments if not s.ok]
        if failed:
            first = failed[0].error
            assert first is not None
            warn(
                f"{path}: {len(failed)} of {len(done.segments)} segments failed (first: {first.code}: "
                f"{first.message}); they are in the JSON with their status"
            )
            return EXIT_FAILED
        return EXIT_OK

    def _cues(self, done: Outcome, target: str | None) -> list[Cue]:
        """One cue per segment, or (``--word-cues``) cues of at most two lines from word timings."""
        if self.plan.word_cues:
            return word_cues(timed_words(done.segments, target))
        return cues(done.segments, target)

    def _write_outputs(self, out_dir: Path, base: str, clip: Clip, done: Outcome) -> list[Path]:
        """Dub tracks, subtitles and the JSON result of one input; the paths written."""
        plan = self.plan
        written: list[Path] = []
        entries: dict[str, dict[str, Any]] = {t: {} for t in self.langs.languages}
        for target in self.langs.languages:
            if plan.output.speech:
                paths, info = files.write_speech(
                    *(out_dir, base, target, done.segments, done.duration_ms),
                    rate=plan.output.speech_sample_rate,
                    concat=plan.concat,
                    extend=plan.dub_extend,
                    overwrite=plan.overwrite,
                )
                written += paths
                entries[target].update(info)
            items = self._cues(done, target)
            for fmt, render in (("srt", srt_document), ("vtt", vtt_document)):
                if fmt in plan.formats:
                    p = out_dir / f"{base}.{target}.{fmt}"
                    files.write(p, render(items).encode(), plan.overwrite)
                    written.append(p)
                    entries[target][fmt] = p.name
        if not self.langs.languages:  # ASR only: the transcript's subtitles
            for fmt, render in (("srt", srt_document), ("vtt", vtt_document)):
                if fmt in plan.formats:
                    p = out_dir / f"{base}.transcript.{fmt}"
                    files.write(p, render(self._cues(done, None)).encode(), plan.overwrite)
                    written.append(p)
        if "json" in plan.formats:
            doc = result_json(
                input_path=clip.label,
                via=done.rpc,
                source=self.langs.source,
                targets=self.langs.targets,
                conversation=self.langs.conversation,
                model=done.model,
                audio_duration_ms=done.duration_ms,
                segments=done.segments,
                files=entries,
            )
            p = out_dir / f"{base}.json"
            files.write(p, (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode(), plan.overwrite)
            written.append(p)
        return written


@contextlib.contextmanager
def progress_bar() -> Iterator[Progress]:
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )
    with progress:
        yield progress


def print_table(path: Path, done: Outcome, *, transcript: bool, sources: bool = False) -> None:
    """The segments as a table; ``sources``: a "from" column, each segment's source language (a
    conversation's: the one identified)."""
    title = Text(
        f"{path}: {len(done.segments)} segments, {done.duration_ms} ms of audio, {done.took_s:.1f} s via "
        f"{done.rpc} ({done.model.name})"
    )
    table = Table(title=title)
    cols = ["#", "span (ms)", *(["from"] if sources else []), *(["transcript"] if transcript else [])]
    cols += ["lang", "translation", "speech (ms)", "status"]
    for col in cols:
        table.add_column(col)
    for seg in done.segments:
        status = "OK" if seg.error is None else f"{seg.error.code}: {seg.error.message}"
        for i, tr in enumerate(seg.translations or (None,)):
            first = i == 0
            row = [
                str(seg.segment_id) if first else "",
                f"{seg.start_ms}-{seg.end_ms}" if first else "",
                *([(seg.detected_language or seg.transcript_language or "") if first else ""] if sources else []),
                *([one_line(seg.transcript) if first else ""] if transcript else []),
                tr.target if tr else "",
                one_line(tr.text) if tr else "",
                f"{tr.duration_s * 1000:.0f}" if tr is not None and tr.has_speech else "",
                one_line(status) if first else "",
            ]
            table.add_row(*(Text(c) for c in row))
    out.print(table)
