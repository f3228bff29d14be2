"""A stereo clip's channels as parties (``TranslateRequest.channel_mode`` SEPARATE), through the stock
gRPC stub and the SDK on a real server of the test checkpoint: two different speakers, one per
channel, give per-channel results equal to each channel sent alone (spans, transcripts,
translations and their speech's length), each labelled with its channel (and as its speaker),
merged in source-time order; a mono clip, and speaker labels beside it, are refused saying why."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import pytest_asyncio

from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.raw import output_options
from tests.support.speech import two_parties, wav_bytes
from translate_svc.api.v1 import translate_pb2 as pb

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(60)]

SECONDS = 11


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def live(test_model_dir: Path) -> AsyncIterator[LiveServer]:
    async with serving(make_settings(test_model_dir)) as server:
        yield server


wav = wav_bytes


@pytest.fixture(scope="module")
def parties(shared_audio: Path) -> tuple[np.ndarray, np.ndarray]:
    return two_parties(shared_audio, SECONDS)


def request(content: bytes, separate: bool = True, speakers: int = 0) -> pb.TranslateRequest:
    return pb.TranslateRequest(
        audio=pb.AudioInput(content=content, format=pb.AudioFormat(encoding=pb.CONTAINER)),
        source_language="eng",
        target_languages=["fra"],
        output=output_options(speech=True, transcript=True),
        channel_mode=pb.CHANNEL_MODE_SEPARATE if separate else pb.CHANNEL_MODE_MIXED,
        speakers=speakers,
    )


def shape(seg: pb.SegmentResult) -> tuple[object, ...]:
    return (
        seg.start_ms,
        seg.end_ms,
        seg.transcript.text,
        tuple((t.target_language, t.text, t.audio.num_samples) for t in seg.translations),
    )


async def test_each_channel_is_translated_as_if_sent_alone(
    live: LiveServer, parties: tuple[np.ndarray, np.ndarray]
) -> None:
    stereo = np.stack(parties, axis=1)
    both = await live.stub.Translate(request(wav(stereo)), timeout=600)
    alone = [await live.stub.Translate(request(wav(p), separate=False), timeout=600) for p in parties]
    assert both.audio_duration_ms == SECONDS * 1000
    for channel, single in enumerate(alone, 1):
        mine = [seg for seg in both.segments if seg.channel == channel]
        assert mine and all(seg.speaker == channel for seg in mine)
        assert [shape(s) for s in mine] == [shape(s) for s in single.segments], channel
        assert all(seg.channel == 0 for seg in single.segments)
    assert [seg.segment_id for seg in both.segments] == list(range(len(both.segments)))
    starts = [(seg.start_ms, seg.channel) for seg in both.segments]
    assert starts == sorted(starts) and {seg.channel for seg in both.segments} == {1, 2}


async def test_the_sdk_asks_for_separate_channels(live: LiveServer, parties: tuple[np.ndarray, np.ndarray]) -> None:
    from translate_svc.client import AsyncTranslateClient

    async with AsyncTranslateClient(f"127.0.0.1:{live.port}") as client:
        result = await client.translate(
            wav(np.stack(parties, axis=1)), source="eng", targets="fra", speech=False, separate_channels=True
        )
    assert {seg.channel for seg in result.segments} == {1, 2}
    assert all(seg.speaker == seg.channel for seg in result.segments)


@pytest.mark.parametrize(
    ("stereo", "speakers", "said"),
    [(False, 0, "there is no channel 2"), (True, 2, "speakers and separate channels are both set")],
)
async def test_what_separate_channels_cannot_take_is_refused(
    live: LiveServer, parties: tuple[np.ndarray, np.ndarray], stereo: bool, speakers: int, said: str
) -> None:
    clip = wav(np.stack(parties, axis=1) if stereo else parties[0])
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await live.stub.Translate(request(clip, speakers=speakers), timeout=120)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and said in (e.value.details() or ""), e.value
