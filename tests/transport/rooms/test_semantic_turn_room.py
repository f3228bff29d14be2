"""A room speaker whose turns end on meaning (issue 102 item 1, rooms): a gRPC speaker that asks
``vad.eagerness`` ``medium`` speaks jfk.flac into a room, on a real server of the test checkpoint
with the end-of-turn model's real weights; its Spanish listener (gRPC ``Listen``, the stock stub)
hears the speaker's two sentences as two segments, the second whole although it is said in three
phrases, at the same spans as the speaker's own results, where the silence rule cuts a segment a
phrase (tests/transport/grpc/test_semantic_turns.py: the same file on a stream of its own). What is
asserted is where segments begin and end, never the test checkpoint's words. The speech is the
stream test's bytes: the model reads "ask not" (1.3 s) as 0.35 complete there, near ``medium``'s
0.5, and the same file resampled another way (``speech_pcm16``, within one 16-bit step of it) as
0.50, closing every phrase (docs/performance.md, "A short turn's decision at the threshold")."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.rooms import registry, speak, speaker_config, wait_for
from tests.support.speech import shared_pcm
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.settings import RoomSettings

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(30)]

#: silero's regions of jfk.flac at the default VAD settings (ms, padded): one a phrase
PHRASES = [(320, 2270), (3270, 4450), (5380, 7680), (8160, 10620)]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def live(test_model_dir: Path) -> AsyncIterator[LiveServer]:
    settings = make_settings(test_model_dir)
    settings.rooms = RoomSettings(backlog_s=600.0)
    async with serving(settings, warmup=False) as server:
        yield server


def near(got: list[tuple[int, int]], want: list[tuple[int, int]]) -> bool:
    return len(got) == len(want) and all(
        abs(a - c) <= 32 and abs(b - d) <= 32 for (a, b), (c, d) in zip(got, want, strict=True)
    )


async def heard_in_room(live: LiveServer, room: str, pcm: bytes, vad: pb.VadOptions) -> tuple[list, list]:
    """The speaker's own spans and what its Spanish listener heard, for one speech into ``room``."""
    events: list[pb.ListenEvent] = []

    async def listen() -> None:
        async for ev in live.stub.Listen(pb.ListenRequest(room=room, language="spa")):
            events.append(ev)

    task = asyncio.create_task(listen())
    listeners = lambda: registry(live).listener_counts().get("spa", 0)  # noqa: E731
    await wait_for(lambda: listeners() == 1)
    config = speaker_config(room)
    config.vad.CopyFrom(vad)
    own: list[pb.SegmentResult] = []
    ended = await speak(live.stub, config, pcm, own)
    assert ended.reason == pb.StreamEnd.HALF_CLOSE and own, ended
    ids = {s.segment_id for s in own}
    segments = lambda: {e.segment.segment_id: e.segment for e in events if e.WhichOneof("event") == "segment"}  # noqa: E731
    await wait_for(lambda: segments().keys() >= ids, 120.0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await wait_for(lambda: listeners() == 0)  # gone before the next room's listener counts
    heard = segments()
    return [(s.start_ms, s.end_ms) for s in own], [(heard[i].start_ms, heard[i].end_ms) for i in sorted(ids)]


async def test_a_room_hears_the_speakers_turns_end_on_meaning(live: LiveServer, shared_audio: Path) -> None:
    pcm, _ = shared_pcm(shared_audio, "jfk.flac")  # the bytes the stream test sends (its decisions' audio)
    own, heard = await heard_in_room(live, "turns", pcm, pb.VadOptions(eagerness="medium"))
    assert own == heard and near(heard, [PHRASES[0], (PHRASES[1][0], PHRASES[3][1])]), (own, heard)
    own, heard = await heard_in_room(live, "silence", pcm, pb.VadOptions())
    assert own == heard and near(heard, PHRASES), (own, heard)
