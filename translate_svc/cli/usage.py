"""``translate-svc usage``: what each tenant used over a period, from the usage records the
``session.ended`` webhooks carried (``webhooks.data_dir``'s SQLite file, read only, or the Redis of
``cluster.redis_url`` when the service is clustered; the server may be running). A session counts
in the period it ended in (docs/deploy.md "Webhooks and usage")."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

HELP = (
    "What each tenant used over a period (sessions, audio seconds in, speech seconds out by language, "
    "segments, text characters), from the usage records kept beside the webhooks' queue "
    "(TRANSLATE_SVC_WEBHOOKS__DATA_DIR). A session counts in the period it ended in."
)


def _when(text: str) -> float:
    """An ISO 8601 date or time (UTC unless it says otherwise) as Unix seconds."""
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not an ISO 8601 date or time (e.g. 2026-11-01 or 2026-11-01T08:00Z)"
        ) from None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


def usage(
    tenant: Annotated[str | None, typer.Option(help="this tenant only (default: every tenant)")] = None,
    since: Annotated[str | None, typer.Option(help="from (ISO 8601, UTC unless stated; default: 30 days ago)")] = None,
    until: Annotated[str | None, typer.Option(help="until, not included (ISO 8601; default: now)")] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="webhooks.data_dir (default: TRANSLATE_SVC_WEBHOOKS__DATA_DIR)")
    ] = None,
    redis_url: Annotated[
        str | None,
        typer.Option(help="the Redis a clustered service keeps them in (default: TRANSLATE_SVC_CLUSTER__REDIS_URL)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per tenant, one a line")] = False,
) -> None:
    from pydantic import ValidationError

    from translate_svc.settings import Settings
    from translate_svc.settings.webhooks import settings_errors

    try:
        settings = Settings()
    except ValidationError as e:  # without the values given (a webhook secret among them)
        typer.echo(f"invalid settings: {settings_errors(e)}", err=True)
        raise typer.Exit(2) from None
    now = datetime.now(UTC)
    start = _when(since) if since else (now - timedelta(days=30)).timestamp()
    end = _when(until) if until else now.timestamp()
    url = redis_url or (None if data_dir else settings.cluster.redis_url)
    if url is not None:
        from redis.exceptions import RedisError

        from translate_svc.webhooks.redis_queue import read_password, usage_report_redis

        try:
            rows = usage_report_redis(url, read_password(settings.cluster.redis_password_file), tenant, start, end)
        except (RedisError, OSError) as e:
            typer.echo(f"cannot read the usage records from Redis: {e}", err=True)
            raise typer.Exit(1) from None
    else:
        from translate_svc.webhooks.store import usage_report

        directory = data_dir or settings.webhooks.data_dir
        if directory is None:
            raise typer.BadParameter(
                "give --data-dir (or --redis-url), or set TRANSLATE_SVC_WEBHOOKS__DATA_DIR as the server has it"
            )
        try:
            rows = usage_report(directory, tenant, start, end)
        except FileNotFoundError as e:
            typer.echo(str(e), err=True)
            raise typer.Exit(1) from None
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row, sort_keys=True))
        return
    from rich.table import Table

    from translate_svc.client_cli.common import console

    table = Table("tenant", "sessions", "audio in (s)", "speech out (s)", "segments", "text in", "text out")
    for r in rows:
        speech = ", ".join(f"{k} {v:.1f}" for k, v in sorted(r["speech_out_s"].items())) or "0"
        chars = ", ".join(f"{k} {v}" for k, v in sorted(r["text_out_chars"].items())) or "0"
        table.add_row(
            r["tenant"],
            str(r["sessions"]),
            f"{r['audio_in_s']:.1f}",
            speech,
            str(r["segments"]),
            str(r["text_in_chars"]),
            chars,
        )
    console.print(table)
