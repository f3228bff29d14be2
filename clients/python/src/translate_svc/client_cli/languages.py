"""The ``languages`` command: the loaded model's languages, as a table or JSON."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from translate_svc.client_cli.common import EXIT_OK, out, run_client
from translate_svc.client_cli.flags import ConnectionFlags, TimeoutOpt, flag_groups

if TYPE_CHECKING:
    from translate_svc.client import Languages


@flag_groups
def languages(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    *,
    conn: ConnectionFlags,
    timeout: TimeoutOpt = 30.0,
) -> None:
    """List the languages of the model the server has loaded (--from/--to also take BCP-47 tags)."""

    async def fetch() -> Languages:
        async with conn.connection(timeout).client() as client:
            return await client.languages()

    def run() -> int:
        langs = asyncio.run(fetch())
        if as_json:
            sys.stdout.write(json.dumps(languages_json(langs), indent=2, ensure_ascii=False) + "\n")
        else:
            out.print(languages_table(langs))
        return EXIT_OK

    run_client(run, conn.server)


def languages_json(langs: Languages) -> dict[str, object]:
    from translate_svc.client_cli.output import model_json

    return {
        "model": model_json(langs.model),
        "languages": [
            {
                "code": lang.code,
                "name": lang.name,
                "speech_input": lang.speech_input,
                "text_output": lang.text_output,
                "speech_output": lang.speech_output,
            }
            for lang in langs.languages
        ],
    }


def languages_table(langs: Languages) -> Table:
    table = Table(title=Text(f"{langs.model.name} ({langs.model.revision})"))
    for col in ("code", "name", "speech in", "text out", "speech out"):
        table.add_column(col)
    yes = {True: "yes", False: ""}
    for lang in langs.languages:
        cells = (lang.code, lang.name, yes[lang.speech_input], yes[lang.text_output], yes[lang.speech_output])
        table.add_row(*(Text(c) for c in cells))
    return table
