"""The work of ``stream``: open the input, send it (paced or not) while the results are shown, then the dub tracks."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from rich.text import Text

from translate_svc.client import (
    AsyncStream,
    AudioFormat,
    OutputOptions,
    Room,
    SimultaneousOptions,
    StreamEndedError,
    VadOptions,
)
from translate_svc.client_cli import files
from translate_svc.client_cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    NOISE_WARNING,
    CliError,
    err,
    note,
    out,
    send_and_read,
    warn,
)
from translate_svc.client_cli.flags import Connection, LanguageFlags
from translate_svc.client_cli.inputs import Clip, FdReader, aiter_of, frame_bytes, load_clip
from translate_svc.client_cli.lang import LangChoice, choose_languages, server_languages
from translate_svc.client_cli.stream_view import StreamView

STDIN_HINT = "ffmpeg -i x -f s16le -ar 16000 -ac 1 - | translate-svc stream - --raw-rate 16000"


@dataclass(frozen=True)
class StreamPlan:
    """One ``stream`` command's options, checked."""

    source: str  # a path, or "-" for stdin
    lang: LanguageFlags
    jsonl: str | None  # a path, or "-" for stdout
    out_dir: Path | None
    overwrite: bool
    realtime: bool
    chunk_ms: int
    interim_ms: int
    simultaneous: SimultaneousOptions | None  # None: off
    output: OutputOptions  # speech: write dub tracks to out_dir
    vad: VadOptions | None
    raw: AudioFormat | None
    room: Room | None = None  # speak into this room

    def __post_init__(self) -> None:
        if not 10 <= self.chunk_ms <= 1000:
            raise CliError(f"--chunk-ms {self.chunk_ms}: use 10..1000")

    @property
    def stdin(self) -> bool:
        return self.source == "-"

    @property
    def label(self) -> str:
        return "stdin" if self.stdin else self.source

    @property
    def base(self) -> str:
        return "stdin" if self.stdin else Path(self.source).stem

    @property
    def jsonl_path(self) -> Path | None:
        return Path(self.jsonl) if self.jsonl not in (None, "-") else None


def simultaneous_options(on: bool, step_ms: int, agreement: int) -> SimultaneousOptions | None:
    """``--simultaneous`` with its ``--step-ms`` and ``--agreement`` (0: the server's defaults)."""
    if not on:
        if step_ms or agreement:
            raise CliError("--step-ms and --agreement go with --simultaneous: add it")
        return None
    if step_ms < 0 or agreement < 0:
        raise CliError("--step-ms and --agreement must not be negative (0: the server's default)")
    return SimultaneousOptions(step_ms=step_ms, agreement=agreement)


def room_of(room: str | None, participant: str | None) -> Room | None:
    """``--room`` with its ``--participant`` (the server checks the names)."""
    if room is None or not room.strip():
        if participant is not None:
            raise CliError("--participant names you in a room: give --room too")
        if room is not None:
            raise CliError("--room is empty: name the room")
        return None
    return Room(room.strip(), (participant or "").strip())


@dataclass(frozen=True)
class StreamInput:
    """The audio to send: a decoded file (``clip``), or headerless PCM read from ``fd`` as it comes."""

    fmt: AudioFormat
    clip: Clip | None = None
    fd: int | None = None


def open_input(plan: StreamPlan) -> StreamInput:
    raw = plan.raw
    if plan.stdin:
        if raw is None:
            raise CliError(f"reading stdin needs --raw-rate (headerless PCM), e.g. {STDIN_HINT}")
        if sys.stdin is None or sys.stdin.isatty():
            raise CliError("stdin is a terminal: pipe headerless PCM into it (see --help)")
        return StreamInput(raw, fd=sys.stdin.fileno())
    path = Path(plan.source)
    if not path.is_file():
        raise CliError(f"cannot read {path}: {'it is a directory' if path.is_dir() else 'no such file'}")
    if raw is None:
        clip = load_clip(path, None)
        return StreamInput(clip.stream_format(), clip=clip)
    if path.stat().st_size < frame_bytes(raw):
        raise CliError(f"{path} is empty: nothing to translate")
    return StreamInput(raw, fd=os.open(path, os.O_RDONLY))


class StreamJob:
    """One ``stream`` command. ``view`` holds what arrived, for ``finish`` (also after Ctrl-C)."""

    def __init__(self, conn: Connection, plan: StreamPlan) -> None:
        self.conn = conn
        self.plan = plan
        self.view: StreamView | None = None
        self._sink: IO[str] | None = None  # the --jsonl file, closed by close()

    def run(self) -> int:
        source = open_input(self.plan)
        return asyncio.run(self._main(source))

    async def _main(self, source: StreamInput) -> int:
        plan = self.plan
        async with self.conn.client() as client:
            langs = await server_languages(client, plan.lang.lang_check)
            speech = plan.output.speech
            choice = choose_languages(
                plan.lang.source,
                plan.lang.to,
                langs,
                speech=speech,
                speaker_id=plan.output.speaker_id if speech else None,
                asr_only=plan.lang.asr_only,
                conversation=plan.lang.conversation,
            )
            view = self.view = self._open_outputs(choice)
            ended: StreamEndedError | None = None  # the server ended the stream (quota, revoked, ...)
            async with client.stream(
                targets=choice.targets,
                source=choice.source,
                detect=choice.detect if choice.detect is not None else False,
                conversation=choice.conversation,
                terms=plan.lang.terms(choice.languages, langs),
                format=source.fmt,
                interim_ms=plan.interim_ms,
                simultaneous=plan.simultaneous or False,
                output=plan.output,
                vad=plan.vad,
                room=plan.room,
            ) as s:
                assert s.info is not None
                view.started(s.info, choice.source)
                if s.info.model.is_test_model:
                    note(NOISE_WARNING, "bold yellow")
                view.say(f"started session {s.info.session_id} on {s.info.address} ({s.info.model.name})")
                if plan.room is not None:
                    who = f" as {plan.room.participant}" if plan.room.participant else ""
                    view.say(f"speaking into room {plan.room.name}{who}")
                simul = s.info.simultaneous
                if simul is not None:
                    view.say(f"simultaneous: a step every {simul.step_ms} ms, {simul.agreement} translations agree")

                async def read() -> None:
                    async for ev in s:
                        view.on_event(ev)

                try:
                    await send_and_read(self._send(s, source, view), read())
                except StreamEndedError as e:
                    ended = e  # the results that arrived are written first
        if view.audio_sent_ms == 0 and ended is None:
            view.summary(interrupted=False)
            raise CliError(f"no audio: {plan.label} was empty")
        code = self.finish(interrupted=False)
        if ended is not None:
            raise ended  # one line, exit 1 (common.from_status)
        return code

    def _open_outputs(self, choice: LangChoice) -> StreamView:
        """Check the outputs are free (before any audio is sent), open --jsonl, and make the view."""
        plan = self.plan
        dubs = [plan.out_dir / f"{plan.base}.{t}.wav" for t in choice.languages] if plan.out_dir is not None else []
        jsonl_path = plan.jsonl_path
        files.check_free([*dubs, *([jsonl_path] if jsonl_path else [])], plan.overwrite)
        if plan.out_dir is not None:
            files.check_dir(plan.out_dir)
        sink: IO[str] | None = None
        if plan.jsonl == "-":
            sink = sys.stdout
        elif jsonl_path is not None:
            sink = self._sink = files.open_text(jsonl_path, plan.overwrite)
        human = err if plan.jsonl == "-" else out  # stdout holds JSON lines only
        return StreamView(plan.label, choice.languages, human, sink, plan.realtime or plan.stdin, choice.conversation)

    async def _send(self, s: AsyncStream, source: StreamInput, view: StreamView) -> None:
        fmt, plan = source.fmt, self.plan
        size = frame_bytes(fmt)
        reader: FdReader | None = None
        chunks: AsyncIterator[bytes | np.ndarray[Any, Any]]
        if source.clip is not None:
            chunks = aiter_of(source.clip.chunks(plan.chunk_ms))
        else:
            assert source.fd is not None
            chunk_frames = max(1, fmt.sample_rate * plan.chunk_ms // 1000)
            reader = FdReader(source.fd, chunk_frames * size, size)
            chunks = reader.chunks()
        frames = 0
        async for chunk in chunks:
            n = len(chunk) // size if isinstance(chunk, bytes) else len(chunk)
            if plan.realtime:
                delay = view.t0 + frames / fmt.sample_rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            await s.send(chunk)
            frames += n
            view.sent(frames * 1000 / fmt.sample_rate)
        if reader is not None and reader.leftover:
            warn(f"the input ended with {reader.leftover} byte(s) that are not a whole frame; ignored")
        await s.close()

    def finish(self, *, interrupted: bool) -> int:
        """The summary, and the dub tracks of what arrived; the exit code."""
        view, plan = self.view, self.plan
        if view is None:  # interrupted before the stream started
            return EXIT_INTERRUPTED
        view.summary(interrupted=interrupted)
        if plan.out_dir is not None and (view.segments or view.commits):
            files.make_dir(plan.out_dir)
            duration = view.audio_received_ms if view.audio_received_ms is not None else round(view.audio_sent_ms)
            simultaneous = plan.simultaneous is not None
            for target in view.targets:
                paths, _ = files.write_speech(
                    *(plan.out_dir, plan.base, target, view.segments, duration),
                    rate=0,
                    concat=False,
                    extend=simultaneous,  # interpretation lags the speaker: its last words come after the end
                    overwrite=plan.overwrite,
                    pieces=files.commit_pieces(view.commits, view.segments, target) if simultaneous else None,
                )
                for p in paths:
                    view.human.print(Text(f"wrote {p}"), soft_wrap=True)
        if interrupted:
            return EXIT_INTERRUPTED
        failed = [s for s in view.segments if not s.ok]
        if failed:
            warn(f"{len(failed)} of {len(view.segments)} segments failed")
            return EXIT_FAILED
        return EXIT_OK

    def close(self) -> None:
        if self._sink is not None:
            with contextlib.suppress(OSError):
                self._sink.close()
