"""The ``glossaries`` commands: a tenant's glossaries kept by the server (the token needs the
``glossaries`` permission), on the SDK: ``create ID FILE`` (a CSV, or a TBX file with ``--source
LANG``), ``list``, ``show ID`` (``--csv``: its entries as CSV, what ``create`` reads back),
``replace ID FILE`` and ``delete ID``. A request names one by id (the SDK's ``glossaries=``)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from translate_svc.client_cli.common import EXIT_OK, CliError, out, run_client
from translate_svc.client_cli.flags import ConnectionFlags, TimeoutOpt, flag_groups

if TYPE_CHECKING:
    from translate_svc.client import AsyncTranslateClient, Glossary

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Glossaries kept by the server, by id.")

IdArg = Annotated[str, typer.Argument(help="the glossary's id (1-64 of a-z 0-9 - _)")]
FileArg = Annotated[
    Path,
    typer.Argument(help="a CSV file (a header row, then an entry a row), or a TBX file (.tbx; --source)"),
]
FormatOpt = Annotated[str, typer.Option("--format", help="csv or tbx (default: tbx for a .tbx or .xml file, else csv)")]
SourceOpt = Annotated[
    str, typer.Option("--source", help="TBX: the language its phrases are said in (eng, or a tag such as en)")
]
TargetOpt = Annotated[
    list[str] | None, typer.Option("--target", help="TBX: import only this language (repeat for more)")
]
NameOpt = Annotated[str, typer.Option("--name", help="its display name")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]


def _call(conn: ConnectionFlags, timeout: float, work: Callable[[AsyncTranslateClient], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        async with conn.connection(timeout).client() as client:
            return await work(client)

    return asyncio.run(go())


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise CliError(f"{path}: cannot read it ({e.strerror or e})") from None


def _content(file: Path, fmt: str, source: str, targets: list[str] | None) -> dict[str, Any]:
    """The SDK's content arguments for ``file``."""
    kind = fmt or ("tbx" if file.suffix.lower() in (".tbx", ".xml") else "csv")
    if kind not in ("csv", "tbx"):
        raise CliError(f"--format {fmt}: use csv or tbx")
    data = _read(file)
    if kind == "csv":
        if source or targets:
            raise CliError("--source and --target are for a TBX file (--format tbx)")
        return {"csv": data}
    if not source:
        raise CliError(f"{file}: a TBX names no source language: say which its phrases are in, e.g. --source eng")
    return {"tbx": data, "source_language": source, "target_languages": list(targets or ())}


def _json(g: Glossary) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": g.id,
        "display_name": g.display_name,
        "entry_count": g.entry_count,
        "targets": list(g.targets),
        "revision": g.revision,
        "created_ms": g.created_ms,
        "updated_ms": g.updated_ms,
    }
    if g.entries:
        doc["entries"] = [
            {"phrase": e.phrase, "translation": e.translation, "target": e.target, "ignore_case": e.ignore_case}
            for e in g.entries
        ]
    return doc


def _said(g: Glossary, as_json: bool, what: str) -> int:
    if as_json:
        sys.stdout.write(json.dumps(_json(g), ensure_ascii=False) + "\n")
    else:
        out.print(f"{what} glossary {g.id} (revision {g.revision}): {g.entry_count} entries for {', '.join(g.targets)}")
    return EXIT_OK


@app.command("create")
@flag_groups
def create(
    glossary_id: IdArg,
    file: FileArg,
    name: NameOpt = "",
    fmt: FormatOpt = "",
    source: SourceOpt = "",
    targets: TargetOpt = None,
    as_json: JsonOpt = False,
    *,
    conn: ConnectionFlags,
    timeout: TimeoutOpt = 60.0,
) -> None:
    """Create a glossary from a CSV or TBX file."""

    def run() -> int:
        content = _content(file, fmt, source, targets)
        made = _call(conn, timeout, lambda c: c.create_glossary(glossary_id, display_name=name, **content))
        return _said(made, as_json, "created")

    run_client(run, conn.server)


@app.command("replace")
@flag_groups
def replace(
    glossary_id: IdArg,
    file: FileArg,
    name: NameOpt = "",
    fmt: FormatOpt = "",
    source: SourceOpt = "",
    targets: TargetOpt = None,
    revision: Annotated[int, typer.Option(help="the revision you read (0: replace whatever is there)")] = 0,
    as_json: JsonOpt = False,
    *,
    conn: ConnectionFlags,
    timeout: TimeoutOpt = 60.0,
) -> None:
    """Replace a glossary's entries (and name) with a CSV or TBX file's."""

    def run() -> int:
        content = _content(file, fmt, source, targets)

        def work(c: AsyncTranslateClient) -> Awaitable[Glossary]:
            return c.replace_glossary(glossary_id, display_name=name, revision=revision, **content)

        return _said(_call(conn, timeout, work), as_json, "replaced")

    run_client(run, conn.server)


@app.command("list")
@flag_groups
def list_(as_json: JsonOpt = False, *, conn: ConnectionFlags, timeout: TimeoutOpt = 30.0) -> None:
    """List the tenant's glossaries."""

    def run() -> int:
        found: list[Glossary] = _call(conn, timeout, lambda c: c.list_glossaries())
        if as_json:
            sys.stdout.write(json.dumps([_json(g) for g in found], ensure_ascii=False) + "\n")
            return EXIT_OK
        table = Table("id", "name", "entries", "targets", "revision")
        for g in found:
            table.add_row(g.id, g.display_name, str(g.entry_count), ", ".join(g.targets), str(g.revision))
        out.print(table)
        return EXIT_OK

    run_client(run, conn.server)


@app.command("show")
@flag_groups
def show(
    glossary_id: IdArg,
    as_csv: Annotated[bool, typer.Option("--csv", help="print its entries as CSV (what create reads)")] = False,
    as_json: JsonOpt = False,
    *,
    conn: ConnectionFlags,
    timeout: TimeoutOpt = 30.0,
) -> None:
    """Show a glossary (with its entries)."""

    def run() -> int:
        g: Glossary = _call(conn, timeout, lambda c: c.get_glossary(glossary_id, entries=True))
        if as_csv:
            buf = io.StringIO(newline="")
            writer = csv.writer(buf, lineterminator="\n")
            writer.writerow(("phrase", "translation", "target_language", "ignore_case"))
            for e in g.entries:
                writer.writerow((e.phrase, e.translation, e.target, "true" if e.ignore_case else "false"))
            sys.stdout.write(buf.getvalue())
            return EXIT_OK
        return _said(g, as_json, "")

    run_client(run, conn.server)


@app.command("delete")
@flag_groups
def delete(glossary_id: IdArg, *, conn: ConnectionFlags, timeout: TimeoutOpt = 30.0) -> None:
    """Delete a glossary."""

    def run() -> int:
        _call(conn, timeout, lambda c: c.delete_glossary(glossary_id))
        out.print(f"deleted glossary {glossary_id}")
        return EXIT_OK

    run_client(run, conn.server)
