"""The client SDK against real servers on loopback: typed results, the sync API, retries that honour
RetryInfo, and streams that move to another server when theirs drains or dies, losing and
repeating nothing."""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
import trustme

from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.raw import stream_pcm, translate_file
from tests.support.speech import FRAME, opus_packets
from tests.support.waiting import eventually
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.client import (
    AsyncStream,
    AsyncTranslateClient,
    Draining,
    EndReason,
    RetryPolicy,
    Segment,
    SpeechEvent,
    SpeechEventType,
    StreamClosedError,
    StreamEnd,
    StreamEvent,
    StreamResumeError,
    TlsOptions,
    TranslateClient,
    TranslateError,
)
from translate_svc.client_cli.decode import load_pcm16k
from translate_svc.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(75)]

SPEED = 10  # resumed streams are sent at 10x real time

#: the SDK's log line for a resume: where translation resumes, where the audio sent starts, the lead-in, the next id
RESUMED = r"from (\d+) ms \(audio from (\d+) ms: a lead-in of (\d+) ms\), segment (\d+)"


def addr(live: LiveServer) -> str:
    return f"127.0.0.1:{live.server.port}"


@pytest.fixture(scope="module")
def jfk(shared_audio: Path) -> np.ndarray:
    return load_pcm16k(shared_audio / "jfk.flac")


@pytest.fixture(scope="module")
def minute(shared_audio: Path) -> np.ndarray:
    return load_pcm16k(shared_audio / "silero_test.wav")  # 60 s, 16 kHz int16


def spans(segments: list[Segment]) -> list[tuple[int, int]]:
    return [(s.start_ms, s.end_ms) for s in segments]


async def raw_spans(live: LiveServer, pcm: np.ndarray) -> list[tuple[int, int]]:
    trace = await stream_pcm(live.stub, pcm, ["spa"], source="eng", chunk_ms=100, speech=False)
    return [(s.start_ms, s.end_ms) for s in trace.segments]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def minute_on_one_server(live: LiveServer, minute: np.ndarray) -> list[tuple[int, int]]:
    """The minute's spans as one server gives them over a raw gRPC stream: the reference the
    resumed streams are held to (the same for each test; made once)."""
    return await raw_spans(live, minute)


async def run_stream(
    s: AsyncStream,
    chunks: Sequence[bytes | np.ndarray],
    *,
    chunk_s: float = 0.0,
    at: tuple[float, Callable[[], Awaitable[object]]] | None = None,
) -> list[StreamEvent]:
    """Send ``chunks`` (each ``chunk_s`` apart; 0: as fast as flow control allows) while reading
    every event; ``at``: after this many seconds of audio sent, await the callable once."""
    events: list[StreamEvent] = []

    async def sender() -> None:
        t0 = time.perf_counter()
        sent_s = 0.0
        for i, c in enumerate(chunks):
            await s.send(c)
            sent_s += len(c) / 16000 if isinstance(c, np.ndarray) else 0.02
            if at is not None and sent_s >= at[0]:
                await at[1]()
                at_done[0] = True
            if chunk_s:
                await asyncio.sleep(max(0.0, t0 + (i + 1) * chunk_s - time.perf_counter()))
        await s.close()

    at_done = [at is None]
    task = asyncio.create_task(sender())
    try:
        async for ev in s:
            events.append(ev)
    finally:
        if not task.done():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    task.result()
    assert at_done[0], "the stream ended before the midway action ran"
    return events


def segments_of(events: list[StreamEvent]) -> list[Segment]:
    return [e for e in events if isinstance(e, Segment)]


def pcm_chunks(pcm: np.ndarray, ms: int = 100) -> list[np.ndarray]:
    step = 16 * ms
    return [pcm[i : i + step] for i in range(0, len(pcm), step)]


# -- unary ----------------------------------------------------------------------------------------


async def test_languages_are_typed(live: LiveServer) -> None:
    async with AsyncTranslateClient(addr(live)) as c:
        langs = await c.languages()
    assert {"eng", "spa"} <= langs.codes
    spa = next(lang for lang in langs.languages if lang.code == "spa")
    assert spa.speech_output and spa.text_output
    assert langs.model.is_test_model and langs.model.num_speakers >= 1
    assert langs.limits.max_message_bytes == 64 * 1024 * 1024 and langs.limits.max_streams == 256


async def test_translate_a_file_bytes_and_arrays(live: LiveServer, shared_audio: Path, jfk: np.ndarray) -> None:
    path = shared_audio / "jfk.flac"
    raw = await translate_file(live.stub, path, ["spa", "fra"], source="eng")
    async with AsyncTranslateClient([addr(live)]) as c:
        from_path = await c.translate(path, targets=["spa", "fra"], source="eng")
        from_bytes = await c.translate(path.read_bytes(), targets="spa", speech=False)
        from_int16 = await c.translate(jfk, sample_rate=16000, targets="spa", speech=False)
        from_float = await c.translate(jfk.astype(np.float32) / 32768, sample_rate=16000, targets="spa", speech=False)
        opus_out = await c.translate(jfk, sample_rate=16000, targets="spa", speech_encoding="opus")
    want = [(s.start_ms, s.end_ms) for s in raw.segments]
    assert len(want) >= 2
    assert spans(list(from_path.segments)) == want
    assert [s.segment_id for s in from_path.segments] == list(range(len(want)))
    for typed, wire in zip(from_path.segments, raw.segments, strict=True):
        assert typed.ok and typed.transcript == wire.transcript.text
        assert [t.target for t in typed.translations] == ["spa", "fra"]
        spa = typed.translation("spa")
        assert spa.text == wire.translations[0].text
        assert spa.audio is not None and spa.audio.dtype == np.float32
        assert spa.sample_rate == 16000 and len(spa.audio) == spa.num_samples == wire.translations[0].audio.num_samples
        expect = np.frombuffer(wire.translations[0].audio.content, "<i2").astype(np.float32) / 32768
        np.testing.assert_array_equal(spa.audio, expect)
    assert from_path.audio_duration_ms == raw.audio_duration_ms and from_path.model.is_test_model
    for other in (from_bytes, from_int16, from_float):
        assert spans(list(other.segments)) == want
        assert all(not t.has_speech for s in other.segments for t in s.translations)
    t = opus_out.segments[0].translations[0]
    assert t.audio is None and t.opus_packets and t.sample_rate == 48000
    assert all(p.duration_samples == FRAME for p in t.opus_packets) and t.opus_pre_skip > 0 and t.num_samples > 0


async def test_tls_with_a_client_certificate_and_a_token(test_model_dir: Path, tmp_path: Path, jfk: np.ndarray) -> None:
    ca = trustme.CA()
    server_cert, client_cert = ca.issue_cert("127.0.0.1", "localhost"), ca.issue_cert("client.example")
    pem = {
        "ca.pem": ca.cert_pem.bytes(),
        "server.pem": b"".join(b.bytes() for b in server_cert.cert_chain_pems),
        "server.key": server_cert.private_key_pem.bytes(),
        "client.pem": b"".join(b.bytes() for b in client_cert.cert_chain_pems),
        "client.key": client_cert.private_key_pem.bytes(),
        "tokens": b"sdk-token-5a7c9e1b3d\n",
    }
    for name, data in pem.items():
        (tmp_path / name).write_bytes(data)
    data = make_settings(test_model_dir).model_dump()
    data["server"].update(
        tls_cert_file=tmp_path / "server.pem",
        tls_key_file=tmp_path / "server.key",
        tls_client_ca_file=tmp_path / "ca.pem",
    )
    data["auth"]["tokens_file"] = tmp_path / "tokens"
    tls = TlsOptions(tmp_path / "ca.pem", tmp_path / "client.pem", tmp_path / "client.key", server_name="localhost")
    async with serving(Settings.model_validate(data), warmup=False) as secure:
        async with AsyncTranslateClient(addr(secure), tls=tls, token="sdk-token-5a7c9e1b3d") as c:
            assert "spa" in (await c.languages()).codes
            async with c.stream(targets="spa", speech=False) as s:
                events = await run_stream(s, pcm_chunks(jfk[: 16000 * 3]))
            assert isinstance(events[-1], StreamEnd)
        async with AsyncTranslateClient(addr(secure), tls=tls) as c:  # no token
            with pytest.raises(TranslateError) as err:
                await c.languages()
            assert err.value.code.name == "UNAUTHENTICATED" and err.value.attempts == 1
            with pytest.raises(TranslateError) as err:
                async with c.stream(targets="spa"):
                    pass
            assert err.value.code.name == "UNAUTHENTICATED"


async def test_bad_input_is_not_retried(live: LiveServer) -> None:
    async with AsyncTranslateClient([addr(live)], retry=RetryPolicy(max_attempts=4, initial_backoff_s=5)) as c:
        t0 = time.perf_counter()
        with pytest.raises(TranslateError) as err:
            await c.translate(b"not audio at all", targets="spa")
    assert err.value.code.name == "INVALID_ARGUMENT" and err.value.attempts == 1
    assert time.perf_counter() - t0 < 2.0
    async with AsyncTranslateClient([addr(live)]) as c:
        with pytest.raises(TranslateError) as err:
            async with c.stream(targets="xxx"):
                pass
    assert err.value.code.name == "INVALID_ARGUMENT" and "unknown target language" in err.value.message


async def test_unary_retry_waits_as_retry_info_says_then_tries_the_next_address(
    live: LiveServer, test_model_dir: Path, shared_audio: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # a server whose queue cannot take the clip's segments: RESOURCE_EXHAUSTED + RetryInfo of
    # 10 x max_wait_ms (0.5 s) -- the first address; the shared server is the second
    busy = make_settings(test_model_dir, max_queued_segments=2, max_batch_size=1, max_wait_ms=50)
    clip = shared_audio / "silero_test.wav"
    async with serving(busy, warmup=False) as full:
        async with AsyncTranslateClient([addr(full), addr(live)]) as c:
            caplog.set_level(logging.WARNING, logger="translate_svc.client.aio")
            t0 = time.perf_counter()
            result = await c.translate(clip, targets="spa", speech=False)
            waited = time.perf_counter() - t0
        assert len(result.segments) >= 10 and all(s.ok for s in result.segments)
        assert waited >= 0.5
        assert any("retrying in 0.50 s as the server asked" in r.getMessage() for r in caplog.records)
        # one address only: every attempt is refused; the error carries the hint and the attempts
        async with AsyncTranslateClient(addr(full), retry=RetryPolicy(max_attempts=2)) as c:
            t0 = time.perf_counter()
            with pytest.raises(TranslateError) as err:
                await c.translate(clip, targets="spa", speech=False)
            assert time.perf_counter() - t0 >= 0.5
        assert err.value.code.name == "RESOURCE_EXHAUSTED" and err.value.attempts == 2
        assert err.value.retry_delay_s == pytest.approx(0.5)
        await asyncio.wait_for(full.server.app.engine.wait_idle(), 30)


# -- streams --------------------------------------------------------------------------------------


async def test_a_pcm_stream_gives_the_segments_of_the_raw_grpc_stream(live: LiveServer, jfk: np.ndarray) -> None:
    trace = await stream_pcm(live.stub, jfk, ["spa"], source="eng", chunk_ms=100)
    async with AsyncTranslateClient(addr(live)) as c, c.stream(targets=["spa"], source="eng") as s:
        events = await run_stream(s, pcm_chunks(jfk))
        assert s.info is not None and s.info.address == addr(live) and s.info.model.is_test_model
        assert s.resumes == 0 and s.repeats_dropped == 0
    got = segments_of(events)
    assert [(g.segment_id, g.start_ms, g.end_ms) for g in got] == [
        (w.segment_id, w.start_ms, w.end_ms) for w in trace.segments
    ]
    assert [g.translations[0].text for g in got] == [w.translations[0].text for w in trace.segments]
    assert all(g.translations[0].audio is not None for g in got)
    speech = [e for e in events if isinstance(e, SpeechEvent)]
    assert [e.type for e in speech[:2]] == [SpeechEventType.STARTED, SpeechEventType.ENDED]
    end = events[-1]
    assert isinstance(end, StreamEnd) and end.reason is EndReason.HALF_CLOSE
    assert end.segments_total == len(got) and end.audio_received_ms == round(len(jfk) / 16)


async def test_an_opus_stream_gives_the_segments_of_the_raw_grpc_stream(live: LiveServer, minute: np.ndarray) -> None:
    packets = opus_packets(minute[: 16000 * 20])
    config = pb.StreamingConfig(
        format=pb.AudioFormat(encoding=pb.OPUS, sample_rate_hz=48000, channels=1),
        target_languages=["spa"],
        output=pb.OutputOptions(text=True, speech=False, transcript=False),
    )

    async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield pb.StreamingTranslateRequest(config=config)
        for p in packets:
            yield pb.StreamingTranslateRequest(audio=p)

    want = [r.segment for r in [r async for r in live.stub.StreamingTranslate(requests())] if r.HasField("segment")]
    assert len(want) >= 5
    async with AsyncTranslateClient(addr(live)) as c:
        async with c.stream(targets="spa", encoding="opus", sample_rate=48000, speech=False, transcript=False) as s:
            events = await run_stream(s, packets)
    got = segments_of(events)
    assert [(g.segment_id, g.start_ms, g.end_ms) for g in got] == [(w.segment_id, w.start_ms, w.end_ms) for w in want]
    end = events[-1]
    assert isinstance(end, StreamEnd) and end.audio_received_ms == len(packets) * 20


async def test_the_sync_client_from_one_thread(live: LiveServer, shared_audio: Path, jfk: np.ndarray) -> None:
    want = await raw_spans(live, jfk)

    def work() -> tuple[list[Segment], list[StreamEvent], int]:
        with TranslateClient(addr(live)) as c:
            assert "spa" in c.languages().codes
            clip = c.translate(shared_audio / "jfk.flac", targets="spa", speech=False)
            seen: list[StreamEvent] = []
            with c.stream(targets=["spa"], source="eng", speech=False) as s:
                for chunk in pcm_chunks(jfk):
                    s.send(chunk)
                    seen += s.poll()  # interleaved with sending, same thread
                s.close()
                seen += list(s)
            return list(clip.segments), seen, len(s.poll())

    clip, events, after = await asyncio.to_thread(work)
    assert spans(clip) == want
    assert spans(segments_of(events)) == want
    assert isinstance(events[-1], StreamEnd) and after == 0


# -- resume ----------------------------------------------------------------------------------------


def assert_resumed_run_covers_the_reference(got: list[Segment], reference: list[tuple[int, int]]) -> None:
    """Every speech region translated exactly once: ids 0..N-1, spans increasing and disjoint, and
    the same speech as on one server (each reference span overlaps a resumed one, counts +-2)."""
    assert [s.segment_id for s in got] == list(range(len(got)))
    assert all(s.ok for s in got)
    for a, b in itertools.pairwise(got):
        assert a.start_ms < a.end_ms <= b.start_ms, (a.segment_id, spans(got))
    assert abs(len(got) - len(reference)) <= 2, (spans(got), reference)
    for r0, r1 in reference:
        assert any(s.start_ms < r1 and r0 < s.end_ms for s in got), ((r0, r1), spans(got))


@pytest.mark.parametrize("how", ["sessions.drain", "server.stop"])
async def test_a_stream_moves_to_the_next_server_when_its_server_drains(
    live: LiveServer, test_model_dir: Path, minute: np.ndarray, minute_on_one_server: list[tuple[int, int]], how: str
) -> None:
    reference = minute_on_one_server
    settings = make_settings(test_model_dir)
    settings.server.drain_s = 0.5
    stopping: list[asyncio.Task[None]] = []
    async with serving(settings, warmup=False) as first:

        async def drain() -> None:
            if how == "sessions.drain":
                first.server.app.sessions.drain(0.5)
            else:  # what SIGTERM runs: drain the streams, then stop
                stopping.append(asyncio.create_task(first.server.stop(grace=5)))

        async with AsyncTranslateClient([addr(first), addr(live)]) as c, c.stream(targets="spa", speech=False) as s:
            assert s.info is not None and s.info.address == addr(first)
            events = await run_stream(s, pcm_chunks(minute), chunk_s=0.1 / SPEED, at=(20.0, drain))
            assert s.resumes == 1 and s.info.address == addr(live)
            assert s.repeats_dropped == 0  # the drained server's results stopped where the new call began
        await asyncio.gather(*stopping)
        assert first.server.app.sessions.open_streams == 0
    got = segments_of(events)
    assert_resumed_run_covers_the_reference(got, reference)
    assert sum(isinstance(e, Draining) for e in events) == 1
    ends = [e for e in events if isinstance(e, StreamEnd)]
    assert ends == [events[-1]] and ends[0].reason is EndReason.HALF_CLOSE
    assert ends[0].audio_received_ms == 60_000 and ends[0].segments_total == len(got)
    speech = [e for e in events if isinstance(e, SpeechEvent)]
    assert [e.type for e in speech] == [SpeechEventType.STARTED, SpeechEventType.ENDED] * (len(speech) // 2)


async def test_a_stream_moves_to_the_next_server_when_its_server_dies(
    live: LiveServer,
    test_model_dir: Path,
    minute: np.ndarray,
    minute_on_one_server: list[tuple[int, int]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    reference = minute_on_one_server
    caplog.set_level(logging.INFO, logger="translate_svc.client.aio")
    async with serving(make_settings(test_model_dir), warmup=False) as first:
        before: list[int] = []

        async def crash() -> None:
            before.append(s.resume_offset_ms)
            await first.server.server.stop(0)  # no drain: the connection just goes

        async with AsyncTranslateClient([addr(first), addr(live)]) as c, c.stream(targets="spa", speech=False) as s:
            events = await run_stream(s, pcm_chunks(minute), chunk_s=0.1 / SPEED, at=(20.0, crash))
            assert s.resumes == 1 and s.info is not None and s.info.address == addr(live)
    got = segments_of(events)
    assert_resumed_run_covers_the_reference(got, reference)
    # it resumed where the last final result before the crash ended, with the next segment id
    found = [re.search(RESUMED, r.getMessage()) for r in caplog.records]
    (offset, audio_from, lead_in, next_id), *more = [tuple(int(g) for g in m.groups()) for m in found if m]
    assert not more and 0 < next_id < len(got)
    assert offset == got[next_id - 1].end_ms >= before[0] > 0 and got[next_id].start_ms >= offset
    assert lead_in == 1000 and audio_from == offset - lead_in  # the SDK's lead-in, cut at the sample
    end = events[-1]
    assert isinstance(end, StreamEnd) and end.reason is EndReason.HALF_CLOSE and end.audio_received_ms == 60_000


async def test_an_opus_stream_resumes_at_the_packet_holding_the_offset(
    live: LiveServer, test_model_dir: Path, minute: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    packets = opus_packets(minute[: 16000 * 30])
    opts = {"targets": "spa", "encoding": "opus", "sample_rate": 48000, "speech": False, "transcript": False}
    async with AsyncTranslateClient(addr(live)) as c, c.stream(**opts) as s:  # type: ignore[arg-type]
        reference = spans(segments_of(await run_stream(s, packets)))
    caplog.set_level(logging.INFO, logger="translate_svc.client.aio")
    async with serving(make_settings(test_model_dir), warmup=False) as first:

        async def crash() -> None:
            await first.server.server.stop(0)

        async with AsyncTranslateClient([addr(first), addr(live)]) as c, c.stream(**opts) as s:  # type: ignore[arg-type]
            events = await run_stream(s, packets, chunk_s=0.02 / SPEED, at=(15.0, crash))
            assert s.resumes == 1
    got = segments_of(events)
    assert_resumed_run_covers_the_reference(got, reference)
    found = [re.search(RESUMED, r.getMessage()) for r in caplog.records]
    (offset, audio_from, lead_in, next_id), *_ = [tuple(int(g) for g in m.groups()) for m in found if m]
    # translation resumes at the last final's end; 20 ms packets from 0: the packet holding the
    # lead-in's start (1000 ms before) starts at a multiple of 20 ms, and the lead-in reaches back to it
    assert offset == got[next_id - 1].end_ms and audio_from + lead_in == offset
    assert audio_from % 20 == 0 and offset - 1020 < audio_from <= offset - 1000
    end = events[-1]
    assert isinstance(end, StreamEnd) and end.audio_received_ms == len(packets) * 20


async def test_a_stream_gives_up_with_a_clear_error_when_no_server_takes_it(
    test_model_dir: Path, minute: np.ndarray
) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{sock.getsockname()[1]}"
    retry = RetryPolicy(max_attempts=3, initial_backoff_s=0.05)
    async with serving(make_settings(test_model_dir), warmup=False) as first:

        async def crash() -> None:
            # once the stream has a final to resume after (a busy machine sends it after more than
            # the 8 s of audio sent by now: the sending waits)
            async def finals() -> bool:
                return s.resume_offset_ms > 0

            await eventually(finals, "a final before the server stops", 120.0, 0.05)
            await first.server.server.stop(0)

        async with AsyncTranslateClient([addr(first), dead], retry=retry) as c, c.stream(targets="spa") as s:
            with pytest.raises(StreamResumeError) as err:
                await run_stream(s, pcm_chunks(minute[: 16000 * 20]), chunk_s=0.1 / SPEED, at=(8.0, crash))
            assert err.value.code.name == "UNAVAILABLE" and err.value.attempts == 3
            assert "could not be resumed" in err.value.message
            assert err.value.resume_offset_ms == s.resume_offset_ms > 0
            with pytest.raises(StreamClosedError):
                await s.send(minute[:1600])


# -- text in (issue 36) ----------------------------------------------------------------------------


async def test_translate_text_async_and_sync_give_what_the_raw_call_gives(live: LiveServer) -> None:
    texts = ["Hello there.", "A second, longer text to translate."]
    raw = await live.stub.TranslateText(
        pb.TranslateTextRequest(
            texts=texts,
            source_language="eng",
            target_languages=["spa", "fra"],
            output=pb.OutputOptions(speech_sample_rate_hz=24000),
        )
    )
    async with AsyncTranslateClient(addr(live)) as c:
        got = await c.translate_text(texts, source="eng", targets="spa,fra", speech_sample_rate=24000)
        one = await c.translate_text("Hello there.", source="eng", targets=["spa"], speech=False)
        with pytest.raises(TranslateError) as err:
            await c.translate_text(["ok"], source="", targets="spa")
    assert err.value.code.name == "INVALID_ARGUMENT" and "source_language" in err.value.message
    assert [r.text for r in got.results] == texts and got.model.is_test_model
    for r, want in zip(got.results, raw.results, strict=True):
        assert r.ok and [t.target for t in r.translations] == ["spa", "fra"]
        for t, w in zip(r.translations, want.translations, strict=True):
            assert t.text == w.text and t.sample_rate == 24000 and t.audio is not None
            assert t.num_samples == w.audio.num_samples == len(t.audio)
            np.testing.assert_array_equal(
                np.round(t.audio * 32768).astype("<i2"), np.frombuffer(w.audio.content, "<i2")
            )
    assert one.results[0].translation("spa").text == raw.results[0].translations[0].text
    assert not one.results[0].translation("spa").has_speech

    def sync() -> list[str]:
        with TranslateClient(addr(live)) as c:
            return [
                t.text for r in c.translate_text(texts, source="eng", targets="spa").results for t in r.translations
            ]

    assert await asyncio.to_thread(sync) == [r.translations[0].text for r in raw.results]
