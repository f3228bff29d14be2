"""The ``detect`` command: does an audio file carry the watermark a translate-svc server adds to the
speech it makes (``DetectSynthetic``)?"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from translate_svc.client_cli.common import EXIT_OK, CliError, out, run_client
from translate_svc.client_cli.flags import ConnectionFlags, TimeoutOpt, flag_groups

if TYPE_CHECKING:
    from translate_svc.client import Detection

# Not wrapped in the source: rich wraps each paragraph to the terminal (tests/cli/test_help.py).
HELP = (
    "Does FILE carry the watermark a translate-svc server adds to every speech it makes? The server searches it "
    "(any audio file it reads: WAV, FLAC, Ogg, MP3, WebM/Opus; at most its limits.max_detect_seconds) and this "
    "prints whether it is marked, how surely (a probability, 0-1), the stretches read as marked and the watermark "
    "looked for. Clips under 2 s are answered but not conclusive. --json prints one JSON object: "
    '{"file": PATH, "marked": BOOL, "conclusive": BOOL, "probability": P, "spans_ms": [[START, END], ...], '
    '"watermarker": NAME, "duration_ms": N, "content_credentials": null or {"state": ..., "generated": BOOL, '
    '"model": ..., "signer": ..., ...}}. A file that carries a C2PA manifest (content credentials) has it '
    "checked too: Trusted, Valid or Invalid, and what it says made the file.\n\n"
    "The exit code is 0 whether or not the file is marked (the answer is printed)."
)


@flag_groups
def detect(
    file: Annotated[Path, typer.Argument(help="the audio file to search for the mark")],
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object instead of text")] = False,
    *,
    conn: ConnectionFlags,
    timeout: TimeoutOpt = 120.0,
) -> None:
    def run() -> int:
        if not file.is_file():
            raise CliError(f"{file} is not a file: name the audio file to search")
        content = file.read_bytes()
        if not content:
            raise CliError(f"{file} is empty: name an audio file")

        async def call() -> Detection:
            async with conn.connection(timeout).client() as client:
                return await client.detect_synthetic(content)

        found = asyncio.run(call())
        if as_json:
            sys.stdout.write(json.dumps(detection_json(file, found)) + "\n")
        else:
            out.print(detection_text(file, found), markup=False, highlight=False)
        return EXIT_OK

    run_client(run, conn.server)


def detection_json(file: Path, found: Detection) -> dict[str, object]:
    return {
        "file": str(file),
        "marked": found.marked,
        "conclusive": found.conclusive,
        "probability": round(found.probability, 4),
        "spans_ms": [list(span) for span in found.spans],
        "watermarker": found.watermarker,
        "duration_ms": found.audio_duration_ms,
        "content_credentials": None if found.content_credentials is None else asdict(found.content_credentials),
    }


def detection_text(file: Path, found: Detection) -> str:
    verdict = "marked" if found.marked else "not marked"
    caveat = "" if found.conclusive else " (not conclusive: under 2 s of audio)"
    spans = ", ".join(f"{a / 1000:.1f}-{b / 1000:.1f} s" for a, b in found.spans) or "none"
    seconds = found.audio_duration_ms / 1000
    c = found.content_credentials
    if c is None:
        credentials = "none"
    else:
        made = ("a trained model" + (f" ({c.model})" if c.model else "")) if c.generated else "not said"
        credentials = f"{c.state}, signed by {c.signer or '?'} ({c.issuer or '?'}), made by {made}"
        credentials += f"; failures: {', '.join(c.failures)}" if c.failures else ""
    return (
        f"{file}: {verdict}{caveat}, probability {found.probability:.3f} ({seconds:.1f} s of audio)\n"
        f"  marked stretches: {spans}\n  watermark looked for: {found.watermarker}\n"
        f"  content credentials (C2PA): {credentials}"
    )
