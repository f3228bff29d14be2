"""The video-call sidecar's path on a real server: Opus packets in (with loss and DTX gaps), Opus
speech out, Ogg/WebM Opus files, and live captions (interim results)."""

from __future__ import annotations

import io
import itertools
from collections.abc import Sequence
from pathlib import Path

import av
import grpc
import numpy as np
import pytest
import soxr

from tests.support.live_server import LiveServer
from tests.support.raw import OPUS_FORMAT, TEXT_ONLY, run_stream, segment_spans, stream_config
from tests.support.speech import FRAME, opus_packets, to_48k
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.client_cli.decode import load_pcm16k

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(20)]

#: one silero window: how far two segmentations of slightly different audio may disagree
WINDOW_MS = 32


def decode_opus(packets: Sequence[bytes]) -> np.ndarray:
    dec = av.CodecContext.create("libopus", "r")
    dec.sample_rate, dec.layout = 48000, "mono"
    out = [f.to_ndarray().reshape(-1) for p in packets for f in dec.decode(av.Packet(p))]
    y = np.concatenate(out) if out else np.zeros(0)
    return y.astype(np.float32) / (32768.0 if y.dtype == np.int16 else 1.0)


def assert_same_spans(got: list[tuple[int, int]], want: list[tuple[int, int]], tol_ms: int = WINDOW_MS) -> None:
    assert len(got) == len(want), (got, want)
    for (a0, a1), (b0, b1) in zip(got, want, strict=True):
        assert abs(a0 - b0) <= tol_ms and abs(a1 - b1) <= tol_ms, (got, want)


@pytest.fixture(scope="module")
def speech(shared_audio: Path) -> np.ndarray:
    # 20 s, 16 kHz int16. (Over the whole 60 s, Opus coding makes one 100 ms pause inside a long
    # region visible to the VAD -- one extra cut -- and every other boundary stays within a window.)
    return load_pcm16k(shared_audio / "silero_test.wav")[: 16000 * 20]


@pytest.fixture(scope="module")
def packets(speech: np.ndarray) -> list[bytes]:
    return opus_packets(speech)


async def pcm_spans(live: LiveServer, pcm: np.ndarray) -> list[tuple[int, int]]:
    fmt = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000, channels=1)
    chunks = [pb.StreamingTranslateRequest(audio=pcm[i : i + 320].tobytes()) for i in range(0, len(pcm), 320)]
    return segment_spans(await run_stream(live.stub, [stream_config(fmt), *chunks]))


async def test_opus_packets_give_the_segments_of_the_pcm_stream(
    live: LiveServer, speech: np.ndarray, packets: list[bytes]
) -> None:
    want = await pcm_spans(live, speech)
    got = await run_stream(
        live.stub, [stream_config(OPUS_FORMAT), *(pb.StreamingTranslateRequest(audio=p) for p in packets)]
    )
    assert len(want) >= 8
    assert_same_spans(segment_spans(got), want)
    end = got[-1][1].ended
    assert end.audio_received_ms == len(packets) * 20 and end.audio_filled_ms == 0
    # the packet path itself changes nothing: exactly the segments of the decoded audio sent as PCM
    decoded = soxr.resample(decode_opus(packets), 48000, 16000)
    assert segment_spans(got) == await pcm_spans(live, np.clip(np.round(decoded * 32768), -32768, 32767).astype("<i2"))


async def test_lost_packets_and_dtx_gaps_keep_the_spans_true(
    live: LiveServer, speech: np.ndarray, packets: list[bytes]
) -> None:
    want = await pcm_spans(live, speech)
    # a DTX-like gap: nothing sent for the longest pause between segments (less 300 ms each side);
    # plus random single-packet loss (2 %) everywhere
    pauses = [(a[1], b[0]) for a, b in itertools.pairwise(want)]
    quiet = max(pauses, key=lambda p: p[1] - p[0])
    assert quiet[1] - quiet[0] >= 1000
    skipped = set(range((quiet[0] + 300) // 20, (quiet[1] - 300) // 20))
    rng = np.random.default_rng(7)
    lost = skipped | {i for i in range(len(packets)) if rng.random() < 0.02}
    sent = [
        pb.StreamingTranslateRequest(packet=pb.AudioPacket(data=p, timestamp=i * FRAME))
        for i, p in enumerate(packets)
        if i not in lost
    ]
    got = await run_stream(live.stub, [stream_config(OPUS_FORMAT), *sent])
    assert_same_spans(segment_spans(got), want, tol_ms=2 * WINDOW_MS)
    end = got[-1][1].ended
    tail = next(k for k in range(len(packets)) if len(packets) - 1 - k not in lost)  # lost at the very end
    assert end.audio_received_ms == (len(packets) - tail) * 20  # the timeline is the sender's
    assert end.audio_filled_ms == (len(lost) - tail) * 20
    # runs of lost packets up to 120 ms are concealed by libopus; the DTX gap is silence
    runs = [len(list(g)) for k, g in itertools.groupby(range(len(packets) - tail), key=lambda i: i in lost) if k]
    assert end.audio_concealed_ms == 20 * sum(n for n in runs if n <= 6) and max(runs) > 6
    # without timestamps the same packets would shift every later segment by the gap: the spans
    # above are true only because the gap was filled
    assert len(skipped) * 20 > 10 * WINDOW_MS


async def test_a_packet_timestamp_taken_twice_is_dropped_and_one_that_jumps_too_far_is_refused(
    live: LiveServer, packets: list[bytes]
) -> None:
    def pkt(i: int, ts: int) -> pb.StreamingTranslateRequest:
        return pb.StreamingTranslateRequest(packet=pb.AudioPacket(data=packets[i], timestamp=ts))

    got = await run_stream(live.stub, [stream_config(OPUS_FORMAT), pkt(0, 0), pkt(1, 960), pkt(2, 960)])
    end = got[-1][1].ended  # a timestamp already taken is a duplicate: dropped, counted, not an error
    assert end.packets_duplicate == 1 and end.audio_received_ms == 40 and end.reason == pb.StreamEnd.HALF_CLOSE
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await run_stream(live.stub, [stream_config(OPUS_FORMAT), pkt(0, 0), pkt(1, 48000 * 3600)])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "idle_timeout" in (err.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await run_stream(live.stub, [stream_config(OPUS_FORMAT), pb.StreamingTranslateRequest(audio=b"\xff" * 3)])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "Opus packet" in (err.value.details() or "")
    bad_rate = pb.AudioFormat(encoding=pb.OPUS, sample_rate_hz=16000)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await run_stream(live.stub, [stream_config(bad_rate)])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "48000" in (err.value.details() or "")


def opus_file(pcm16k: np.ndarray, container: str) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as out:
        stream = out.add_stream("libopus", rate=48000, layout="mono")
        x = np.clip(np.round(to_48k(pcm16k) * 32767), -32768, 32767).astype("<i2")
        for i in range(0, len(x), FRAME):
            frame = av.AudioFrame.from_ndarray(x[None, i : i + FRAME], format="s16", layout="mono")
            frame.sample_rate, frame.pts = 48000, i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buf.getvalue()


@pytest.mark.parametrize("container", ["ogg", "webm"])
async def test_ogg_and_webm_opus_files_translate(
    live: LiveServer, shared_audio: Path, container: str, speech: np.ndarray
) -> None:
    pcm = load_pcm16k(shared_audio / "jfk.flac")
    want = await pcm_spans(live, pcm)
    data = opus_file(pcm, container)
    response = await live.stub.Translate(
        pb.TranslateRequest(
            audio=pb.AudioInput(content=data, format=pb.AudioFormat(encoding=pb.CONTAINER)),
            source_language="eng",
            target_languages=["spa"],
            output=TEXT_ONLY,
        )
    )
    got = [(s.start_ms, s.end_ms) for s in response.segments]
    assert_same_spans(got, want)
    # the fields, not the words (a random model's text may be empty)
    assert all([t.target_language for t in s.translations] == ["spa"] for s in response.segments)
    assert not any(s.translations[0].HasField("audio") for s in response.segments)  # text only
    assert abs(response.audio_duration_ms - len(pcm) / 16) <= 40


async def test_opus_speech_decodes_to_the_pcm_speech(live: LiveServer, shared_audio: Path) -> None:
    pcm = load_pcm16k(shared_audio / "jfk.flac")
    content = np.asarray(pcm).tobytes()
    fmt = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000, channels=1)

    async def translate(output: pb.OutputOptions) -> pb.TranslateResponse:
        request = pb.TranslateRequest(
            audio=pb.AudioInput(content=content, format=fmt), target_languages=["spa"], output=output
        )
        response: pb.TranslateResponse = await live.stub.Translate(request)
        return response

    linear = await translate(pb.OutputOptions(speech=True, speech_sample_rate_hz=48000))
    opus = await translate(pb.OutputOptions(speech=True, speech_encoding=pb.SPEECH_ENCODING_OPUS))
    assert len(linear.segments) == len(opus.segments) >= 3
    for a, b in zip(linear.segments, opus.segments, strict=True):
        ref = np.frombuffer(a.translations[0].audio.content, "<i2").astype(np.float32) / 32768.0
        audio = b.translations[0].audio
        assert audio.encoding == pb.SPEECH_ENCODING_OPUS and not audio.content and audio.sample_rate_hz == 48000
        assert audio.num_samples == len(ref) and audio.duration_ms == a.translations[0].audio.duration_ms
        assert all(p.duration_samples == FRAME for p in audio.opus_packets)
        decoded = decode_opus([p.data for p in audio.opus_packets])
        assert len(decoded) == FRAME * len(audio.opus_packets)
        speech = decoded[audio.opus_pre_skip : audio.opus_pre_skip + audio.num_samples]
        assert len(speech) == len(ref)  # the same length
        level = 20 * np.log10(np.sqrt(np.mean(speech**2)) / np.sqrt(np.mean(ref**2)))
        # close in level: the test checkpoint speaks noise, on which 32 kbps Opus loses about 3 dB
        # (white noise: -3.0 dB measured); real speech stays within 1.5 dB (tests/audio/test_opus.py)
        assert abs(level) < 4.0, level


@pytest.mark.serial  # captions are skipped while the engine is behind: timing, so alone on the machine
async def test_live_captions_come_while_speech_is_open_and_the_final_supersedes_them(
    live: LiveServer, speech: np.ndarray, packets: list[bytes]
) -> None:
    # 20 s of Opus at real time, as a call sends it. (Faster, a slow machine's engine is still busy
    # with a segment's caption when the next segment ends: 4x failed 1 run in 2 with both cores
    # taken by other work; 1x passed 3 runs of 3.)
    msgs = [
        stream_config(OPUS_FORMAT, interim_interval_ms=500),
        *(pb.StreamingTranslateRequest(audio=p) for p in packets),
    ]
    responses = await run_stream(live.stub, msgs, pace_s=FRAME / 48000)
    started = responses[0][1].started
    assert started.config.interim_interval_ms == 500 and started.limits.min_interim_interval_ms == 250
    kinds = [(t, r.WhichOneof("response"), r) for t, r in responses]
    finals = {r.segment.segment_id: i for i, (_, k, r) in enumerate(kinds) if k == "segment"}
    interims = [(i, r.interim) for i, (_, k, r) in enumerate(kinds) if k == "interim"]
    segs = {r.segment.segment_id: r.segment for _, k, r in kinds if k == "segment"}
    long_ones = [s for s in segs.values() if s.end_ms - s.start_ms >= 1500]
    assert long_ones and len(interims) >= len(long_ones)
    for seg in long_ones:  # every long segment was captioned while it was spoken
        assert any(cap.segment_id == seg.segment_id for _, cap in interims)
    for i, cap in interims:
        final = segs[cap.segment_id]
        assert i < finals[cap.segment_id]  # before its final, never after
        assert cap.start_ms == final.start_ms and cap.start_ms + 500 <= cap.end_ms
        # a caption covers the audio so far, which may reach into a pause the VAD has not yet
        # called an end (min_silence 100 ms, 32 ms windows); the final stops at the speech's end
        assert cap.end_ms <= final.end_ms + 100 + WINDOW_MS
        assert cap.transcript.language == "eng" and [t.target_language for t in cap.translations] == ["spa"]
        assert not cap.translations[0].HasField("audio")  # (its text: whatever random weights say)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await run_stream(live.stub, [stream_config(OPUS_FORMAT, interim_interval_ms=100)])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "250" in (err.value.details() or "")
