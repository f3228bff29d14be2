"""The ``stream`` command: its flags and help; the work is in ``stream_run`` (loaded when run)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from translate_svc.client_cli.common import EXIT_INTERRUPTED, note, run_client
from translate_svc.client_cli.flags import (
    ConnectionFlags,
    LanguageFlags,
    OverwriteOpt,
    RawFlags,
    TimeoutOpt,
    VadFlags,
    VoiceFlags,
    flag_groups,
)

if TYPE_CHECKING:
    from translate_svc.client_cli.stream_run import StreamJob

# Not wrapped in the source: rich wraps each paragraph to the terminal; only the indented example keeps its
# lines (tests/cli/test_help.py).
HELP = (
    "Send audio as a live stream; show results as they arrive, with latencies.\n\n"
    'SOURCE is an audio file, or headerless PCM in a file or on stdin ("-") with --raw-rate, e.g.:\n\n'
    "  ffmpeg -i talk.mp4 -f s16le -ar 16000 -ac 1 - |\n"
    "    translate-svc stream - --raw-rate 16000 --to spa\n\n"
    "--jsonl FILE (or - for stdout) writes one JSON object per line as events arrive (flushed each line, so "
    'Ctrl-C keeps what was done): {"type": "started"}, {"type": "speech"}, {"type": "interim"} (--interim-ms), '
    '{"type": "segment"} (the same fields as a segment of translate\'s JSON, plus latency_ms), {"type": "end"}, '
    'and last {"type": "summary"} (also after Ctrl-C). Every line has t_ms, milliseconds since the stream '
    "started.\n\n"
    "--out DIR also writes the dub track of each target (BASE.TARGET.wav, the length of the audio sent), after "
    "the end or Ctrl-C.\n\n"
    "--room ROOM speaks into a room (docs/rooms.md): its listeners (translate-svc listen ROOM --language spa) get "
    "this stream's segments in their languages, with its segment ids and spans, while this stream shows its own "
    "--to only (none with --asr-only); --participant names you in the room. A room speaker needs --from and "
    "cannot be --simultaneous.\n\n"
    "--simultaneous: simultaneous interpretation. While the speaker talks, the server re-translates the speech "
    "so far every --step-ms of audio and commits the words its last --agreement translations agree on; each "
    "commit is shown as it comes (segment id, target, the words added, the audio the server had received, the "
    'milliseconds of speech it carries) and --jsonl writes it as {"type": "commit"}. The dub track is then made '
    "of the commits' speech as a live listener hears it: each chunk starts when it was committed (its "
    "source_ms), or when the chunk before it ends if that is later, and the track is extended to hold the "
    "last one.\n\n"
    "Latency: from the moment a segment's last audio was sent to its result (nearest-rank p50/p95, so p95 never "
    "exceeds the max). Use --realtime (or a live pipe) for speech-to-result latency."
)


@flag_groups
def stream(
    source_audio: Annotated[str, typer.Argument(metavar="SOURCE", help="audio file, or - for PCM on stdin")],
    lang: LanguageFlags,
    jsonl: Annotated[str | None, typer.Option("--jsonl", help="write JSON lines to FILE, or - for stdout")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="write dub tracks (speech) to DIR")] = None,
    overwrite: OverwriteOpt = False,
    realtime: Annotated[bool, typer.Option(help="pace the audio at real time")] = False,
    chunk_ms: Annotated[int, typer.Option(help="audio per message, 10..1000 ms")] = 100,
    interim_ms: Annotated[int, typer.Option("--interim-ms", help="live captions every N ms (0: off)")] = 0,
    simultaneous: Annotated[
        bool, typer.Option("--simultaneous", help="simultaneous interpretation: commit words while the speaker talks")
    ] = False,
    step_ms: Annotated[
        int, typer.Option("--step-ms", help="with --simultaneous: re-translate every N ms of audio (0: the server's)")
    ] = 0,
    room: Annotated[str | None, typer.Option("--room", help="speak into this room (its listeners hear you)")] = None,
    participant: Annotated[str | None, typer.Option("--participant", help="with --room: your id in the room")] = None,
    agreement: Annotated[
        int,
        typer.Option(
            "--agreement", help="with --simultaneous: translations that must agree on a word (0: the server's)"
        ),
    ] = 0,
    *,
    voice: VoiceFlags,
    vad: VadFlags,
    raw: RawFlags,
    conn: ConnectionFlags,
    timeout: TimeoutOpt = 60.0,
) -> None:
    jobs: list[StreamJob] = []  # the one job, once its options are checked

    def run() -> int:
        from translate_svc.client_cli.stream_run import StreamJob, StreamPlan, room_of, simultaneous_options

        connection = conn.connection(timeout)
        plan = StreamPlan(
            source=source_audio,
            lang=lang,
            jsonl=jsonl,
            out_dir=out_dir,
            overwrite=overwrite,
            realtime=realtime,
            chunk_ms=chunk_ms,
            interim_ms=interim_ms,
            simultaneous=simultaneous_options(simultaneous, step_ms, agreement),
            output=voice.output(
                speech=out_dir is not None and not lang.asr_only,
                transcript=bool(lang.source.strip() or lang.conversation.strip()),
            ),
            vad=vad.options(),
            raw=raw.format(),
            room=room_of(room, participant),
        )
        jobs.append(StreamJob(connection, plan))
        return jobs[0].run()

    def on_interrupt() -> int:
        code = jobs[0].finish(interrupted=True) if jobs else EXIT_INTERRUPTED
        note("interrupted: what arrived before Ctrl-C was kept", "yellow")
        return code

    try:
        run_client(run, conn.server, on_interrupt)
    finally:
        for job in jobs:
            job.close()
