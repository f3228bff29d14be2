"""The server's ``/metrics`` as the bench reads it: one HTTP GET with the standard library (a load
machine installs the client only: no HTTP library, no prometheus_client), parsed for the few
samples the bench reports.

The page is Prometheus's text exposition format (version 0.0.4, what prometheus_client serves to a
plain GET; https://prometheus.io/docs/instrumenting/exposition_formats/): one sample a line,
``name{label="value",...} value [timestamp]``, ``#`` lines for HELP and TYPE. The samples read:

- ``process_cpu_seconds_total``, ``process_resident_memory_bytes``: prometheus_client's process
  collector (under ``serve --workers N``, the supervisor's only);
- ``translate_svc_simultaneous_steps_total{outcome="run"|"skipped"}``: simultaneous steps of every
  stream on the node (docs/api.md, "Simultaneous mode"). The gRPC wire does not tell a client that
  a step of its stream was skipped; this counter is the only place the server says it. Until a first
  step is counted the family has its TYPE line and no sample: 0, not "not measured".

Pure functions, and one coroutine that runs the blocking read in a worker thread.
"""

from __future__ import annotations

import asyncio
import http.client
import logging
import re
import urllib.error
import urllib.request
from dataclasses import dataclass

logger = logging.getLogger(__name__)

#: how long one read of /metrics may take (a step goes on unmeasured past it)
READ_TIMEOUT_S = 5.0
#: reads of /metrics before the bench gives a reading up
READ_TRIES = 3
#: the most of a /metrics page read (the server's is about 100 KB)
MAX_PAGE_BYTES = 8 * 2**20

CPU = "process_cpu_seconds_total"
RSS = "process_resident_memory_bytes"
STEPS = "translate_svc_simultaneous_steps_total"

# name, then {labels} (a label value may hold any character, `"` and `\` escaped), then the value
_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[^"}]|"(?:[^"\\]|\\.)*")*)\})?\s+(\S+)(?:\s+-?\d+)?\s*$')
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')
_TYPE = re.compile(r"^#\s+TYPE\s+([a-zA-Z_:][a-zA-Z0-9_:]*)\s+\w+\s*$")


@dataclass(frozen=True)
class Reading:
    """What one read of /metrics said (None: not on the page)."""

    cpu_s: float | None = None
    rss_bytes: float | None = None
    steps_run: float | None = None
    steps_skipped: float | None = None


def _labels(text: str) -> dict[str, str]:
    out = {}
    for m in _LABEL.finditer(text):
        out[m.group(1)] = re.sub(r"\\(.)", lambda e: "\n" if e.group(1) == "n" else e.group(1), m.group(2))
    return out


def parse_metrics(text: str) -> Reading:
    """The samples the bench reads from a /metrics page (lines it cannot parse are ignored)."""
    declared: set[str] = set()
    values: dict[str, float] = {}
    steps = {"run": 0.0, "skipped": 0.0}
    for line in text.splitlines():
        if line.startswith("#"):
            if t := _TYPE.match(line):
                declared.add(t.group(1))
            continue
        m = _SAMPLE.match(line)
        if m is None:
            continue
        name, labels, raw = m.groups()
        try:
            value = float(raw)
        except ValueError:
            continue
        if name == STEPS:
            outcome = _labels(labels or "").get("outcome")
            if outcome in steps:
                steps[outcome] += value  # summed: one sample per outcome, or one per process
        elif name in (CPU, RSS):
            values[name] = value
    # prometheus_client declares a counter by its name with or without "_total", by version
    has_steps = STEPS in declared or STEPS.removesuffix("_total") in declared
    return Reading(
        cpu_s=values.get(CPU),
        rss_bytes=values.get(RSS),
        steps_run=steps["run"] if has_steps else None,
        steps_skipped=steps["skipped"] if has_steps else None,
    )


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=READ_TIMEOUT_S) as r:
        body: bytes = r.read(MAX_PAGE_BYTES)
        return body.decode("utf-8", "replace")


async def read_metrics(url: str) -> Reading | None:
    """A read of ``url``, tried ``READ_TRIES`` times (a server at its capacity can answer /metrics
    late: one slow answer must not lose a step's figures); None: every try failed, logged, and the
    step goes on without them."""
    for attempt in range(1, READ_TRIES + 1):
        try:
            return parse_metrics(await asyncio.to_thread(_get, url))
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
            logger.warning("cannot read %s (try %d of %d): %s", url, attempt, READ_TRIES, e)
    return None
