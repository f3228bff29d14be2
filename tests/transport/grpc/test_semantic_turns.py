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

import asyncio
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


async def eager_stream(
    live: LiveServer, content: bytes, vad: pb.VadOptions, *, paced_from: int | None = None
) -> list[pb.StreamingTranslateResponse]:
    """Every response of a stream of ``content``; from byte ``paced_from`` on, 100 ms a message at
    real time (a pause as long as a speaker's: the work started at its beginning has its time)."""
    cfg = pb.StreamingConfig(format=PCM16, source_language="eng", target_languages=["spa"], vad=vad)

    async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield pb.StreamingTranslateRequest(config=cfg)
        for i in range(0, len(content), 3200):
            if paced_from is not None and i >= paced_from:
                await asyncio.sleep(0.1)
            yield pb.StreamingTranslateRequest(audio=content[i : i + 3200])

    return [r async for r in live.stub.StreamingTranslate(requests(), timeout=180)]


def kinds(responses: list[pb.StreamingTranslateResponse]) -> list[str]:
    return [r.WhichOneof("response") for r in responses if r.WhichOneof("response") != "speech_event"]


async def test_an_eager_end_whose_speech_resumes_says_so_and_loses_nothing(
    live: LiveServer, shared_audio: Path
) -> None:
    """At medium with an eager threshold under what the model reads at the two pauses inside the
    second sentence (1-4 % complete): each is an eager end of its segment, then resumed; the
    segments are those of medium alone."""
    content, _ = shared_pcm(shared_audio, "jfk.flac")
    out = await eager_stream(live, content, pb.VadOptions(eagerness="medium", eager_threshold=0.001))
    assert out[0].started.config.vad.eager_threshold == pytest.approx(0.001)
    eager = [r.eager_end_of_turn for r in out if r.HasField("eager_end_of_turn")]
    resumed = [r.turn_resumed for r in out if r.HasField("turn_resumed")]
    segments = [r.segment for r in out if r.HasField("segment")]
    assert near([(s.start_ms, s.end_ms) for s in segments], [PHRASES[0], (PHRASES[1][0], PHRASES[3][1])])
    # both pauses of the second sentence (after "ask not", after "can do for you,")
    assert near(
        [(e.start_ms, e.end_ms) for e in eager], [(PHRASES[1][0], PHRASES[1][1]), (PHRASES[1][0], PHRASES[2][1])]
    )
    assert [e.segment_id for e in eager] == [1, 1] and [t.segment_id for t in resumed] == [1, 1]
    assert near([(t.offset_ms, t.offset_ms) for t in resumed], [(PHRASES[2][0] + 30,) * 2, (PHRASES[3][0] + 30,) * 2])
    turns = [k for k in kinds(out) if k in ("eager_end_of_turn", "turn_resumed")]
    assert turns == ["eager_end_of_turn", "turn_resumed"] * 2
    last_resumed = max(i for i, r in enumerate(out) if r.HasField("turn_resumed"))
    assert [r.segment.segment_id for r in out[last_resumed:] if r.HasField("segment")] == [1]
    assert all(s.status.code == 0 for s in segments)


async def test_an_eager_end_the_pause_confirms_is_the_segments_result(live: LiveServer, shared_audio: Path) -> None:
    """ "ask not", then 8.6 s of silence at real time, at low (its bound: 8 s): the pause after it is
    an eager end (the model reads "ask not" alone 1-32 % complete, by CPU: under low's 70 %), and
    the bound closes the segment there: its result has the eager end's span and nothing resumed.
    The work started at the pause is kept when done by then, else sent again as a final
    (``translate_svc_eager_ends_total``): one of the two."""
    content, _ = shared_pcm(shared_audio, "jfk.flac")
    ask_not = content[PHRASES[1][0] * 32 : (PHRASES[1][1] + 300) * 32]  # 16 kHz PCM16: 32 bytes a ms
    audio = ask_not + bytes(32 * 8600)
    before = confirmed()
    out = await eager_stream(
        live, audio, pb.VadOptions(eagerness="low", eager_threshold=0.001), paced_from=len(ask_not)
    )
    # the last eager end is the pause that lasts (a short one between "ask" and "not" may come first, resumed)
    *resumed_ends, eager = [r.eager_end_of_turn for r in out if r.HasField("eager_end_of_turn")]
    assert len([r for r in out if r.HasField("turn_resumed")]) == len(resumed_ends)
    (seg,) = [r.segment for r in out if r.HasField("segment")]
    assert (seg.segment_id, seg.start_ms, seg.end_ms) == (eager.segment_id, eager.start_ms, eager.end_ms)
    assert seg.status.code == 0 and near([(seg.start_ms, seg.end_ms)], [(2, PHRASES[1][1] - PHRASES[1][0])])
    assert confirmed() - before == 1


def confirmed() -> float:
    """Eager ends the pause confirmed, kept or sent again (the server runs in this process)."""
    from prometheus_client import REGISTRY

    return sum(
        REGISTRY.get_sample_value("translate_svc_eager_ends_total", {"outcome": o}) or 0 for o in ("kept", "unfinished")
    )


async def test_an_eager_threshold_without_an_eagerness_or_over_its_threshold_is_refused(
    live: LiveServer, shared_audio: Path
) -> None:
    import grpc

    content, _ = shared_pcm(shared_audio, "jfk.flac")
    for vad, words in [
        (pb.VadOptions(eager_threshold=0.2), "needs a semantic end of turn"),
        (pb.VadOptions(eagerness="high", eager_threshold=0.3), "below 0.3"),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stream(live, content[:32000], vad)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "vad.eager_threshold=" in (caught.value.details() or "") and words in (caught.value.details() or "")


async def test_the_sdk_asks_for_an_eager_end_and_yields_its_events(live: LiveServer, shared_audio: Path) -> None:
    from translate_svc.client import EagerEndOfTurn, Segment, TurnResumed, VadOptions
    from translate_svc.client.aio import AsyncTranslateClient

    _, samples = shared_pcm(shared_audio, "jfk.flac")
    vad = VadOptions(eagerness="medium", eager_threshold=0.001)
    async with (
        AsyncTranslateClient(f"127.0.0.1:{live.port}") as client,
        client.stream(targets="spa", source="eng", speech=False, vad=vad) as s,
    ):
        for i in range(0, len(samples), 3200):
            await s.send(samples[i : i + 3200])
        await s.close()
        events = [ev async for ev in s if isinstance(ev, Segment | EagerEndOfTurn | TurnResumed)]
    turns = [(type(ev).__name__, ev.segment_id) for ev in events if not isinstance(ev, Segment)]
    assert turns == [("EagerEndOfTurn", 1), ("TurnResumed", 1)] * 2, events
    spans = [(ev.start_ms, ev.end_ms) for ev in events if isinstance(ev, Segment)]
    assert near(spans, [PHRASES[0], (PHRASES[1][0], PHRASES[3][1])]), spans
