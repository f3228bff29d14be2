"""What the commands that show events as they arrive (``stream``, ``listen``) share: a clock from
the call's start, a human line per event on a console, a JSON line per event on a text stream."""

from __future__ import annotations

import json
import time
from typing import IO, Any

from rich.console import Console
from rich.text import Text


class EventLines:
    """A mixin for a view's dataclass, which holds ``human`` (the console of human lines),
    ``jsonl`` (the JSON lines' stream, or None) and ``t0`` (``time.perf_counter()`` at the start)."""

    human: Console
    jsonl: IO[str] | None
    t0: float

    def now_ms(self) -> float:
        return (time.perf_counter() - self.t0) * 1000

    def emit(self, obj: dict[str, Any]) -> None:
        """One JSON line (with ``t_ms``), flushed: a Ctrl-C keeps what was written."""
        if self.jsonl is not None:
            self.jsonl.write(json.dumps({**obj, "t_ms": round(self.now_ms(), 1)}, ensure_ascii=False) + "\n")
            self.jsonl.flush()

    def say(self, *parts: tuple[str, str] | str) -> None:
        """One human line, stamped with the seconds since the start."""
        stamp = (f"{self.now_ms() / 1000:8.2f} s  ", "dim")
        self.human.print(Text.assemble(stamp, *parts), soft_wrap=True)
