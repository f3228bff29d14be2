"""``translate-svc recordings decrypt``: a recording's files decrypted from the disk with the key
file, for an operator (an export, an audit, a server that is down). The server's recordings API
(``GET /v1/recordings/...``) does the same for a tenant's token. Imports the recordings package
when the command runs: ``--help`` loads nothing of the server."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from translate_svc.client_cli.common import console

HELP = "Read back what the server recorded (docs/security.md, Recordings)."

app = typer.Typer(add_completion=False, no_args_is_help=True, help=HELP)


DECRYPT_HELP = (
    "Decrypt every file of one recording into --out, each checked against its manifest's SHA-256. A file a "
    "failure cut (the manifest says it is not complete) is written as far as it authenticates. Exits 1 if a "
    "file does not authenticate or its key is not in the key file."
)


@app.command("decrypt", help=DECRYPT_HELP)
def decrypt(
    recording: Annotated[
        Path, typer.Argument(help="the recording's directory: <recordings.dir>/<tenant>/<recording id>")
    ],
    key_file: Annotated[
        Path,
        typer.Option(
            "--key-file", help="the tenants' keys (recordings.key_file)", envvar="TRANSLATE_SVC_RECORDINGS__KEY_FILE"
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="where to write the decrypted files (created)")],
) -> None:
    from translate_svc.recordings.keys import KeyFileError, KeyRing, NoKey
    from translate_svc.recordings.sealed import SealedError, Truncated
    from translate_svc.recordings.store import RecordingStore

    tenant, recording_id = recording.parent.name, recording.name
    try:
        store = RecordingStore(recording.parent.parent, KeyRing(key_file))
    except KeyFileError as e:
        console.print(f"[red]{escape(str(e))}[/]")
        raise typer.Exit(1) from None
    manifest = store.manifest(tenant, recording_id)
    if manifest is None:
        console.print(
            f"[red]no recording at {escape(str(recording))}[/] (expected <dir>/<tenant>/<32 hex digits>/manifest.json)"
        )
        raise typer.Exit(1)
    out.mkdir(parents=True, exist_ok=True)
    failed = False
    for entry in manifest.get("files", []):
        name = entry["name"]
        found = store.read(tenant, recording_id, name)
        assert found is not None
        digest, cut = hashlib.sha256(), False
        with open(out / name, "wb") as f:
            try:
                for chunk in found[1]:
                    f.write(chunk)
                    digest.update(chunk)
            except SealedError as e:
                if isinstance(e, Truncated) or not entry.get("complete"):
                    cut = True  # a file a failure cut: the manifest says so
                else:
                    console.print(f"[red]{escape(name)}: {escape(str(e))}[/]")
                    failed = True
                    continue
            except NoKey as e:
                console.print(f"[red]{escape(name)}: {escape(str(e))}[/]")
                failed = True
                continue
        if cut or not entry.get("complete"):
            reason = manifest.get("incomplete_reason")
            console.print(f"{escape(name)}: [yellow]incomplete[/] ({reason}): written as far as it authenticates")
        elif digest.hexdigest() != entry.get("sha256"):
            console.print(f"[red]{escape(name)}: its SHA-256 is not the manifest's[/]")
            failed = True
        else:
            console.print(f"{escape(name)}: {entry.get('bytes')} bytes, SHA-256 checked")
    if failed:
        raise typer.Exit(1)
