"""The only place that installs log handlers (called by the CLI, never at import).

``text`` (the default) is for a person at a terminal; ``json`` writes one JSON object per line
(python-json-logger): ``time``, ``level``, ``logger``, ``message`` and every field a record carries
in ``extra`` (the access log's, ``session_id``) as keys of their own.
"""

from __future__ import annotations

import logging

from pythonjsonlogger.json import JsonFormatter


class _ContextFilter(logging.Filter):
    """Appends ``session_id=...`` when a record carries one in ``extra``."""

    def filter(self, record: logging.LogRecord) -> bool:
        sid = getattr(record, "session_id", None)
        record.ctx = f" session_id={sid}" if sid else ""
        return True


def configure(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.addFilter(_ContextFilter())
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s%(ctx)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("transformers", "httpx", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
