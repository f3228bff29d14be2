"""Simultaneous mode end to end (issue 33): a real server on the stable translator
(model/testing/stable.py: exact, known commit points) and the SDK streaming speech with ``simultaneous``
on: commits come before their segment's result, their texts joined are its text, their speech
chunks back to back are its speech, and the result says ``speech_in_commits`` (a segment that
closed before any word was agreed on comes as in segment mode, without commits). Off: no commit.
A bad option is refused at the door (shape) or by the session (range) with INVALID_ARGUMENT."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import pytest_asyncio

from tests.support.live_server import LiveServer, make_settings, serving
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.client import (
    AsyncTranslateClient,
    Commit,
    Segment,
    SimultaneousOptions,
    StreamEvent,
    TranslateError,
)
from translate_svc.client_cli.decode import load_pcm16k
from translate_svc.model.testing.stable import StableTranslator

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(20)]

TARGETS = ["spa", "fra"]
CHUNK = 1600  # 100 ms at 16 kHz
SPEED = 4.0  # sent at 4x real time: the steps keep up, and the test stays short


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stable(test_model_dir: Path) -> AsyncIterator[LiveServer]:
    async with serving(make_settings(test_model_dir), runner_factory=lambda: StableTranslator(test_model_dir)) as srv:
        yield srv


@pytest.fixture(scope="module")
def jfk(shared_audio: Path) -> np.ndarray:
    return load_pcm16k(shared_audio / "jfk.flac")


async def stream_all(
    live: LiveServer, pcm: np.ndarray, simultaneous: bool | SimultaneousOptions
) -> tuple[list[StreamEvent], SimultaneousOptions | None]:
    async with (
        AsyncTranslateClient(f"127.0.0.1:{live.port}") as client,
        client.stream(targets=TARGETS, source="eng", simultaneous=simultaneous) as s,
    ):
        assert s.info is not None
        in_force = s.info.simultaneous

        async def send() -> None:
            for i in range(0, len(pcm), CHUNK):
                await s.send(pcm[i : i + CHUNK])
                await asyncio.sleep(CHUNK / 16000 / SPEED)
            await s.close()

        events: list[StreamEvent] = []

        async def read() -> None:
            async for ev in s:
                events.append(ev)

        await asyncio.gather(send(), read())
    return events, in_force


async def test_commits_come_first_and_add_up_to_each_segments_result(stable: LiveServer, jfk: np.ndarray) -> None:
    events, in_force = await stream_all(stable, jfk, True)
    assert in_force == SimultaneousOptions(step_ms=1000, agreement=2)  # the server's defaults, echoed
    segments = [ev for ev in events if isinstance(ev, Segment)]
    commits = [ev for ev in events if isinstance(ev, Commit)]
    assert segments and commits
    done: set[int] = set()
    texts: dict[tuple[int, str], list[str]] = defaultdict(list)
    chunks: dict[tuple[int, str], list[np.ndarray]] = defaultdict(list)
    finals: dict[tuple[int, str], int] = defaultdict(int)
    for ev in events:
        if isinstance(ev, Commit):
            key = (ev.segment_id, ev.target)
            assert ev.segment_id not in done, f"a commit of segment {ev.segment_id} came after its result"
            assert finals[key] == 0, f"a commit of {key} came after its final commit"
            assert not ev.restart  # no resume here
            texts[key].append(ev.text)
            if ev.translation.audio is not None:
                chunks[key].append(ev.translation.audio)
            finals[key] += ev.final
        elif isinstance(ev, Segment):
            done.add(ev.segment_id)
    committed = {seg_id for seg_id, _ in texts}
    assert committed <= {s.segment_id for s in segments}
    for seg in segments:
        assert seg.ok, seg.error
        # a segment closed before any word was agreed on comes as in segment mode: no commit
        assert seg.speech_in_commits is (seg.segment_id in committed)
        if not seg.speech_in_commits:
            assert all(t.audio is not None and len(t.audio) for t in seg.translations)
            continue
        for t in seg.translations:
            key = (seg.segment_id, t.target)
            assert finals[key] == 1, f"{key}: {finals[key]} final commits"
            assert "".join(texts[key]) == t.text
            assert t.audio is not None
            joined = np.concatenate(chunks[key]) if chunks[key] else np.zeros(0, np.float32)
            assert len(joined) == len(t.audio)
            np.testing.assert_allclose(joined, t.audio, atol=2 / 32768)
    # simultaneous: words were committed while their segment was still open
    early = [c for c in commits if not c.final and c.text]
    assert early, "every commit was a segment's last: nothing was committed while speech was open"
    ends = {s.segment_id: s.end_ms for s in segments}
    assert any(c.source_ms < ends[c.segment_id] + 1000 for c in early)


async def test_off_by_default_no_commits(stable: LiveServer, jfk: np.ndarray) -> None:
    events, in_force = await stream_all(stable, jfk[: 16000 * 5], False)
    assert in_force is None
    assert not [ev for ev in events if isinstance(ev, Commit)]
    segments = [ev for ev in events if isinstance(ev, Segment)]
    assert segments and not any(s.speech_in_commits for s in segments)


async def test_a_chosen_step_is_echoed(stable: LiveServer, jfk: np.ndarray) -> None:
    _, in_force = await stream_all(stable, jfk[: 16000 * 3], SimultaneousOptions(step_ms=600, agreement=3))
    assert in_force == SimultaneousOptions(600, 3)


async def test_an_out_of_range_step_is_refused_with_the_range(stable: LiveServer) -> None:
    async with AsyncTranslateClient(f"127.0.0.1:{stable.port}") as client:
        with pytest.raises(TranslateError) as e:
            async with client.stream(targets="spa", simultaneous=SimultaneousOptions(step_ms=50)):
                pass
    assert e.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "step_ms" in e.value.message and "500" in e.value.message


async def test_a_negative_step_is_refused_at_the_door(stable: LiveServer) -> None:
    config = pb.StreamingConfig(
        format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000),
        target_languages=["spa"],
        simultaneous=pb.SimultaneousConfig(enabled=True, step_ms=-1),
    )
    call = stable.stub.StreamingTranslate()
    await call.write(pb.StreamingTranslateRequest(config=config))
    await call.done_writing()
    with pytest.raises(grpc.aio.AioRpcError) as e:
        async for _ in call:
            pass
    assert e.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "config.simultaneous.step_ms is -1" in (e.value.details() or "")
