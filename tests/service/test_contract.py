"""The contract, true (issue 24): behaviours that the proto and docs/api.md describe, through a real
server on loopback. Each test here failed before its fix."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import soundfile as sf

from tests.support.live_server import LiveServer
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.client_cli.decode import load_pcm16k

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(5)]

FMT = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000)


async def started_config(live: LiveServer, **config: object) -> pb.StreamingConfig:
    async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield pb.StreamingTranslateRequest(config=pb.StreamingConfig(format=FMT, **config))  # type: ignore[arg-type]

    got = [r async for r in live.stub.StreamingTranslate(requests(), timeout=30)]
    assert got[0].HasField("started") and got[-1].HasField("ended")
    return got[0].started.config


async def test_the_started_config_promises_a_transcript_only_when_one_can_come(live: LiveServer) -> None:
    """No source_language (and no detection): no transcript is ever produced, so the resolved
    config says transcript false (it echoed true)."""
    assert not (await started_config(live, target_languages=["spa"])).output.transcript
    assert (await started_config(live, target_languages=["spa"], source_language="eng")).output.transcript


async def test_an_output_that_asks_for_nothing_is_refused(live: LiveServer) -> None:
    """text, speech and transcript all false: INVALID_ARGUMENT (every segment was decoded for nothing)."""
    nothing = pb.OutputOptions(text=False, speech=False, transcript=False)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await started_config(live, target_languages=["spa"], source_language="eng", output=nothing)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "asks for nothing" in (err.value.details() or "")


@pytest.mark.parametrize(("container", "subtype"), [("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III")])
async def test_ogg_vorbis_and_mp3_clips_translate_through_the_rpc(
    live: LiveServer, shared_audio: Path, container: str, subtype: str
) -> None:
    """The two accepted containers no RPC test sent before: each gives the speech's segments."""
    pcm = load_pcm16k(shared_audio / "jfk.flac")
    buf = io.BytesIO()
    sf.write(buf, pcm, 16000, format=container, subtype=subtype)
    request = pb.TranslateRequest(
        audio=pb.AudioInput(content=buf.getvalue(), format=pb.AudioFormat(encoding=pb.CONTAINER)),
        target_languages=["spa"],
        output=pb.OutputOptions(speech=False),
    )
    answer = await live.stub.Translate(request, timeout=120)
    assert len(answer.segments) >= 3 and all(s.status.code == 0 for s in answer.segments)
    assert abs(answer.audio_duration_ms - len(pcm) / 16) <= 100  # the decoded length (an MP3 pads a frame)
