"""A semantic end of turn over a real server, through the stock gRPC stub (issue 102): the stream's
``VadOptions.eagerness`` hands each pause to the end-of-turn model (Smart Turn v3.2, its real
weights from the ``pipecat-ai`` wheel) and the segments follow its answers.

jfk.flac is two sentences: "And so, my fellow Americans," then "ask not what your country can do
for you, ask what you can do for your country", which the speaker says in three phrases with a
pause of 0.5-1 s between them. The silence rule cuts it into four segments, one a phrase; at
``medium`` the model calls the pauses after "ask not" and "can do for you," incomplete and the
second sentence is one segment (tests/vad/test_turn_end.py reads the model on the same phrases).
What is asserted is where segments begin and end, never the words of the test checkpoint.
A server that does not run the model keeps the silence rule and says so in ``StreamStarted``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.speech import shared_pcm
from translate_svc.api.v1 import translate_pb2 as pb

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(60)]

PCM16 = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000)
#: silero's regions of jfk.flac at the default VAD settings (ms, padded): one a phrase
PHRASES = [(320, 2270), (3270, 4450), (5380, 7680), (8160, 10620)]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def live(test_model_dir: Path) -> AsyncIterator[LiveServer]:
    async with serving(make_settings(test_model_dir), warmup=False) as live:
        yield live


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def without_model(test_model_dir: Path) -> AsyncIterator[LiveServer]:
    """A server told not to run the end-of-turn model (``limits.turn_threads=0``)."""
    settings = make_settings(test_model_dir)
    settings.limits.turn_threads = 0
    async with serving(settings, warmup=False) as live:
        yield live


async def stream(
    live: LiveServer, content: bytes, vad: pb.VadOptions
) -> tuple[pb.StreamStarted, list[tuple[int, int]]]:
    cfg = pb.StreamingConfig(format=PCM16, source_language="eng", target_languages=["spa"], vad=vad)
    msgs = [pb.StreamingTranslateRequest(config=cfg)]
    msgs += [pb.StreamingTranslateRequest(audio=content[i : i + 6400]) for i in range(0, len(content), 6400)]
    started = None
    spans = []
    async for r in live.stub.StreamingTranslate(iter(msgs), timeout=180):
        if r.HasField("started"):
            started = r.started
        elif r.HasField("segment"):
            assert r.segment.status.code == 0, r.segment.status
            spans.append((r.segment.start_ms, r.segment.end_ms))
    assert started is not None
    return started, spans


def near(got: list[tuple[int, int]], want: list[tuple[int, int]]) -> bool:
    """The same segments, each end within a window (32 ms) of the expected one."""
    return len(got) == len(want) and all(
        abs(a - c) <= 32 and abs(b - d) <= 32 for (a, b), (c, d) in zip(got, want, strict=True)
    )


async def test_a_sentence_paused_mid_way_is_one_segment_at_medium_and_three_under_the_silence_rule(
    live: LiveServer, shared_audio: Path
) -> None:
    content, _ = shared_pcm(shared_audio, "jfk.flac")
    started, silence = await stream(live, content, pb.VadOptions())
    assert started.config.vad.eagerness == "" and not started.notices
    assert near(silence, PHRASES), silence

    started, semantic = await stream(live, content, pb.VadOptions(eagerness="medium"))
    assert started.config.vad.eagerness == "medium" and not started.notices
    # the first sentence ends where its phrase does; the second runs from "ask" to "country"
    assert near(semantic, [PHRASES[0], (PHRASES[1][0], PHRASES[3][1])]), semantic


async def test_a_clip_is_cut_as_the_stream_is(live: LiveServer, shared_audio: Path) -> None:
    content, _ = shared_pcm(shared_audio, "jfk.flac")
    reply = await live.stub.Translate(
        pb.TranslateRequest(
            audio=pb.AudioInput(content=content, format=PCM16),
            source_language="eng",
            target_languages=["spa"],
            vad=pb.VadOptions(eagerness="low"),
        ),
        timeout=180,
    )
    spans = [(s.start_ms, s.end_ms) for s in reply.segments]
    assert near(spans, [PHRASES[0], (PHRASES[1][0], PHRASES[3][1])]), spans


async def test_an_eagerness_the_server_does_not_know_is_refused_naming_the_values(
    live: LiveServer, shared_audio: Path
) -> None:
    import grpc

    content, _ = shared_pcm(shared_audio, "jfk.flac")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stream(live, content[:32000], pb.VadOptions(eagerness="eager"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "vad.eagerness='eager'" in (caught.value.details() or "")
    assert "low, medium, high, auto" in (caught.value.details() or "")


async def test_a_server_without_the_model_keeps_the_silence_rule_and_says_so(
    without_model: LiveServer, shared_audio: Path
) -> None:
    content, _ = shared_pcm(shared_audio, "jfk.flac")
    started, spans = await stream(without_model, content, pb.VadOptions(eagerness="medium"))
    assert started.config.vad.eagerness == ""  # the rule in force
    (notice,) = started.notices
    assert "silence" in notice and "limits.turn_threads=0" in notice
    assert near(spans, PHRASES), spans


async def test_the_sdk_asks_for_it_and_reads_what_is_in_force(
    live: LiveServer, without_model: LiveServer, shared_audio: Path
) -> None:
    from translate_svc.client.aio import AsyncTranslateClient
    from translate_svc.client.types import Segment, VadOptions

    _, samples = shared_pcm(shared_audio, "jfk.flac")

    async def run(server: LiveServer) -> tuple[str, tuple[str, ...], list[tuple[int, int]]]:
        async with (
            AsyncTranslateClient(f"127.0.0.1:{server.port}") as client,
            client.stream(targets="spa", source="eng", speech=False, vad=VadOptions(eagerness="medium")) as s,
        ):
            for i in range(0, len(samples), 3200):
                await s.send(samples[i : i + 3200])
            await s.close()
            got = [(ev.start_ms, ev.end_ms) async for ev in s if isinstance(ev, Segment)]
            assert s.info is not None
            return s.info.eagerness, s.info.notices, got

    eagerness, notices, got = await run(live)
    assert (eagerness, notices) == ("medium", ()) and near(got, [PHRASES[0], (PHRASES[1][0], PHRASES[3][1])]), got
    eagerness, notices, got = await run(without_model)
    assert eagerness == "" and len(notices) == 1 and "limits.turn_threads=0" in notices[0] and near(got, PHRASES), got
