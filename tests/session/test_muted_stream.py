"""A muted speaker is not an idle stream (issue 51): the stream core keeps a configured stream whose
client sends nothing while its door says the client still answers pings (``peer_alive``), counted
each ``idle_timeout_s``, up to ``max_stream_seconds`` from its config; without that word, or once
the client stops answering, the idle limit ends it as before. A fake engine, no server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from tests.support.fake_engine import FakeEngineClient
from translate_svc.errors import LimitReached
from translate_svc.observability import metrics
from translate_svc.session import AudioIn, SessionManager, StreamConfig, StreamDriver, StreamEnded, StreamRequest
from translate_svc.settings import LimitsSettings
from translate_svc.types import AudioEncoding, AudioFormat, OutputOptions
from translate_svc.vad.segmenter import SegmenterConfig
from translate_svc.vad.silero import SileroVad
from translate_svc.vad.worker import VadWorker

pytestmark = pytest.mark.unit

FMT = AudioFormat(AudioEncoding.LINEAR16, 16000, 1)
IDLE_S = 0.1
MUTED_S = 0.6  # six idle timeouts
CHUNK = AudioIn(b"\0\0" * 1600)  # 100 ms


@pytest.fixture(scope="module")
def vad() -> VadWorker:
    return VadWorker(SileroVad())


def config() -> StreamConfig:
    return StreamConfig(FMT, "eng", ("spa",), OutputOptions(speech=False), SegmenterConfig())


async def run(driver: StreamDriver, requests: AsyncIterator[StreamRequest]) -> tuple[list[object], LimitReached]:
    got: list[object] = []
    with pytest.raises(LimitReached) as ended:
        async with contextlib.aclosing(driver.run(requests)) as events:
            async for ev in events:
                got.append(ev)
    return got, ended.value


async def test_a_muted_client_that_answers_pings_is_kept_and_its_audio_after_the_unmute_is_taken(
    vad: VadWorker,
) -> None:
    manager = SessionManager(FakeEngineClient(), vad, SegmenterConfig(), LimitsSettings(idle_timeout_s=IDLE_S))
    alive = True

    async def requests() -> AsyncIterator[StreamRequest]:
        nonlocal alive
        yield config()
        yield CHUNK
        await asyncio.sleep(MUTED_S)  # muted: nothing sent, the pings answered
        yield CHUNK  # unmuted: taken
        alive = False  # then the client dies (stops answering) and sends nothing more
        await asyncio.sleep(60)
        yield CHUNK

    kept = metrics.MUTED_KEPT._value.get()
    driver = StreamDriver(manager, error_drain_s=0.0, peer_alive=lambda: alive)
    got, ended = await run(driver, requests())
    assert ended.reason == "idle_timeout"  # once it stopped answering
    assert isinstance(got[-1], StreamEnded) and got[-1].audio_received_ms == 200  # both chunks taken
    # kept once per idle timeout while muted (six of them; a busy machine may fire fewer timers)
    assert metrics.MUTED_KEPT._value.get() - kept >= 3
    assert manager.open_streams == 0


async def test_without_the_doors_word_a_silent_client_is_idle(vad: VadWorker) -> None:
    manager = SessionManager(FakeEngineClient(), vad, SegmenterConfig(), LimitsSettings(idle_timeout_s=IDLE_S))

    async def requests() -> AsyncIterator[StreamRequest]:
        yield config()
        yield CHUNK
        await asyncio.sleep(60)
        yield CHUNK

    kept = metrics.MUTED_KEPT._value.get()
    got, ended = await run(StreamDriver(manager, error_drain_s=0.0), requests())
    assert ended.reason == "idle_timeout" and isinstance(got[-1], StreamEnded)
    assert got[-1].audio_received_ms == 100 and metrics.MUTED_KEPT._value.get() == kept


async def test_a_muted_stream_lasts_at_most_max_stream_seconds(vad: VadWorker) -> None:
    limits = LimitsSettings(idle_timeout_s=IDLE_S, max_stream_seconds=0.5)
    manager = SessionManager(FakeEngineClient(), vad, SegmenterConfig(), limits)

    async def requests() -> AsyncIterator[StreamRequest]:
        yield config()
        yield CHUNK
        await asyncio.sleep(60)  # muted for good, answering pings
        yield CHUNK

    loop = asyncio.get_running_loop()
    started = loop.time()
    got, ended = await run(StreamDriver(manager, error_drain_s=0.0, peer_alive=lambda: True), requests())
    assert ended.reason == "max_stream_duration" and "limits.max_stream_seconds" in ended.message
    assert isinstance(got[-1], StreamEnded) and loop.time() - started >= 0.5
