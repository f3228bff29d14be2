"""The ``job`` commands: hours of audio translated in the background by the server (its ``Jobs``
service; the token needs the ``translate`` permission), on the SDK: ``submit FILE`` (or ``--url``;
the upload and, with ``--wait``, the job's progress as bars), ``status ID`` (``--wait``: until it
ends, with a bar), ``fetch ID`` (its segments as JSON, subtitles of a language, or a target's
dubbed track), ``list`` (the tenant's jobs, newest first), ``edit ID`` (a done job's segments said
again: a new text, voice or speed) and ``cancel ID``. A job whose upload is
refused or given up (Ctrl-C) is cancelled, so it frees its slot at once. A job lives on the server
that took it: use one ``--server``."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from translate_svc.client_cli.common import EXIT_FAILED, EXIT_OK, CliError, err, out, run_client
from translate_svc.client_cli.flags import (
    ConnectionFlags,
    LoudnessOpt,
    OneVoiceOpt,
    SpeakersOpt,
    SpeakerVoiceOpt,
    SubtitlesOpt,
    TimeoutOpt,
    TruePeakOpt,
    VadFlags,
    check_subtitles,
    flag_groups,
    loudness_value,
    speaker_voices_value,
)

if TYPE_CHECKING:
    from translate_svc.client import AsyncTranslateClient, Job

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Background jobs: hours of audio, by id.")

IdArg = Annotated[str, typer.Argument(help="the job's id (what submit printed)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print the job as JSON")]
WaitOpt = Annotated[bool, typer.Option("--wait", help="wait until the job ends, with a progress bar")]


def _call(conn: ConnectionFlags, timeout: float, work: Callable[[AsyncTranslateClient], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        async with conn.connection(timeout).client() as client:
            return await work(client)

    return asyncio.run(go())


def _json(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "state": job.state.value,
        "progress": job.progress,
        "duration_ms": job.duration_ms,
        "done_ms": job.done_ms,
        "segments": job.segments,
        "error": job.error,
        "targets": list(job.targets),
        "separate_channels": job.separate_channels,
    }


def _said(job: Job, as_json: bool) -> int:
    if as_json:
        sys.stdout.write(json.dumps(_json(job)) + "\n")
    else:
        detail = f": {job.error}" if job.error else ""
        out.print(
            f"job {job.id} {job.state.value}{detail} ({job.progress:.0%} of {job.duration_ms / 1000:.0f} s, "
            f"{job.segments} segments)"
        )
    return EXIT_OK if job.state.value not in ("failed", "cancelled") else EXIT_FAILED


def _bars() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeRemainingColumn(), console=err
    )


#: how long a job's cancel may take when the command gives up on it
CANCEL_TIMEOUT_S = 10.0


async def cancel_made(client: AsyncTranslateClient, job_id: str) -> None:
    """A job the command made and gives up on (its upload or ``complete`` refused, Ctrl-C):
    cancelled, so it frees its tenant's job slot now rather than when the abandoned upload
    expires; a cancel that fails is said, never raised over the failure that caused it."""
    try:
        job = await client.cancel_job(job_id, timeout_s=CANCEL_TIMEOUT_S)
    except Exception as e:  # the first failure is the one the command reports
        err.print(f"job {job_id} was not cancelled ({e}): cancel it with translate-svc job cancel {job_id}")
        return
    err.print(f"job {job_id} {job.state.value}")


async def _follow(client: AsyncTranslateClient, job: Job, bars: Progress) -> Job:
    """Until the job ends, its progress as a bar."""
    task = bars.add_task(f"job {job.id}", total=1.0)

    def moved(j: Job) -> None:
        bars.update(task, completed=j.progress, description=f"{j.state.value} ({j.segments} segments)")

    moved(job)
    return await client.wait_job(job.id, on_progress=moved)


@app.command("submit")
@flag_groups
def submit(
    file: Annotated[Path | None, typer.Argument(help="an audio file (WAV, FLAC, OGG, MP3); or --url")] = None,
    url: Annotated[str, typer.Option("--url", help="an https URL the server fetches the audio from")] = "",
    to: Annotated[str, typer.Option("--to", help="target languages, comma-separated model codes: spa,fra")] = "",
    source: Annotated[str, typer.Option("--from", help="the source language (a model code)")] = "",
    no_speech: Annotated[bool, typer.Option("--no-speech", help="no dubbed track, text only")] = False,
    separate_channels: Annotated[
        bool,
        typer.Option(
            "--separate-channels",
            help="a stereo recording whose channels are parties (an agent and a caller): each channel translated "
            "on its own, each segment labelled with its channel, the dubbed WAV a channel per party",
        ),
    ] = False,
    speakers: SpeakersOpt = 0,
    speaker_voice: SpeakerVoiceOpt = None,
    one_voice: OneVoiceOpt = False,
    subtitles: SubtitlesOpt = None,
    wait: WaitOpt = False,
    as_json: JsonOpt = False,
    *,
    conn: ConnectionFlags,
    vad: VadFlags,
    timeout: TimeoutOpt = 60.0,
) -> None:
    """Submit a job: upload FILE in parts (or have the server fetch --url); print its id."""

    def check() -> None:
        speaker_voices_value(speaker_voice, one_voice)
        if (file is None) == (not url):
            raise CliError("give an audio file or --url, one of them")
        if file is not None and not file.is_file():
            raise CliError(f"{file}: no such file")
        check_subtitles(subtitles, targets, speakers, speaker_voices_value(speaker_voice, one_voice))

    targets = [t for t in to.split(",") if t]

    async def work(client: AsyncTranslateClient) -> Job:
        made: list[Job] = []
        with _bars() as bars:
            sent = None
            if file is not None:
                sent = bars.add_task("upload", total=file.stat().st_size)
            try:
                job = await client.submit_job(
                    file,
                    url=url or None,
                    targets=targets,
                    source=source,
                    speech=not no_speech,
                    on_sent=(lambda n: bars.update(sent, completed=n)) if sent is not None else None,
                    on_created=made.append,
                    vad=vad.options(),
                    separate_channels=separate_channels,
                    speakers=speakers,
                    speaker_voices=speaker_voices_value(speaker_voice, one_voice),
                    subtitles=subtitles,
                )
            except BaseException:  # the upload or its completion refused, or given up (Ctrl-C)
                if made:
                    await cancel_made(client, made[0].id)
                raise
            if wait:
                job = await _follow(client, job, bars)
        return job

    def run() -> int:
        check()
        return _said(_call(conn, timeout, work), as_json)

    run_client(run, conn.server)


@app.command("status")
@flag_groups
def status(
    job_id: IdArg, wait: WaitOpt = False, as_json: JsonOpt = False, *, conn: ConnectionFlags, timeout: TimeoutOpt = 30.0
) -> None:
    """A job's state and progress (--wait: until it ends)."""

    async def work(client: AsyncTranslateClient) -> Job:
        job = await client.get_job(job_id)
        if wait and not job.state.finished:
            with _bars() as bars:
                job = await _follow(client, job, bars)
        return job

    run_client(lambda: _said(_call(conn, timeout, work), as_json), conn.server)


@app.command("list")
@flag_groups
def list_jobs(
    limit: Annotated[int, typer.Option("--limit", help="jobs a page, 1..200")] = 50,
    page_token: Annotated[str, typer.Option("--page-token", help="the page after this one (what list printed)")] = "",
    as_json: JsonOpt = False,
    *,
    conn: ConnectionFlags,
    timeout: TimeoutOpt = 30.0,
) -> None:
    """The tenant's jobs, newest first, a page at a time (--page-token: the next page)."""

    async def work(client: AsyncTranslateClient) -> int:
        page = await client.list_jobs(page_size=limit, page_token=page_token)
        if as_json:
            doc = {
                "jobs": [_json(j) | {"created_at": j.created_at} for j in page.jobs],
                "next_page_token": page.next_page_token,
            }
            sys.stdout.write(json.dumps(doc) + "\n")
            return EXIT_OK
        for j in page.jobs:
            detail = f": {j.error}" if j.error else ""
            out.print(f"{j.id} {j.state.value} {j.duration_ms / 1000:.0f} s -> {','.join(j.targets)}{detail}")
        if page.next_page_token:
            out.print(f"more: --page-token {page.next_page_token}")
        return EXIT_OK

    run_client(lambda: int(_call(conn, timeout, work)), conn.server)


@app.command("cancel")
@flag_groups
def cancel(job_id: IdArg, as_json: JsonOpt = False, *, conn: ConnectionFlags, timeout: TimeoutOpt = 30.0) -> None:
    """Cancel a job not finished (it frees its slot; its results so far are kept)."""

    async def work(client: AsyncTranslateClient) -> Job:
        return await client.cancel_job(job_id)

    def run() -> int:
        job = _call(conn, timeout, work)
        _said(job, as_json)
        return EXIT_OK

    run_client(run, conn.server)


@app.command("edit")
@flag_groups
def edit(
    job_id: IdArg,
    segment: Annotated[int | None, typer.Option("--segment", help="its segment_id (fetch shows them)")] = None,
    language: Annotated[str, typer.Option("--language", help="the translation to edit (one of the job's)")] = "",
    text: Annotated[str | None, typer.Option("--text", help='its new text, said as written ("": silent)')] = None,
    voice: Annotated[int | None, typer.Option("--voice", help="its new voice (0..the model's voices - 1)")] = None,
    speed: Annotated[float | None, typer.Option("--speed", help="its new speaking rate, 0.5..2")] = None,
    edits_file: Annotated[
        Path | None,
        typer.Option(
            "--edits",
            help='many edits: a JSON file [{"segment_id", "target_language", "text", "voice", "speed"}, ...]',
        ),
    ] = None,
    as_json: JsonOpt = False,
    *,
    conn: ConnectionFlags,
    timeout: TimeoutOpt = 120.0,
) -> None:
    """A done job's segments said again (a new text, voice or speed): only those are re-voiced;
    all the edits or none. Prints what each changed."""
    from translate_svc.client import SegmentEdit

    def check() -> list[SegmentEdit]:
        if edits_file is not None:
            if segment is not None or text is not None or voice is not None or speed is not None or language:
                raise CliError("give --edits FILE or one edit's --segment and --language, not both")
            return _edits_in(edits_file)
        if segment is None or not language:
            raise CliError("give --segment and --language (the translation to edit), or --edits FILE")
        return [SegmentEdit(segment, language, text, voice, speed)]

    def run() -> int:
        edits = check()

        async def work(client: AsyncTranslateClient) -> Any:
            return await client.edit_job(job_id, edits)

        done = _call(conn, timeout, work)
        if as_json:
            doc = [
                {
                    "segment_id": e.segment_id,
                    "target_language": e.language,
                    "changed": list(e.changed),
                    "before": vars(e.before),
                    "after": vars(e.after),
                }
                for e in done
            ]
            sys.stdout.write(json.dumps({"id": job_id, "edited": doc}) + "\n")
            return EXIT_OK
        for e in done:
            what = ", ".join(e.changed) or "nothing changed"
            out.print(
                f"segment {e.segment_id} {e.language}: {what}; {e.before.audio_ms} -> {e.after.audio_ms} ms, "
                f"voice {e.before.voice} -> {e.after.voice}: {e.after.text!r}"
            )
        return EXIT_OK

    run_client(run, conn.server)


def _edits_in(path: Path) -> list[Any]:
    """The edits a JSON file lists (each an object: segment_id, target_language, text, voice, speed)."""
    from translate_svc.client import SegmentEdit

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CliError(f"--edits {path}: {e}") from None
    keys = {"segment_id", "target_language", "text", "voice", "speed"}
    if not isinstance(doc, list) or not all(isinstance(d, dict) and set(d) <= keys for d in doc):
        raise CliError(f"--edits {path}: a JSON list of objects with {', '.join(sorted(keys))}")
    try:
        return [
            SegmentEdit(int(d["segment_id"]), str(d["target_language"]), d.get("text"), d.get("voice"), d.get("speed"))
            for d in doc
        ]
    except (KeyError, TypeError, ValueError):
        raise CliError(f"--edits {path}: each edit needs segment_id (a number) and target_language") from None


@app.command("fetch")
@flag_groups
def fetch(
    job_id: IdArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="where to write it (- : stdout)")] = Path("-"),
    format: Annotated[
        str, typer.Option("--format", help="json, srt, vtt, wav (a target's dubbed track) or video (a video job's)")
    ] = "json",
    language: Annotated[
        str,
        typer.Option(
            "--language", help="srt/vtt: a target or 'transcript'; wav: a target; video: targets, comma-separated"
        ),
    ] = "",
    original: Annotated[bool, typer.Option("--original", help="video: the source's audio as a track too")] = False,
    mix: Annotated[
        str, typer.Option("--mix", help="video: dub (each track the dub alone) or duck (the source's audio under it)")
    ] = "dub",
    no_subtitles: Annotated[bool, typer.Option("--no-subtitles", help="video: no subtitle tracks")] = False,
    loudness: LoudnessOpt = "",
    true_peak: TruePeakOpt = None,
    *,
    conn: ConnectionFlags,
    timeout: TimeoutOpt = 60.0,
) -> None:
    """Fetch a job's results: its segments (JSON), subtitles of a language, a dubbed track, or a
    video job's dubbed video (its own container, its picture untouched)."""

    def check() -> None:
        if format not in ("json", "srt", "vtt", "wav", "video"):
            raise CliError("--format: json, srt, vtt, wav or video")
        if format in ("srt", "vtt", "wav") and not language:
            raise CliError(f"--format {format} needs --language")
        if str(output) == "-" and format in ("wav", "video"):
            raise CliError(f"--format {format} needs --output FILE")
        if mix not in ("dub", "duck"):
            raise CliError("--mix: dub or duck")
        if loudness_value(loudness, true_peak) is not None and format not in ("video", "wav"):
            raise CliError("--loudness: a dubbed track's (--format wav) or a video's dubbed tracks (--format video)")

    async def work(client: AsyncTranslateClient) -> int:
        if format == "video":
            size = await client.save_job_video(
                job_id,
                output,
                languages=[x for x in language.split(",") if x],
                original=original,
                mix=mix,
                subtitles=not no_subtitles,
                loudness=loudness_value(loudness, true_peak),
                true_peak_dbtp=true_peak,
            )
            out.print(f"wrote {output} ({size} bytes)")
            return EXIT_OK
        if str(output) == "-":
            async for chunk in client.job_result_chunks(job_id, format, language):
                sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
            return EXIT_OK
        level = loudness_value(loudness, true_peak) if format == "wav" else None
        size = await client.save_job_results(
            job_id, output, format, language, loudness=level, true_peak_dbtp=true_peak if level is not None else None
        )
        out.print(f"wrote {output} ({size} bytes)")
        return EXIT_OK

    def run() -> int:
        check()
        return int(_call(conn, timeout, work))

    run_client(run, conn.server)
