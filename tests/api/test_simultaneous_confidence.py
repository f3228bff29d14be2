"""Confidence in simultaneous mode through the gRPC door (issue 72): on a real server with the test
checkpoint and the SDK, a simultaneous segment's final (``speech_in_commits``) carries
``avg_logprob`` on its transcript, each translation and each timed word, as a segment-mode final
does, and each commit that adds text carries the mean of the tokens it adds (``Commit.avg_logprob``;
its words too). LocalAgreement-1 commits every step's hypothesis but its last word, so the random
weights commit something in every step. Values are noise here: the test holds structure, range
(finite, <= 0) and that they follow the input."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.live_server import LiveServer
from tests.support.speech import read_16k
from translate_svc.client import AsyncTranslateClient, Commit, Segment, SimultaneousOptions

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(40)]

CHUNK = 1600  # 100 ms at 16 kHz
SPEED = 1.0  # real time, as a microphone: the steps run while speech is open, even on a busy machine


def ok(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value <= 0.0


async def stream(live: LiveServer, pcm: np.ndarray) -> list[Any]:
    async with (
        AsyncTranslateClient(f"127.0.0.1:{live.port}") as client,
        client.stream(
            targets=["spa", "fra"],
            source="eng",
            simultaneous=SimultaneousOptions(step_ms=500, agreement=1),
            word_timings=True,
            transcript=True,
        ) as s,
    ):

        async def send() -> None:
            for i in range(0, len(pcm), CHUNK):
                await s.send(pcm[i : i + CHUNK])
                await asyncio.sleep(CHUNK / 16000 / SPEED)  # pacing as a microphone, not a wait
            await s.close()

        events: list[Any] = []

        async def read() -> None:
            async for ev in s:
                events.append(ev)

        await asyncio.gather(send(), read())
    return events


def check(events: list[Any]) -> list[float]:
    """The structure of one stream's confidence; its finals' values."""
    commits = [ev for ev in events if isinstance(ev, Commit)]
    finals = [ev for ev in events if isinstance(ev, Segment) and ev.speech_in_commits]
    assert finals, "no segment was committed while open: simultaneous finals were not checked"
    texted = [c for c in commits if c.translation.text]
    assert texted and all(ok(c.translation.avg_logprob) for c in texted)
    # a commit that adds no token (speech only, not final) has no value
    assert all(c.translation.avg_logprob is None for c in commits if not c.translation.text and not c.final)
    assert all(ok(w.avg_logprob) for c in commits for w in c.translation.words)
    assert any(c.translation.words for c in commits), "no commit came with words"
    values = []
    for seg in finals:
        assert ok(seg.transcript_avg_logprob)
        assert seg.transcript_words and all(ok(w.avg_logprob) for w in seg.transcript_words)
        for t in seg.translations:
            assert ok(t.avg_logprob)
            assert all(ok(w.avg_logprob) for w in t.words)
            values.append(t.avg_logprob)
        values.append(seg.transcript_avg_logprob)
    return values


async def test_simultaneous_finals_and_commits_carry_their_avg_logprob(live: LiveServer, shared_audio: Path) -> None:
    jfk = read_16k(shared_audio / "jfk.flac")
    other = read_16k(shared_audio / "silero_test.wav")[: 8 * 16000]
    first = check(await stream(live, jfk))
    second = check(await stream(live, other))
    assert len(set(first)) > 1  # each segment and row its own, not a constant
    assert set(first).isdisjoint(second)  # another recording: its own values
