"""The ``text`` command: translate text (``TranslateText``) and print it; optionally write the speech."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from translate_svc.client_cli.common import EXIT_FAILED, EXIT_OK, NOISE_WARNING, CliError, note, out, run_client
from translate_svc.client_cli.flags import ConnectionFlags, OverwriteOpt, TimeoutOpt, VoiceFlags, flag_groups

if TYPE_CHECKING:
    from translate_svc.client import Languages, Term, TranslateTextResult

# Not wrapped in the source: rich wraps each paragraph to the terminal (tests/cli/test_help.py).
HELP = (
    "Translate text: each TEXT on its own, into every --to language; print the translations.\n\n"
    "With --out DIR the translated speech is written too: DIR/text<K>.<TARGET>.wav (K: the text's position, "
    "from 1; TARGET: the model's code). --no-speech asks for text alone. --json prints the results as JSON "
    'lines: {"text": K, "target_language": CODE, "text_out": STR, "speech": FILE or null, "status": CODE}.\n\n'
    "Languages: model codes (spa, cmn_Hant), names (Spanish) or BCP-47 tags (es, pt-BR), checked against the "
    "server's ListLanguages; --from is required (the text encoder needs the texts' language)."
)


@flag_groups
def text(
    texts: Annotated[list[str], typer.Argument(help="the texts to translate (each one translated on its own)")],
    to: Annotated[str, typer.Option("--to", help="target languages, comma-separated: spa,fra or es,fr")] = "",
    source: Annotated[str, typer.Option("--from", help="the texts' language: eng or en (required)")] = "",
    terms_file: Annotated[
        Path | None,
        typer.Option(
            "--terms",
            help="names and jargon to get right, one per line: `Acme Cloud` or `boost 5: Acme` (boost, "
            "weight 0-10), `keep: Acme` (do not translate); # comments",
        ),
    ] = None,
    glossary_file: Annotated[
        Path | None,
        typer.Option(
            "--glossary",
            help="phrases to translate as you say (a glossary): a TSV file, one entry a line, its fields "
            "separated by tabs: the source phrase, its translation, the target language (may be left out when "
            "--to names one) and `ignore-case` (optional: else matched in the case written); # comments",
        ),
    ] = None,
    lang_check: Annotated[
        bool,
        typer.Option(
            "--lang-check/--no-lang-check",
            help="check --from/--to against the server's languages and map BCP-47 tags; off: send them as given",
        ),
    ] = True,
    speech: Annotated[bool, typer.Option(help="ask for the translated speech (written with --out)")] = True,
    out_dir: Annotated[Path | None, typer.Option("--out", help="write each translation's speech here as WAV")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON lines instead of text")] = False,
    overwrite: OverwriteOpt = False,
    *,
    voice: VoiceFlags,
    conn: ConnectionFlags,
    timeout: TimeoutOpt = 120.0,
) -> None:
    def run() -> int:
        from translate_svc.client_cli.lang import choose_languages, read_terms, server_languages

        if not source.strip() or source.strip().lower().startswith("auto"):
            raise CliError("--from is required: name the texts' language, e.g. --from en (no detection for text)")
        terms = read_terms(terms_file) if terms_file is not None else []

        def glossary(targets: list[str], langs: Languages | None) -> list[Term]:
            from translate_svc.client_cli.glossary import read_glossary

            return read_glossary(glossary_file, targets, langs) if glossary_file is not None else []

        output = voice.output(speech=speech, transcript=False)
        if out_dir is not None and not speech:
            raise CliError("--out writes the speech: drop --no-speech, or drop --out")
        paths: dict[tuple[int, str], Path] = {}

        async def call() -> TranslateTextResult:
            async with conn.connection(timeout).client() as client:
                langs = await server_languages(client, lang_check)
                choice = choose_languages(source, to, langs, speech=speech, speaker_id=voice.speaker_id)
                if out_dir is not None:
                    from translate_svc.client_cli.files import check_dir, check_free

                    check_dir(out_dir)
                    paths.update(
                        {(k, t): out_dir / f"text{k + 1}.{t}.wav" for k in range(len(texts)) for t in choice.targets}
                    )
                    check_free(list(paths.values()), overwrite)
                return await client.translate_text(
                    texts,
                    source=choice.source or source,
                    targets=choice.targets,
                    terms=terms + glossary(choice.targets, langs),
                    output=output,
                )

        result = asyncio.run(call())
        if result.model.is_test_model:
            note(NOISE_WARNING, "bold yellow")
        written = _write_speech(result, paths, overwrite) if out_dir is not None else {}
        failed = False
        for k, r in enumerate(result.results):
            failed |= r.error is not None
            if as_json:
                rows: list[dict[str, object]] = [
                    {
                        "text": k + 1,
                        "target_language": t.target,
                        "text_out": t.text,
                        "speech": str(written[(k, t.target)]) if (k, t.target) in written else None,
                        "status": "OK",
                    }
                    for t in r.translations
                ]
                if r.error is not None:
                    rows = [{"text": k + 1, "status": r.error.code, "message": r.error.message}]
                for row in rows:
                    sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
                continue
            if r.error is not None:
                out.print(Text(f"[{k + 1}] failed: {r.error.code}: {r.error.message}"))
                continue
            for t in r.translations:
                line = Text(f"[{k + 1}] {t.target}: ")
                line.append(t.text)
                if (k, t.target) in written:
                    line.append(f"  ({written[(k, t.target)]}, {t.duration_s:.2f} s)", style="dim")
                out.print(line)
        return EXIT_FAILED if failed else EXIT_OK

    run_client(run, conn.server)


def _write_speech(
    result: TranslateTextResult, paths: dict[tuple[int, str], Path], overwrite: bool
) -> dict[tuple[int, str], Path]:
    """Each translation's speech as a WAV at its own path; returns what was written."""
    from translate_svc.client_cli.files import make_dir, write
    from translate_svc.client_cli.output import wav_bytes

    written: dict[tuple[int, str], Path] = {}
    for k, r in enumerate(result.results):
        for t in r.translations:
            path = paths.get((k, t.target))
            if path is None or t.audio is None:
                continue
            make_dir(path.parent)
            write(path, wav_bytes(t.audio, t.sample_rate), overwrite)
            written[(k, t.target)] = path
    return written
