"""The SDK's ``LastingStream`` against real servers (issue 48, item 3): a refusal backed off by the
server's retry delay, a reopen after MAX_STREAM_DURATION with the audio the ended stream did not
take sent to the next one (nothing lost), and a drain moved to a second server inside one stream;
and a limit that ends a stream ``restart()`` retired: its untaken rest is dropped, counted and told.

Servers with the fake runner (tests/support/fake_runner.py: no checkpoint, results by length) on
loopback port 0, started by ``serving`` (which waits for the server's own start); real clients.
"Nothing lost" is read from the server's own count of the audio it took (``StreamEnd.
audio_received_ms``), never from the model's words.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import numpy as np
import pytest
import pytest_asyncio

from tests.support.fake_runner import FakeRunner
from tests.support.live_server import make_settings, serving
from tests.support.paths import REPO
from translate_svc.client import (
    AsyncStream,
    AsyncTranslateClient,
    AudioDropped,
    Draining,
    EndReason,
    LastingEvent,
    LastingPolicy,
    LastingStream,
    OpenRefused,
    Reopening,
    RetryPolicy,
    Segment,
    StreamClosedError,
    StreamEnd,
    StreamOpened,
)
from translate_svc.client_cli.decode import load_pcm16k

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(20)]

RATE = 16000
FAKE = REPO / "model_cache" / "unused-fake-runner"


@pytest.fixture(scope="module")
def jfk(shared_audio: Path) -> np.ndarray:
    return load_pcm16k(shared_audio / "jfk.flac")


def fake_settings():  # type: ignore[no-untyped-def]
    return make_settings(FAKE)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def one_stream() -> AsyncIterator[str]:
    """A server that takes one stream at a time (limits.max_streams = 1): the next is refused with
    RESOURCE_EXHAUSTED and a RetryInfo of 1 s (session/tenants/counters.py, ``refusal``)."""
    settings = fake_settings()
    settings.limits.max_streams = 1
    async with serving(settings, warmup=False, runner_factory=FakeRunner) as live:
        yield f"127.0.0.1:{live.port}"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def short() -> AsyncIterator[str]:
    """A server whose streams last at most 1.5 s of audio (limits.max_stream_seconds)."""
    settings = fake_settings()
    settings.limits.max_stream_seconds = 1.5
    async with serving(settings, warmup=False, runner_factory=FakeRunner) as live:
        yield f"127.0.0.1:{live.port}"


async def collect(lasting: LastingStream, within: float = 60.0) -> list[LastingEvent]:
    async def run() -> list[LastingEvent]:
        return [ev async for ev in lasting]

    return await asyncio.wait_for(run(), within)


def ms(samples: int) -> int:
    return samples * 1000 // RATE


async def test_a_refusal_is_backed_off_by_the_servers_retry_delay(one_stream: str, jfk: np.ndarray) -> None:
    audio = jfk[: 2 * RATE]
    # one attempt per open: the lasting stream, not the client, waits after a refusal
    async with AsyncTranslateClient(one_stream, retry=RetryPolicy(max_attempts=1)) as client:
        holder = client.stream(targets="spa", speech=False)
        await holder.start()  # the server's one stream
        lasting = LastingStream(lambda: _stream(client), sample_rate=RATE)
        t0 = time.monotonic()
        lasting.push(audio)
        events: list[LastingEvent] = []
        async for ev in lasting:
            events.append(ev)
            if isinstance(ev, OpenRefused):
                await holder.aclose()  # the server's stream is free from now on
                break
        refused = events[-1]
        assert isinstance(refused, OpenRefused)
        assert refused.error.code is grpc.StatusCode.RESOURCE_EXHAUSTED and refused.error.retry_delay_s == 1.0
        assert refused.retry_in_s == 1.0 and refused.refusals == 1  # the server's delay, not our backoff
        assert lasting.stream is None and lasting.queued_samples == audio.size  # held, not dropped
        lasting.end_input()
        rest = await collect(lasting)
    opened = [e for e in rest if isinstance(e, StreamOpened)]
    assert len(opened) == 1 and opened[0].number == 1
    assert time.monotonic() - t0 >= 1.0  # no second try before the delay
    end = rest[-1]
    assert isinstance(end, StreamEnd) and end.clean
    assert end.audio_received_ms == ms(audio.size)  # everything queued during the refusal was sent
    assert lasting.dropped_samples == 0 and not [e for e in rest if isinstance(e, AudioDropped)]
    with pytest.raises(StreamClosedError):
        lasting.push(audio)


async def test_a_stream_at_its_longest_reopens_and_sends_what_it_did_not_take(short: str, jfk: np.ndarray) -> None:
    audio = jfk[: 4 * RATE]  # against streams of at most 1.5 s: three streams
    async with AsyncTranslateClient(short) as client:
        lasting = LastingStream(lambda: _stream(client), sample_rate=RATE)
        for i in range(0, audio.size, RATE // 10):
            lasting.push(audio[i : i + RATE // 10])
        lasting.end_input()
        events = await collect(lasting)
    opened = [e.number for e in events if isinstance(e, StreamOpened)]
    reopens = [e for e in events if isinstance(e, Reopening)]
    assert opened == [1, 2, 3]
    assert [r.number for r in reopens] == [1, 2]
    for r in reopens:
        # the chunk that would pass the limit is not taken: it goes to the next stream
        assert r.end.reason is EndReason.MAX_STREAM_DURATION and 1000 < r.end.audio_received_ms <= 1500
        assert r.resent_ms > 0
    end = events[-1]
    assert isinstance(end, StreamEnd) and end.clean
    # what the server took, stream after stream, is all that was pushed, once
    assert sum(r.end.audio_received_ms for r in reopens) + end.audio_received_ms == ms(audio.size)
    # each stream's events come between its StreamOpened and the next one's
    kinds = [type(e).__name__ for e in events if not isinstance(e, Segment)]
    assert kinds.index("Reopening") < kinds.index("StreamOpened", 1)
    assert lasting.dropped_samples == 0


async def test_a_drain_moves_the_stream_to_the_second_server_and_nothing_is_lost(jfk: np.ndarray) -> None:
    first, second = fake_settings(), fake_settings()
    first.server.drain_s = 0.5
    audio = np.concatenate([jfk, jfk])  # 22 s, sent at 10x real time
    streams: list[AsyncStream] = []
    async with serving(first, warmup=False, runner_factory=FakeRunner) as a:
        async with serving(second, warmup=False, runner_factory=FakeRunner) as b:
            async with AsyncTranslateClient([f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"]) as client:

                async def make() -> AsyncStream:
                    s = client.stream(targets="spa", speech=False)
                    streams.append(s)
                    return s

                lasting = LastingStream(make, sample_rate=RATE, policy=LastingPolicy(max_queued_s=60))
                reading = asyncio.create_task(collect(lasting))
                step = RATE // 10
                for n, i in enumerate(range(0, audio.size, step)):
                    lasting.push(audio[i : i + step])
                    if n == 50:  # 5 s in: the first server shuts down, draining its streams
                        stopping = asyncio.create_task(a.server.stop(grace=10))
                    await asyncio.sleep(0.01)
                lasting.end_input()
                events = await reading
                await stopping
    assert len(streams) == 1 and streams[0].resumes == 1  # moved inside one stream, not reopened
    opened = [e for e in events if isinstance(e, StreamOpened)]
    assert len(opened) == 1 and opened[0].info is not None and opened[0].info.address == f"127.0.0.1:{a.port}"
    assert streams[0].info is not None and streams[0].info.address == f"127.0.0.1:{b.port}"
    assert any(isinstance(e, Draining) for e in events)
    assert not [e for e in events if isinstance(e, (Reopening, OpenRefused, AudioDropped))]
    segments = [e for e in events if isinstance(e, Segment)]
    assert segments and [s.segment_id for s in segments] == list(range(len(segments)))
    end = events[-1]
    assert isinstance(end, StreamEnd) and end.clean and end.audio_received_ms == ms(audio.size)


async def test_audio_past_the_bound_is_dropped_oldest_first_and_told(one_stream: str, jfk: np.ndarray) -> None:
    """No server takes the stream (the one slot is held): beyond ``max_queued_s`` the oldest audio
    goes, counted and told, and the newest is what the stream gets once it opens."""
    async with AsyncTranslateClient(one_stream, retry=RetryPolicy(max_attempts=1)) as client:
        holder = client.stream(targets="spa", speech=False)
        await holder.start()
        lasting = LastingStream(lambda: _stream(client), sample_rate=RATE, policy=LastingPolicy(max_queued_s=1.0))
        audio = jfk[: 3 * RATE]
        lasting.push(audio)
        assert lasting.queued_samples == RATE and lasting.dropped_samples == 2 * RATE
        first = await asyncio.wait_for(lasting.__anext__(), 10)
        assert first == AudioDropped(2 * RATE, 2 * RATE, RATE)
        await holder.aclose()
        lasting.end_input()
        events = await collect(lasting)
    end = events[-1]
    assert isinstance(end, StreamEnd) and end.clean and end.audio_received_ms == 1000


async def test_a_limit_on_a_restarted_stream_counts_what_it_did_not_take_as_dropped(
    short: str, jfk: np.ndarray
) -> None:
    """``restart()`` retires stream 1 after the server cut it at its limit (1.5 s), before its end
    was read; stream 2 already takes the newer audio. What stream 1 was sent and did not take
    cannot go to stream 2 (it would come after newer audio): it is counted and told as
    ``AudioDropped``, and every pushed sample is either taken by a stream or dropped, once."""
    first, second = jfk[: 17 * RATE // 10], jfk[17 * RATE // 10 : 22 * RATE // 10]
    async with AsyncTranslateClient(short) as client:
        lasting = LastingStream(lambda: _stream(client), sample_rate=RATE)
        lasting.push(first)
        await _until(lambda: lasting.stream is not None and lasting.stream.ended is not None)
        lasting.restart()  # the end of stream 1 is not read yet (nothing iterates)
        lasting.push(second)
        await _until(lambda: lasting.opened == 2)
        lasting.end_input()
        events = await collect(lasting)
    opened = [e.number for e in events if isinstance(e, StreamOpened)]
    dropped = [e for e in events if isinstance(e, AudioDropped)]
    reopens = [e for e in events if isinstance(e, Reopening)]
    assert opened == [1, 2] and [r.number for r in reopens] == [1]
    cut = reopens[0].end
    assert cut.reason is EndReason.MAX_STREAM_DURATION and 1000 < cut.audio_received_ms <= 1500
    assert reopens[0].resent_ms == 0  # nothing went to stream 2...
    assert len(dropped) == 1 and dropped[0].samples > 0  # ...it was counted and told instead
    assert lasting.dropped_samples == dropped[0].samples == dropped[0].total_samples
    end = events[-1]
    assert isinstance(end, StreamEnd) and end.clean
    taken = cut.audio_received_ms + end.audio_received_ms
    assert taken + ms(lasting.dropped_samples) == ms(first.size + second.size)


async def _until(done: Callable[[], bool], within: float = 20.0) -> None:
    """Until ``done()`` (a state inside the SDK that no event announces: checked every 10 ms)."""

    async def wait() -> None:
        while not done():  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    await asyncio.wait_for(wait(), within)


def _stream(client: AsyncTranslateClient) -> asyncio.Future[AsyncStream]:
    fut: asyncio.Future[AsyncStream] = asyncio.get_running_loop().create_future()
    fut.set_result(client.stream(targets="spa", speech=False))
    return fut
