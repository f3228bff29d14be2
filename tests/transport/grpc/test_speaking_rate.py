"""The speaking rate on the gRPC door (issue 90 item 1): ``OutputOptions.speed`` on a clip
(Translate, TranslateChunked), on TranslateText and on a stream's config, and ``StreamUpdate.speed``
mid-stream, through the stock stub against a real server on loopback (the test checkpoint).

The same input at speed 1 and at 1.5 (or 0.5): the speech is 1/speed as long, within two vocoder
frames and 5 % (``tests/support/speaking_rate.py``), the translated words timed inside their own
speech; an update changes the rate from the segment its answer names on, never before; a rate out
of 0.5..2.0 is INVALID_ARGUMENT naming the field and the range (an update's is answered, and the
stream goes on). Assertions are on lengths, spans and statuses, never on words."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import grpc
import pytest
from google.rpc import code_pb2

from tests.support.live_server import LiveServer
from tests.support.raw import clip_chunks, raw_request, text_request
from tests.support.speaking_rate import at_rate, long_enough, rate_failure, words_inside
from tests.support.speech import shared_pcm, speech_pcm16
from translate_svc.api.v1 import translate_pb2 as pb

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(40)]

TEXTS = ["Hello world, how are you today?", "The meeting moved to Thursday at nine."]
RATE = 16000
CHUNK = 3200  # 100 ms of 16 kHz LINEAR16


def _lengths(results: Sequence[pb.SegmentResult | pb.TextResult]) -> dict[tuple[int, str], int]:
    return {(n, t.target_language): t.audio.num_samples for n, r in enumerate(results) for t in r.translations}


def _check_rate(at_1: dict[tuple[int, str], int], at_speed: dict[tuple[int, str], int], speed: float) -> None:
    assert at_1.keys() == at_speed.keys()
    assert any(long_enough(n, RATE) for n in at_1.values()), at_1  # a rate shows past the slack
    for key, n in at_1.items():
        assert at_rate(n, at_speed[key], speed, RATE), (key, rate_failure(n, at_speed[key], speed, RATE))


def _check_words(results: Sequence[pb.SegmentResult | pb.TextResult]) -> int:
    """Every translation's words inside its own speech; how many words there were."""
    count = 0
    for r in results:
        for t in r.translations:
            spans = [(w.start_ms, w.end_ms) for w in t.words]
            assert words_inside(spans, t.audio.num_samples, t.audio.sample_rate_hz), (spans, t.audio.num_samples)
            count += len(spans)
    return count


async def test_a_clip_at_1_5_speaks_in_two_thirds_of_the_time_and_at_0_5_in_twice(
    live: LiveServer, shared_audio: Path
) -> None:
    """Translate of jfk.flac into two languages at 1, 1.5 and 0.5, word timings on; TranslateChunked
    at 1.5 answers as Translate does."""
    content, _ = shared_pcm(shared_audio, "jfk.flac")

    def clip(speed: float | None) -> pb.TranslateRequest:
        output = pb.OutputOptions(speech=True, word_timings=True)
        if speed is not None:
            output.speed = speed
        return raw_request(content, pb.LINEAR16, source_language="eng", target_languages=["spa", "fra"], output=output)

    at_1 = await live.stub.Translate(clip(None))
    fast = await live.stub.Translate(clip(1.5))
    slow = await live.stub.Translate(clip(0.5))
    for r in (at_1, fast, slow):
        assert all(s.status.code == code_pb2.OK for s in r.segments)
    assert [(s.start_ms, s.end_ms) for s in fast.segments] == [(s.start_ms, s.end_ms) for s in at_1.segments]
    _check_rate(_lengths(list(at_1.segments)), _lengths(list(fast.segments)), 1.5)
    _check_rate(_lengths(list(at_1.segments)), _lengths(list(slow.segments)), 0.5)
    assert _check_words(list(fast.segments)) + _check_words(list(slow.segments)) > 0

    chunked = await live.stub.TranslateChunked(clip_chunks(clip(1.5), chunk_bytes=64 * 1024))
    assert _lengths(list(chunked.segments)) == _lengths(list(fast.segments))


async def test_texts_at_1_5_are_spoken_in_two_thirds_of_the_time(live: LiveServer) -> None:
    at_1 = await live.stub.TranslateText(text_request(TEXTS, output=pb.OutputOptions(word_timings=True)))
    fast = await live.stub.TranslateText(text_request(TEXTS, output=pb.OutputOptions(word_timings=True, speed=1.5)))
    _check_rate(_lengths(list(at_1.results)), _lengths(list(fast.results)), 1.5)
    _check_words(list(fast.results))


@pytest.mark.parametrize("speed", [0.3, 2.5])
async def test_a_rate_out_of_range_is_invalid_argument_naming_the_field_and_the_range(
    live: LiveServer, speed: float
) -> None:
    output = pb.OutputOptions(speed=speed)
    calls = {
        "Translate": live.stub.Translate(raw_request(b"\0\0" * RATE, pb.LINEAR16, output=output)),
        "TranslateText": live.stub.TranslateText(text_request(TEXTS[:1], output=output)),
    }
    for name, call in calls.items():
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await call
        assert e.value.code() is grpc.StatusCode.INVALID_ARGUMENT, name
        message = e.value.details() or ""
        assert "output.speed" in message and "0.5 to 2.0" in message and f"{speed}" in message, (name, message)

    async def config_only() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield pb.StreamingTranslateRequest(config=_config(output))

    with pytest.raises(grpc.aio.AioRpcError) as e:
        async for _ in live.stub.StreamingTranslate(config_only()):
            pass
    assert e.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "output.speed" in (e.value.details() or "") and "0.5 to 2.0" in (e.value.details() or "")


def _config(output: pb.OutputOptions) -> pb.StreamingConfig:
    return pb.StreamingConfig(
        format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=RATE, channels=1),
        source_language="eng",
        target_languages=["spa"],
        output=output,
    )


async def _stream(
    live: LiveServer, pcm: bytes, output: pb.OutputOptions, updates: dict[int, list[pb.StreamUpdate]]
) -> tuple[pb.StreamStarted, list[pb.SegmentResult], list[pb.StreamUpdated]]:
    """``pcm`` streamed in 100 ms chunks; before chunk ``k``, each of ``updates[k]``, each answer
    awaited before more audio (so the segment it names is the first to close after it)."""
    answers: asyncio.Queue[pb.StreamUpdated] = asyncio.Queue()

    async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield pb.StreamingTranslateRequest(config=_config(output))
        for k, at in enumerate(range(0, len(pcm), CHUNK)):
            for u in updates.get(k, []):
                yield pb.StreamingTranslateRequest(update=u)
                await answers.get()
            yield pb.StreamingTranslateRequest(audio=pcm[at : at + CHUNK])

    started: pb.StreamStarted | None = None
    segments: list[pb.SegmentResult] = []
    updated: list[pb.StreamUpdated] = []
    async for msg in live.stub.StreamingTranslate(requests()):
        kind = msg.WhichOneof("response")
        if kind == "started":
            started = msg.started
        elif kind == "segment":
            segments.append(msg.segment)
        elif kind == "updated":
            updated.append(msg.updated)
            answers.put_nowait(msg.updated)
    assert started is not None
    return started, segments, updated


async def test_a_stream_at_its_config_rate_and_an_update_from_the_segment_it_names(
    live: LiveServer, shared_audio: Path
) -> None:
    """The same 20 s of speech streamed three times: at 1; at 1.5 from the config; at 1, then
    (halfway) an update to 0.5 after a refused update to 2.5. Each segment's speech against the
    same segment's at 1: the config's rate on every one, the update's from ``first_segment_id`` on
    and never before; the refused update changes nothing and the stream goes on."""
    pcm = speech_pcm16(shared_audio / "silero_test.wav", 20.0, RATE).tobytes()
    speech = pb.OutputOptions(speech=True, transcript=False, word_timings=True)
    started_1, at_1, _ = await _stream(live, pcm, speech, {})
    assert started_1.config.output.speed == 1.0  # resolved: the default filled in
    assert len(at_1) >= 3, "the test needs segments before and after the update"

    fast_output = pb.OutputOptions()
    fast_output.CopyFrom(speech)
    fast_output.speed = 1.5
    started, fast, _ = await _stream(live, pcm, fast_output, {})
    assert started.config.output.speed == 1.5
    _check_rate(_lengths(at_1), _lengths(fast), 1.5)
    _check_words(fast)

    half = len(pcm) // CHUNK // 2
    bad, good = pb.StreamUpdate(speed=2.5), pb.StreamUpdate(speed=0.5)
    _, mixed, (refused, accepted) = await _stream(live, pcm, speech, {half: [bad, good]})
    assert refused.status.code == code_pb2.INVALID_ARGUMENT
    assert "speed" in refused.status.message and "0.5 to 2.0" in refused.status.message
    assert refused.config.output.speed == 1.0  # unchanged
    assert accepted.status.code == code_pb2.OK and accepted.config.output.speed == 0.5
    first = accepted.first_segment_id
    assert 0 < first < len(mixed), (first, len(mixed))
    assert [(s.start_ms, s.end_ms) for s in mixed] == [(s.start_ms, s.end_ms) for s in at_1]
    assert _lengths(mixed[:first]) == _lengths(at_1[:first])  # segments closed before the update: untouched
    _check_rate(_lengths(at_1[first:]), _lengths(mixed[first:]), 0.5)
    _check_words(mixed)


async def test_a_clip_whose_slower_speech_could_not_fit_one_answer_is_refused_up_front(live: LiveServer) -> None:
    """Translate estimates the speech an answer carries before it runs (``check_answer_size``: 1.5 s
    of speech per second of audio per target); at 0.5 the speech is twice as long, so 300 s of
    audio into three languages fits the 64 MiB answer at 1 and not at 0.5."""
    silence = b"\xff" * (300 * 8000)  # 300 s of G.711 µ-law silence at 8 kHz (2.4 MB: one message)

    def clip(speed: float) -> pb.TranslateRequest:
        return raw_request(
            silence, pb.MULAW, rate=8000, target_languages=["spa", "fra", "deu"], output=pb.OutputOptions(speed=speed)
        )

    answered = await live.stub.Translate(clip(1.0))
    assert answered.audio_duration_ms == 300_000
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await live.stub.Translate(clip(0.5))
    assert e.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "may not fit" in (e.value.details() or ""), e.value.details()


async def test_a_simultaneous_streams_finals_say_the_rate_their_chunks_were_spoken_at(
    live: LiveServer, shared_audio: Path
) -> None:
    """Simultaneous mode (its speech spoken in chunks as words commit; agreement 1, so the random
    model's words commit at each step) at 1.5 from the config: every final whose speech came in
    commits says ``speech_rate`` 1.5, as a segment's does (it said none before); at 1, 1.0."""
    pcm = speech_pcm16(shared_audio / "silero_test.wav", 8.0, RATE).tobytes()
    for speed in (1.0, 1.5):
        config = _config(pb.OutputOptions(speech=True, transcript=False, speed=speed))
        config.simultaneous.CopyFrom(pb.SimultaneousConfig(enabled=True, step_ms=600, agreement=1))

        async def requests(config: pb.StreamingConfig = config) -> AsyncIterator[pb.StreamingTranslateRequest]:
            yield pb.StreamingTranslateRequest(config=config)
            for at in range(0, len(pcm), CHUNK):
                await asyncio.sleep(CHUNK / 2 / RATE)  # real time: steps run while a segment is open
                yield pb.StreamingTranslateRequest(audio=pcm[at : at + CHUNK])

        finals = [m.segment async for m in live.stub.StreamingTranslate(requests()) if m.HasField("segment")]
        spoken = [t for s in finals if s.speech_in_commits for t in s.translations if t.audio.num_samples]
        assert spoken, "the test needs finals whose speech came in commits"
        assert all(t.HasField("speech_rate") and t.speech_rate == pytest.approx(speed) for t in spoken), [
            (t.audio.num_samples, t.speech_rate if t.HasField("speech_rate") else None) for t in spoken
        ]
