"""The ``translate`` command: its flags and help; the work is in ``translate_run`` (loaded when run)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from translate_svc.client_cli.common import run_client
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

# The shape of BASE.json, an indented block that keeps its lines (each fits 80 columns).
RESULT_SHAPE = """\
  {"format": "translate-svc.result.v1", "input": PATH,
   "via": "Translate" or "StreamingTranslate",
   "source_language": CODE or null, "target_languages": [CODE...],
   "audio_duration_ms": INT,
   "model": {"name", "revision", "is_test_model", "num_speakers"},
   "segments": [{"segment_id": INT, "start_ms": INT, "end_ms": INT,
     "status": {"code": "OK" or a gRPC code name, "message": STR},
     "transcript": STR or null, "transcript_language": CODE or null,
     "transcript_words": [{"word", "start_ms", "end_ms"}] (--word-cues),
     "language_scores": {CODE: NUM} (with --from auto),
     "translations": [{"target_language": CODE, "text": STR,
       "speech": {"sample_rate_hz": INT, "num_samples": INT,
                  "duration_ms": NUM} or null,
       "words": [{"word", "start_ms", "end_ms"}] (--word-cues; ms in
                  its speech)}],
     "timing": {"queue_ms", "model_ms", "total_ms", "vad_wait_ms",
                "speech_ms", "language_id_ms"}}],
   "files": {CODE: {"dub": NAME, "sample_rate_hz": INT,
     "speech_cut_ms": INT, "segments": NAME, "srt": NAME, "vtt": NAME}}}"""

# Not wrapped in the source: rich wraps each paragraph to the terminal (tests/cli/test_help.py).
HELP = (
    "Translate audio files; write per input a dub track per target, and JSON or subtitles.\n\n"
    "Outputs go to --out, named per input: BASE.json, BASE.TARGET.wav (the dub track: the source's length, "
    "each segment's speech mixed in at its start_ms, overlapping the next when longer than the gap; speech past "
    "the source's end is cut unless --dub-extend), BASE.TARGET.segments.wav (with --concat: the speech back to "
    "back, 300 ms apart), BASE.TARGET.srt / .vtt (--format srt,vtt; one cue per segment, timed by its span; "
    "with --asr-only: BASE.transcript.srt / .vtt). With --word-cues the cues come from word timings instead: at "
    "most two lines of about 42 characters, never cut inside a word, each from its first word's start to its last "
    "word's end (a translation's words where its speech plays in the dub track).\n\n"
    "BASE is the file's stem; inputs that share a stem (a/x.wav, b/x.wav) get their parent directories in front "
    "(a_x, b_x). TARGET is the model's code (spa for es). An existing output is never replaced: the command "
    "refuses before translating unless --overwrite.\n\n"
    "Languages: model codes (spa, cmn_Hant), names (Spanish) or BCP-47 tags (es, pt-BR, zh-Hant), checked "
    "against the server's ListLanguages.\n\n"
    "Progress: --via auto sends clips up to 30 s in one Translate call (an elapsed-time spinner: that call "
    "reports nothing until it is done) and longer ones through StreamingTranslate, whose results arrive segment "
    "by segment in order, so the bar shows the audio translated so far; streams also have no clip-length limit "
    "(max_clip_seconds) and no single-answer size limit. Both give the same segments (the server segments both "
    "the same way).\n\n"
    "JSON (BASE.json; every number a JSON number; every segment is listed, failed ones too, with their "
    "status):\n\n" + RESULT_SHAPE
)


@flag_groups
def translate(
    files: Annotated[list[Path], typer.Argument(help="audio files (WAV, FLAC, OGG, MP3, WebM; or --raw-rate)")],
    lang: LanguageFlags,
    out_dir: Annotated[Path, typer.Option("--out", help="output directory")] = Path("out"),
    formats: Annotated[
        list[str] | None, typer.Option("--format", help="json (default), srt, vtt; comma-separated or repeated")
    ] = None,
    speech: Annotated[bool, typer.Option(help="ask for translated speech and write the dub tracks")] = True,
    concat: Annotated[bool, typer.Option("--concat", help="also write the speech back to back")] = False,
    dub_extend: Annotated[
        bool, typer.Option("--dub-extend", help="let the dub track run past the source's end")
    ] = False,
    overwrite: OverwriteOpt = False,
    via: Annotated[str, typer.Option("--via", help="auto, translate (one call) or stream")] = "auto",
    word_cues: Annotated[
        bool,
        typer.Option(
            "--word-cues",
            help="subtitle cues from word timings: at most 2 lines of 42 characters, never cut inside a word "
            "(asks the server for word timings; translations: timed in their speech, as the dub track plays it)",
        ),
    ] = False,
    *,
    voice: VoiceFlags,
    vad: VadFlags,
    raw: RawFlags,
    conn: ConnectionFlags,
    timeout: TimeoutOpt = 600.0,
) -> None:
    def run() -> int:
        from translate_svc.client_cli import translate_run as tr

        connection = conn.connection(timeout)
        plan = tr.TranslatePlan(
            lang=lang,
            formats=tr.parse_formats(formats),
            concat=concat,
            dub_extend=dub_extend,
            overwrite=overwrite,
            via=via,
            output=dataclasses.replace(
                voice.output(
                    speech=speech and not lang.asr_only,
                    transcript=bool(lang.source.strip() or lang.conversation.strip()),
                ),
                word_timings=word_cues,
            ),
            vad=vad.options(),
            raw=raw.format(),
            word_cues=word_cues,
        )
        inputs = tr.unique_inputs(files)
        return asyncio.run(tr.TranslateJob(connection, plan).run_all(inputs, out_dir))

    run_client(run, conn.server)
