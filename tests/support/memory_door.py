"""The in-memory door (a second door needs nothing more): typed requests into ``StreamDriver`` on
a live server, every event out, at a pace or in lockstep with the server (``lockstep.Lockstep``).
For simultaneous streams, on a server whose model is the stable translator (``model/testing/stable.py``:
exact commit points): a stream's config, the rules every stream's commits keep, and the steps the
server counted."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import REGISTRY

from tests.support.live_server import LiveServer, make_settings, serving
from translate_svc.model.testing.stable import StableTranslator
from translate_svc.session import SegmentResult, StreamConfig, StreamDriver, StreamRequest
from translate_svc.types import AudioEncoding, AudioFormat, Commit, OutputOptions, SimultaneousOptions, SpeechEncoding

TARGETS = ("spa", "fra")
#: the longest a test holds something back for an event that the server makes certain (a held
#: final until a step is refused, a reader until a step is skipped): only a broken server waits
#: that long, and the test then fails
HOLD_S = 20.0


def config(live: LiveServer, simultaneous: SimultaneousOptions | None, **output: Any) -> StreamConfig:
    """English LINEAR16 at 16 kHz into ``TARGETS``, the server's VAD defaults, ``output``."""
    return StreamConfig(
        format=AudioFormat(AudioEncoding.LINEAR16, 16000, 1),
        source_language="eng",
        target_languages=TARGETS,
        output=OutputOptions(**output),
        vad=live.server.app.sessions.vad_defaults,
        simultaneous=simultaneous,
    )


async def drive(
    live: LiveServer,
    requests: Sequence[StreamRequest],
    *,
    pace_s: float = 0.0,
    settle: Callable[[StreamRequest], Awaitable[None]] | None = None,
    read_when: asyncio.Event | None = None,
) -> list[Any]:
    """The in-memory door: ``requests`` in (``pace_s`` apart after the config; with ``settle``,
    each once ``settle`` has returned for the one before: the server's pace, not a clock's), every
    event out (with ``read_when``, the reader stops after StreamStarted until it is set, at most
    ``HOLD_S``: a reader that is behind)."""

    async def gen() -> AsyncIterator[StreamRequest]:
        for n, r in enumerate(requests):
            if n and pace_s:
                await asyncio.sleep(pace_s)
            yield r
            if settle is not None:
                await settle(r)

    driver = StreamDriver(live.server.app.sessions)
    out: list[Any] = []
    async with contextlib.aclosing(driver.run(gen())) as events:
        async for ev in events:
            out.append(ev)
            if read_when is not None and len(out) == 1:  # StreamStarted: then stop reading a while
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(read_when.wait(), HOLD_S)
    return out


@contextlib.asynccontextmanager
async def stable_server(test_model_dir: Path, runner: Callable[[], Any] | None = None) -> AsyncIterator[LiveServer]:
    """A live server on the stable translator (or ``runner``)."""
    async with serving(
        make_settings(test_model_dir), runner_factory=runner or (lambda: StableTranslator(test_model_dir))
    ) as live:
        yield live


def steps(outcome: str) -> float:
    """Simultaneous steps this process's server counted with ``outcome``."""
    return REGISTRY.get_sample_value("translate_svc_simultaneous_steps_total", {"outcome": outcome}) or 0.0


def check_commits(events: list[Any], output: OutputOptions) -> dict[int, list[Commit]]:
    """The rules every simultaneous stream keeps; returns each segment's commits."""
    results = [ev for ev in events if isinstance(ev, SegmentResult)]
    assert [r.segment_id for r in results] == list(range(len(results)))
    assert all(r.error is None for r in results)
    by_seg: dict[int, list[Commit]] = {}
    done: set[int] = set()
    last_source = 0
    for ev in events:
        if isinstance(ev, Commit):
            assert ev.segment_id not in done, "a commit after its segment's result"
            assert all(ev.segment_id > d for d in done), "a commit of a segment before one whose result is out"
            assert ev.source_ms >= last_source
            last_source = ev.source_ms
            by_seg.setdefault(ev.segment_id, []).append(ev)
        elif isinstance(ev, SegmentResult):
            done.add(ev.segment_id)
    for r in results:
        commits = by_seg.get(r.segment_id, [])
        assert r.speech_in_commits == bool(commits)
        if not commits:
            continue
        for t in r.translations:
            mine = [c for c in commits if c.translation.target_language == t.target_language]
            assert [c.final for c in mine][-1] and not any(c.final for c in mine[:-1])
            assert "".join(c.translation.text for c in mine) == t.text  # deltas, never a retraction
            if output.speech:
                chunks = [c.translation.audio for c in mine if c.translation.audio is not None]
                assert t.audio is not None and np.array_equal(np.concatenate(chunks), t.audio)
                assert all(c.translation.sample_rate_hz == output.speech_sample_rate_hz for c in mine)
                if output.speech_encoding is SpeechEncoding.OPUS:
                    assert all(c.translation.opus is not None for c in mine if c.translation.audio is not None)
                    assert t.opus is not None and t.opus.num_samples == len(t.audio)
    return by_seg
