"""The ``listen`` command: its flags and help; the work is in ``listen_run`` (loaded when run)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from translate_svc.client_cli.common import EXIT_INTERRUPTED, note, run_client
from translate_svc.client_cli.flags import ConnectionFlags, OverwriteOpt, TimeoutOpt, flag_groups

if TYPE_CHECKING:
    from translate_svc.client_cli.listen_run import ListenJob

# Not wrapped in the source: rich wraps each paragraph to the terminal (tests/cli/test_help.py).
HELP = (
    "Listen to a room (docs/rooms.md) in one language: print what its speakers say as it arrives, until "
    "Ctrl-C.\n\n"
    "A speaker is a stream that names the room (translate-svc stream --room ROOM, the SDK's "
    "stream(room=...), a realtime session's x_room, a phone call's room parameter). The room's final results "
    "of the last rooms.backlog_s seconds come first, marked [backlog] (text only), then each speaker's live "
    "results (with their segment ids and spans as the speaker's own stream has them) and live captions (when "
    "the speaker asked for them).\n\n"
    "--json prints one JSON object per line on stdout (flushed each line; the text lines go to stderr): "
    '{"type": "started"} (room, language, '
    "backlog: the backlog segments that follow, speakers, server; again after the listen moved to another "
    'server, with resumes), {"type": "segment"} (speaker, backlog, and the fields of a segment of translate\'s '
    'JSON), {"type": "caption"}, {"type": "dropped"} (this listener fell behind: count events were dropped), '
    '{"type": "draining"}, {"type": "end"} (the server ended the listen: reason, code, message), and last '
    '{"type": "summary"} (also after Ctrl-C). Every line has t_ms, milliseconds since the listen started.\n\n'
    "--out DIR writes each speaker's speech in the language, after Ctrl-C or the end: ROOM.SPEAKER.LANG.wav, "
    "each live segment's speech at its place on the speaker's timeline from the first one heard (a speaker "
    "whose timeline starts again, a new stream of it, goes on in ROOM.SPEAKER.2.LANG.wav). The backlog has "
    "no speech.\n\n"
    "When the server shuts down (or the connection is lost, or the listen reaches the server's longest) the "
    "listen goes on at the next --server address, its backlog's repeats dropped; --no-resume ends it "
    "instead (exit 1, naming the reason). A refused listen exits at once with the server's message: 4 for "
    "credentials (no token, or a token that may not listen to the room: PERMISSION_DENIED), 2 for a bad "
    "room name or language, 1 for a cap (RESOURCE_EXHAUSTED), 3 when no server answers."
)


@flag_groups
def listen(
    room: Annotated[str, typer.Argument(metavar="ROOM", help="the room's name")],
    language: Annotated[
        str, typer.Option("--language", "-l", help="the language to hear: a model code (spa) or a tag (es)")
    ],
    participant: Annotated[
        str | None,
        typer.Option("--participant", help="your id in the room: a speaker with the same id is not heard"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON lines instead of text")] = False,
    out_dir: Annotated[Path | None, typer.Option("--out", help="write each speaker's speech to DIR")] = None,
    overwrite: OverwriteOpt = False,
    resume: Annotated[
        bool, typer.Option("--resume/--no-resume", help="listen again elsewhere when the server goes away")
    ] = True,
    lang_check: Annotated[
        bool,
        typer.Option(
            "--lang-check/--no-lang-check",
            help="check --language against the server's languages and map a tag; off: send it as given",
        ),
    ] = True,
    speed: Annotated[
        float | None,
        typer.Option(
            "--speed",
            help="the speaking rate of the room's speech for you, 0.5..2.0, served at the nearest step of 0.25 "
            "(default: each speaker's)",
        ),
    ] = None,
    original: Annotated[
        bool,
        typer.Option(
            "--original",
            help="where a conversation speaks into the room: its turns in your language in the speaker's own voice "
            "(default: as text)",
        ),
    ] = False,
    *,
    conn: ConnectionFlags,
    timeout: TimeoutOpt = 30.0,
) -> None:
    jobs: list[ListenJob] = []

    def run() -> int:
        from translate_svc.client_cli.listen_run import ListenJob, ListenPlan

        plan = ListenPlan(room, language, participant, as_json, out_dir, overwrite, resume, lang_check, speed, original)
        jobs.append(ListenJob(conn.connection(timeout), plan))
        return jobs[0].run()

    def on_interrupt() -> int:
        code = jobs[0].finish(interrupted=True) if jobs else EXIT_INTERRUPTED
        note("stopped listening (Ctrl-C)", "yellow")
        return code

    run_client(run, conn.server, on_interrupt)
