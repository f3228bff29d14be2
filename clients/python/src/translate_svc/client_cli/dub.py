"""The ``dub`` command (issue 90): a video dubbed by the server as a background job, on the SDK:
``translate-svc dub in.mp4 --to spa,fra -o out.mp4`` uploads the video in parts, follows the job
(bars: the upload, the job's progress, the download), then writes the dubbed video: the same
container, its video untouched, a dubbed audio track and a subtitle track per language, each
segment's speech fitted to its place on the source's clock (``--fit``, the default) or at one rate
(``--no-fit --speed``), or with ``--subtitles`` a studio's translation (SRT, WebVTT) voiced at its
timings. The job's id is printed as soon as it exists; the job stays on the server
for its retention: ``job fetch`` takes its other results. A job this command gives up on before it
is done (its upload or ``complete`` refused, the job failed, Ctrl-C) is cancelled, so it frees its
tenant's job slot at once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from translate_svc.client_cli.common import EXIT_FAILED, EXIT_OK, CliError, out, run_client
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
from translate_svc.client_cli.jobs import _bars, _follow, cancel_made

if TYPE_CHECKING:
    from translate_svc.client import AsyncTranslateClient, Job

HELP = (
    "Dub a video (MP4, MOV, WebM, MKV) into one or more languages as a background job: its video is kept as it "
    "is, each language gets an audio track timed to the source and a subtitle track. "
    "Example: translate-svc dub talk.mp4 --to spa,fra -o talk.dubbed.mp4"
)
_SUFFIXES = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".webm": "webm", ".mkv": "mkv"}


@flag_groups
def dub(
    file: Annotated[Path, typer.Argument(help="the video: MP4, MOV, WebM or MKV with its sound")],
    to: Annotated[str, typer.Option("--to", help="target languages, comma-separated model codes: spa,fra")],
    output: Annotated[Path, typer.Option("--output", "-o", help="the dubbed video (the same container as FILE)")],
    source: Annotated[str, typer.Option("--from", help="the source language (a model code)")] = "",
    original: Annotated[bool, typer.Option("--original", help="keep the source's audio as a track too")] = False,
    mix: Annotated[
        str, typer.Option("--mix", help="dub: each track the dub alone; duck: the source's audio under the dub")
    ] = "dub",
    mix_gain_db: Annotated[
        float, typer.Option("--mix-gain-db", help="with --mix duck: the source's level while the dub speaks (dB)")
    ] = -18.0,
    no_subtitles: Annotated[bool, typer.Option("--no-subtitles", help="no subtitle tracks")] = False,
    force: Annotated[bool, typer.Option("--force", help="write over an existing output")] = False,
    fit: Annotated[
        bool,
        typer.Option(
            "--fit/--no-fit",
            help="each segment's speech at the rate that fits it before the next one (the server's bound)",
        ),
    ] = True,
    speed: Annotated[
        float, typer.Option("--speed", help="with --no-fit: one speaking rate for all speech, 0.5..2.0")
    ] = 1.0,
    loudness: LoudnessOpt = "",
    true_peak: TruePeakOpt = None,
    speakers: SpeakersOpt = 0,
    speaker_voice: SpeakerVoiceOpt = None,
    one_voice: OneVoiceOpt = False,
    subtitles: SubtitlesOpt = None,
    *,
    conn: ConnectionFlags,
    vad: VadFlags,
    timeout: TimeoutOpt = 60.0,
) -> None:
    targets = [t for t in to.split(",") if t]

    def check() -> None:
        loudness_value(loudness, true_peak)
        speaker_voices_value(speaker_voice, one_voice)
        if not file.is_file():
            raise CliError(f"{file}: no such file")
        if file.suffix.lower() not in _SUFFIXES:
            raise CliError(f"{file}: not a video this command takes (MP4, MOV, WebM or MKV, by its suffix)")
        if output.suffix.lower() not in _SUFFIXES or _SUFFIXES[output.suffix.lower()] != _SUFFIXES[file.suffix.lower()]:
            raise CliError(
                f"--output {output}: the dubbed video is a {file.suffix[1:]} file as the input is; name it so"
            )
        if output.exists() and not force:
            raise CliError(f"--output {output} exists: use --force to write over it")
        if not targets:
            raise CliError("--to: at least one target language")
        check_subtitles(subtitles, targets, speakers, speaker_voices_value(speaker_voice, one_voice))
        if mix not in ("dub", "duck"):
            raise CliError("--mix: dub or duck")
        if fit and speed != 1.0:
            raise CliError(
                "--speed sets one rate for all speech: use it with --no-fit (--fit picks a rate per segment)"
            )

    async def work(client: AsyncTranslateClient) -> int:
        made: list[Job] = []

        def created(job: Job) -> None:
            made.append(job)
            out.print(f"job {job.id}")

        with _bars() as bars:
            sent = bars.add_task("upload", total=file.stat().st_size)
            try:
                job = await client.submit_job(
                    file,
                    targets=targets,
                    source=source,
                    speed=speed,
                    fit=fit,
                    on_sent=lambda n: bars.update(sent, completed=n),
                    on_created=created,
                    vad=vad.options(),
                    speakers=speakers,
                    speaker_voices=speaker_voices_value(speaker_voice, one_voice),
                    subtitles=subtitles,
                )
                job = await _follow(client, job, bars)
            except BaseException:  # refused, or given up (Ctrl-C): the job frees its slot
                if made:
                    await cancel_made(client, made[0].id)
                raise
            if job.state.value != "done":
                detail = f": {job.error}" if job.error else ""
                out.print(f"job {job.id} {job.state.value}{detail}")
                return EXIT_FAILED
            got = bars.add_task("download", total=None)
            part = output.with_name(output.name + ".part")  # the output appears whole, or not at all
            size = await client.save_job_video(
                job.id,
                part,
                languages=targets,
                original=original,
                mix=mix,
                mix_gain_db=mix_gain_db if mix == "duck" else None,
                subtitles=not no_subtitles,
                loudness=loudness_value(loudness, true_peak),
                true_peak_dbtp=true_peak,
                on_received=lambda n: bars.update(got, completed=n),
            )
            part.replace(output)
        out.print(f"wrote {output} ({size} bytes; job {job.id})")
        return EXIT_OK

    def run() -> int:
        check()

        async def go() -> int:
            async with conn.connection(timeout).client() as client:
                return await work(client)

        return asyncio.run(go())

    run_client(run, conn.server)
