"""The only place that installs log handlers (called by the CLI, never at import)."""

from __future__ import annotations

import logging


class _ContextFilter(logging.Filter):
    """Appends ``session_id=...`` when a record carries one in ``extra``."""

    def filter(self, record: logging.LogRecord) -> bool:
        sid = getattr(record, "session_id", None)
        record.ctx = f" session_id={sid}" if sid else ""
        return True


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.addFilter(_ContextFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s%(ctx)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("transformers", "httpx", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
