"""A job's audio billed once across its runs (``translation.py``).

Each run of a job is a session of its tenant whose usage record (``lifecycle.JobRun``) says the
audio it was charged. A run charges its audio as it feeds it, ahead of its finished segments, and
the next run resumes at the end of the last stored segment: a run that gave its worker back was
charged past that point, and a killed one's record ends at its last checkpoint (the outbox's
heartbeat, ``webhooks/outbox.py``), before it. Each run charging from its own resume point, a job
killed with ``-9`` billed 280.5 of its 300 s.

So each run writes ``run.json`` in the job's folder once its session is open: its session id and
where on the job's audio its charge starts (``from_s``). The next run reads it and what the usage
records say of that session now (open: its last checkpoint; ended: its ``session.ended``): the job
is billed up to ``from_s + audio_in_s / channels``. The new run charges at once what lies between
that and its own start (``owed_s``: a killed run's audio past its last checkpoint) and, of its
audio past its start, none of what was billed already (``free_s``). The runs' records together are
then the job's audio once (each channel's, for a job of separate channels), however often it
stopped. Without records (no ``webhooks.data_dir``), or none of that session (expired, or never
written: killed before its first checkpoint reached the store), a run charges from its start, as
before. A run whose process still runs after its job was taken over (a stalled process, ``LeaseLost``)
ends with its own record later: its audio past the checkpoint read here is charged twice.

``run.json`` (``{"session_id", "from_s"}``) goes with the job's audio when the job ends. Files are
read and written on the job's own thread (blocking), never the event loop.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from translate_svc.jobs.lifecycle import JobRun
from translate_svc.jobs.tracks import RUN_FILE
from translate_svc.webhooks.events import EventSink


@dataclass(frozen=True)
class LastRun:
    session_id: str
    from_s: float


def last_run(folder: Path) -> LastRun | None:
    """The job's last run as it wrote it (None: none did, or the file is not one we wrote)."""
    try:
        data = json.loads((folder / RUN_FILE).read_text())
        return LastRun(str(data["session_id"]), float(data["from_s"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_run(folder: Path, session_id: str, from_s: float) -> None:
    """This run is the job's last: replaced whole (a crash leaves the old file or the new one)."""
    tmp = folder / f".{RUN_FILE}.tmp"
    tmp.write_text(json.dumps({"session_id": session_id, "from_s": from_s}))
    os.replace(tmp, folder / RUN_FILE)


@dataclass
class RunCharge:
    """What one run charges: from ``from_s`` on the job's audio (a channel's seconds); ``owed_s``
    (every channel's seconds) at once; then its audio fed past its start less ``free_s`` (a
    channel's seconds, billed by an earlier run)."""

    from_s: float
    owed_s: float = 0.0
    free_s: float = 0.0

    @classmethod
    async def of(cls, events: EventSink, last: LastRun | None, start_s: float, channels: int) -> RunCharge:
        """The charge of a run whose own charge would start at ``start_s`` (its resume point on the
        job's audio), after ``last``."""
        data = None if last is None else await events.session_data(last.session_id)
        if last is None or data is None:
            return cls(start_s)
        billed = last.from_s + float(data.get("usage", {}).get("audio_in_s", 0.0)) / channels
        return cls(billed, max(0.0, start_s - billed) * channels, max(0.0, billed - start_s))

    def charged(self, frames: int, rate: int) -> float:
        """Of ``frames`` more fed (a channel's, at ``rate``), the seconds not billed yet (a channel's)."""
        seconds = frames / rate
        free = min(self.free_s, seconds)
        self.free_s -= free
        return seconds - free

    def start(self, run: JobRun) -> None:
        """The run's session is open: what it owes, charged."""
        if self.owed_s > 0:
            run.audio(self.owed_s)
