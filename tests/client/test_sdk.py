"""The client SDK's pure parts with plain values: the replay buffer (trimming on finals, cut points
for PCM and Opus), RetryInfo and backoff, address rotation, event de-duplication, conversions."""

from __future__ import annotations

import itertools
import json

import av
import grpc
import numpy as np
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.client import _convert as convert
from translate_svc.client._addresses import AddressRotation, parse_targets
from translate_svc.client._audio import chunk_bytes, clip_input
from translate_svc.client._replay import Chunk, ReplayBuffer, opus_packet_samples
from translate_svc.client._retry import (
    RetryPolicy,
    is_retryable,
    retry_delay_from_metadata,
    retry_delay_from_status,
    retry_delay_of,
)
from translate_svc.client._tracker import StreamTracker
from translate_svc.client.aio import AsyncTranslateClient, channel_options
from translate_svc.client.types import Interim, Segment, SpeechEvent, SpeechEventType, Timing, TlsOptions

pytestmark = pytest.mark.unit

# -- replay buffer: raw PCM -----------------------------------------------------------------------


def pcm(start: int, n: int) -> bytes:
    """n LINEAR16 samples whose values are their own positions (so cuts are visible)."""
    return np.arange(start, start + n, dtype="<i2").tobytes()


def samples(data: bytes | None) -> list[int]:
    assert data is not None
    values: list[int] = np.frombuffer(data, "<i2").tolist()
    return values


def test_pcm_chunks_are_kept_until_a_final_covers_them() -> None:
    buf = ReplayBuffer(rate=16000, frame_bytes=2, lead_in_ms=0)
    for i in range(5):
        buf.append(pcm(i * 1600, 1600))  # 100 ms each
    assert buf.end == 8000 and len(buf) == 5 and buf.nbytes == 5 * 3200
    buf.trim(150)  # a final ended at 150 ms: the first chunk is done, the second is not
    assert [c.start for c in buf] == [1600, 3200, 4800, 6400]
    buf.trim(200)  # exactly the end of the second chunk
    assert [c.start for c in buf] == [3200, 4800, 6400]
    buf.trim(100)  # finals never move back; an earlier end trims nothing more
    assert len(buf) == 3
    buf.trim(500)
    assert len(buf) == 0 and buf.nbytes == 0 and buf.end == 8000  # the timeline goes on


def test_pcm_replay_cuts_at_the_exact_sample() -> None:
    buf = ReplayBuffer(rate=16000, frame_bytes=2, lead_in_ms=0)
    for i in range(4):
        buf.append(pcm(i * 1600, 1600))
    buf.trim(130)
    resume_ms, _, chunks = buf.replay_from(130)
    assert resume_ms == 130
    assert [(c.start, c.end) for c in chunks] == [(2080, 3200), (3200, 4800), (4800, 6400)]
    assert samples(chunks[0].data)[0] == 2080 and len(samples(chunks[0].data)) == 1120
    assert chunks[0].timestamped  # the cut chunk says where it starts
    replayed = np.concatenate([np.frombuffer(c.data or b"", "<i2") for c in chunks])
    np.testing.assert_array_equal(replayed, np.arange(2080, 6400))  # nothing lost, nothing twice


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 900), min_size=1, max_size=20),
    finals=st.lists(st.integers(0, 1200), max_size=5),
    offset=st.integers(0, 1200),
)
def test_pcm_replay_is_the_audio_from_the_offset_whatever_the_chunking(
    sizes: list[int], finals: list[int], offset: int
) -> None:
    buf = ReplayBuffer(rate=16000, frame_bytes=2, lead_in_ms=0)
    pos = 0
    for n in sizes:
        buf.append(pcm(pos, n))
        pos += n
    covered = 0
    for end_ms in sorted(finals):  # finals arrive in order; the resume point is past the last
        buf.trim(end_ms)
        covered = end_ms
    offset = max(offset, covered)
    resume_ms, _, chunks = buf.replay_from(offset)
    assert resume_ms == offset
    got = [v for c in chunks for v in samples(c.data)]
    assert got == list(range(min(offset * 16, pos), pos))  # exactly the audio from the offset on
    assert all(a.end == b.start for a, b in itertools.pairwise(chunks))


@settings(max_examples=200, deadline=None)
@given(
    durations=st.lists(st.sampled_from([16, 17, 18, 19, 29, 30, 31]), min_size=1, max_size=30),
    offset=st.integers(0, 3000),
)
def test_opus_replay_starts_with_the_packet_holding_the_offset(durations: list[int], offset: int) -> None:
    # CELT configs 16-19 / 29-31: 2.5, 5, 10, 20 ms packets in any mix
    buf = ReplayBuffer(rate=48000, frame_bytes=None, lead_in_ms=0)
    for config in durations:
        buf.append(bytes([toc(config), 0]))
    resume_ms, _, chunks = buf.replay_from(offset)
    cut = offset * 48
    if cut >= buf.end:
        assert chunks == [] and resume_ms == offset
        return
    first = chunks[0]
    assert first.start <= cut < first.end
    assert resume_ms == first.start // 48 and resume_ms * 48 <= first.start < resume_ms * 48 + 48
    assert [c.start for c in chunks] == [c.start for c in buf if c.end > cut]


def test_pcm_cut_follows_the_servers_rounding_at_odd_rates() -> None:
    # 44.1 samples per ms: the server starts a resumed call at round(offset_ms * rate / 1000)
    buf = ReplayBuffer(rate=44100, frame_bytes=4, lead_in_ms=0)  # stereo LINEAR16
    buf.append(np.zeros(2 * 4410, "<i2").tobytes())
    for ms in (1, 3, 5, 7, 11, 95):
        _, _, (first,) = buf.replay_from(ms)
        assert first.start == round(ms * 44100 / 1000)
        assert first.data is not None and len(first.data) == (4410 - first.start) * 4


def test_replay_with_timestamps_skips_gaps_and_keeps_flushes() -> None:
    buf = ReplayBuffer(rate=16000, frame_bytes=2, lead_in_ms=0)
    buf.append(pcm(0, 1600))
    buf.append_flush()  # at 1600
    buf.append(pcm(0, 1600), timestamp=16000)  # a 900 ms gap (DTX, loss)
    buf.append_flush()  # at 17600
    resume_ms, _, chunks = buf.replay_from(500)  # inside the gap
    assert resume_ms == 500
    assert [(c.start, c.is_flush) for c in chunks] == [(16000, False), (17600, True)]
    resume_ms, _, chunks = buf.replay_from(100)  # the first flush is at the offset exactly: done
    assert [(c.start, c.is_flush) for c in chunks] == [(16000, False), (17600, True)]
    _, _, chunks = buf.replay_from(50)
    assert [(c.start, c.is_flush) for c in chunks] == [(800, False), (1600, True), (16000, False), (17600, True)]


def test_pcm_chunks_must_be_whole_frames() -> None:
    buf = ReplayBuffer(rate=16000, frame_bytes=4, lead_in_ms=0)  # stereo
    with pytest.raises(ValueError, match="whole number of frames"):
        buf.append(b"\x00" * 6)
    with pytest.raises(ValueError, match="empty"):
        buf.append(b"")
    buf.append(b"\x00" * 400)
    assert buf.append(b"\x00" * 4, timestamp=100).start == 100


def test_packets_out_of_order_are_kept_in_timeline_order_and_replayed_so() -> None:
    """An SFU's network: packets swapped, sent twice, late. The buffer keeps each once, in its
    place on the timeline (the server's reorder window does the same), so a resume replays them
    in order; a repeat or a packet before what is kept is sent but not kept."""
    buf = ReplayBuffer(rate=16000, frame_bytes=2, lead_in_ms=0)
    for k in (0, 2, 1, 3, 5, 4, 4, 6):  # 2<->1 and 5<->4 swapped, 4 sent twice
        buf.append(pcm(k, 320), timestamp=k * 320)
    assert [c.start for c in buf] == [k * 320 for k in range(7)]
    assert len(buf) == 7 and buf.nbytes == 7 * 640 and buf.end == 7 * 320 and buf.last_seq == 7
    buf.trim(60)  # a final covered the first three chunks (0..960 frames)
    assert [c.start for c in buf] == [960, 1280, 1600, 1920]
    buf.append(pcm(0, 320), timestamp=640)  # late, before what is kept: not kept
    assert [c.start for c in buf] == [960, 1280, 1600, 1920]
    _, _, chunks = buf.replay_from(80)
    assert [c.start for c in chunks] == [1280, 1600, 1920]


def test_a_buffer_without_finals_keeps_at_most_max_seconds() -> None:
    buf = ReplayBuffer(rate=16000, frame_bytes=2, max_seconds=1.0, lead_in_ms=0)
    for _ in range(30):
        buf.append(pcm(0, 1600))  # 3 s, no final
    assert buf.end - next(iter(buf)).start <= 16000 + 1600
    assert buf.dropped_to == 1600 * 20  # a resume from before this cannot be replayed
    assert buf.last_seq == 29


# -- replay buffer: Opus packets ---------------------------------------------------------------------


def toc(config: int, code: int = 0) -> int:
    return config << 3 | code


@pytest.mark.parametrize(
    ("packet", "samples48k"),
    [
        (bytes([toc(1), 0]), 960),  # SILK 20 ms
        (bytes([toc(3), 0]), 2880),  # SILK 60 ms
        (bytes([toc(13), 0]), 960),  # hybrid 20 ms
        (bytes([toc(16), 0]), 120),  # CELT 2.5 ms
        (bytes([toc(31), 0]), 960),  # CELT 20 ms
        (bytes([toc(31, 1), 0, 0]), 1920),  # two frames, equal size
        (bytes([toc(30, 2), 1, 0, 0]), 960),  # two 10 ms frames, different sizes
        (bytes([toc(29), 0]), 240),  # CELT 5 ms
        (bytes([toc(31, 3), 3, 0]), 2880),  # code 3: three 20 ms frames
        (bytes([toc(3, 3), 2, 0]), 5760),  # 2 x 60 ms = 120 ms, the most a packet holds
    ],
)
def test_opus_packet_durations_come_from_the_toc(packet: bytes, samples48k: int) -> None:
    assert opus_packet_samples(packet) == samples48k


@pytest.mark.parametrize("packet", [b"", bytes([toc(31, 3)]), bytes([toc(31, 3), 0]), bytes([toc(3, 3), 3, 0])])
def test_unreadable_opus_tocs_give_none(packet: bytes) -> None:
    assert opus_packet_samples(packet) is None


@pytest.mark.parametrize("frame_ms", ["20", "60"])
def test_opus_durations_of_real_libopus_packets(frame_ms: str) -> None:
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format, enc.bit_rate = 48000, "mono", "s16", 32000
    enc.options = {"application": "voip", "frame_duration": frame_ms}
    enc.open()
    n = 48 * int(frame_ms)
    x = (np.sin(np.arange(n * 5) / 10) * 8000).astype("<i2")
    packets: list[bytes] = []
    for i in range(0, len(x), n):
        frame = av.AudioFrame.from_ndarray(x[None, i : i + n], format="s16", layout="mono")
        frame.sample_rate, frame.pts = 48000, i
        packets += [bytes(p) for p in enc.encode(frame)]
    assert packets and all(opus_packet_samples(p) == n for p in packets)


def test_opus_replay_starts_at_the_packet_holding_the_offset() -> None:
    buf = ReplayBuffer(rate=48000, frame_bytes=None, lead_in_ms=0)
    pkt = bytes([toc(31), 0xAA])  # 20 ms
    for _ in range(10):
        buf.append(pkt)
    assert [c.start for c in buf][:3] == [0, 960, 1920] and buf.end == 9600
    buf.trim(45)  # a final ended inside the third packet: the first two are done
    assert next(c.start for c in buf) == 1920
    resume_ms, _, chunks = buf.replay_from(45)
    assert resume_ms == 40  # that packet's start, so the new timeline and the timestamps agree
    assert [c.start for c in chunks] == [1920 + 960 * i for i in range(8)]
    assert all(c.data == pkt for c in chunks)  # packets are never cut
    resume_ms, _, chunks = buf.replay_from(60)  # on a packet boundary
    assert resume_ms == 60 and chunks[0].start == 2880


def test_opus_timestamps_and_the_fallback_duration() -> None:
    buf = ReplayBuffer(rate=48000, frame_bytes=None, packet_ms=40, lead_in_ms=0)
    a = buf.append(bytes([toc(31, 3)]))  # unreadable TOC: packet_ms
    assert (a.start, a.end) == (0, 1920)
    b = buf.append(bytes([toc(31), 0]), timestamp=4850)  # DTX gap; not on a ms boundary
    assert (b.start, b.end, b.timestamped) == (4850, 5810, True)
    resume_ms, _, chunks = buf.replay_from(101)  # inside b (4848 <= 4850 .. 5810)
    assert resume_ms == 101 and chunks == [b]
    resume_ms, _, chunks = buf.replay_from(102)  # 4896: b holds it; resume at floor(4850 / 48) ms
    assert resume_ms == 101 and chunks == [b]
    # the server starts at round(101 * 48) = 4848 <= 4850: a 2-sample gap it fills, never "goes back"
    assert round(resume_ms * 48000 / 1000) <= b.start


# -- requests after a resume -----------------------------------------------------------------------


def test_after_a_resume_every_chunk_carries_its_timestamp() -> None:
    client = AsyncTranslateClient("127.0.0.1:1")
    s = client.stream(targets="spa")
    plain = Chunk(0, 0, 160, b"\x00" * 320)
    assert s._request(plain).WhichOneof("request") == "audio"
    stamped = Chunk(1, 500, 660, b"\x00" * 320, timestamped=True)
    assert s._request(stamped).packet.timestamp == 500
    assert s._request(Chunk(2, 660, 660, None)).control == pb.FLUSH
    s._timestamped = True
    req = s._request(Chunk(3, 660, 820, b"\x01\x00" * 160))
    assert req.WhichOneof("request") == "packet" and req.packet.timestamp == 660


# -- retries ---------------------------------------------------------------------------------------


def retry_status(seconds: int, nanos: int = 0, code: int = code_pb2.RESOURCE_EXHAUSTED) -> status_pb2.Status:
    packed = any_pb2.Any()
    packed.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=seconds, nanos=nanos)))
    other = any_pb2.Any()
    other.Pack(error_details_pb2.DebugInfo(detail="x"))
    return status_pb2.Status(code=code, message="busy", details=[other, packed])


def test_retry_info_is_read_from_the_status_details() -> None:
    assert retry_delay_from_status(retry_status(1, 500_000_000)) == pytest.approx(1.5)
    assert retry_delay_from_status(status_pb2.Status(code=code_pb2.UNAVAILABLE)) is None
    assert retry_delay_from_status(None) is None
    md = [("other", "x"), ("grpc-status-details-bin", retry_status(5).SerializeToString())]
    assert retry_delay_from_metadata(md) == 5.0
    assert retry_delay_from_metadata([("grpc-status-details-bin", b"\xff\xff")]) is None
    assert retry_delay_from_metadata(None) is None


class FakeRpcError(grpc.RpcError):  # type: ignore[misc]
    def __init__(self, code: grpc.StatusCode, details: str, metadata: tuple[tuple[str, bytes], ...]) -> None:
        self._code, self._details, self._md = code, details, metadata

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple[tuple[str, bytes], ...]:
        return self._md


def test_retry_info_of_a_failed_call() -> None:
    status = retry_status(0, 250_000_000)
    md = (("grpc-status-details-bin", status.SerializeToString()),)
    assert retry_delay_of(FakeRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, "busy", md)) == pytest.approx(0.25)
    assert retry_delay_of(FakeRpcError(grpc.StatusCode.UNAVAILABLE, "down", ())) is None
    # a details proto that disagrees with the call (from_call refuses it): the metadata still counts
    assert retry_delay_of(FakeRpcError(grpc.StatusCode.UNAVAILABLE, "other", md)) == pytest.approx(0.25)


def test_which_codes_are_retried() -> None:
    assert is_retryable(grpc.StatusCode.RESOURCE_EXHAUSTED) and is_retryable(grpc.StatusCode.UNAVAILABLE)
    for code in (
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    ):
        assert not is_retryable(code)


def test_a_server_hint_is_honoured_and_backoff_grows_without_one() -> None:
    policy = RetryPolicy(initial_backoff_s=0.2, multiplier=2, max_backoff_s=1.0, jitter=0.2, max_retry_delay_s=30)
    assert policy.delay_s(1, 1.0) == 1.0 and policy.delay_s(3, 0.5) == 0.5  # exactly as asked
    assert policy.delay_s(1, 120.0) == 30.0  # capped
    middle = [policy.delay_s(n, None, rand=lambda: 0.5) for n in range(1, 6)]
    assert middle == pytest.approx([0.2, 0.4, 0.8, 1.0, 1.0])
    assert policy.delay_s(1, None, rand=lambda: 0.0) == pytest.approx(0.16)
    assert policy.delay_s(1, None, rand=lambda: 1.0) == pytest.approx(0.24)
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


# -- addresses --------------------------------------------------------------------------------------


def test_targets_are_addresses_or_one_grpc_target() -> None:
    assert parse_targets(["a:1", "b:2", "a:1"]) == ("a:1", "b:2")
    assert parse_targets("a:1, b:2") == ("a:1", "b:2")
    assert parse_targets("dns:///svc.ns:50051") == ("dns:///svc.ns:50051",)
    assert parse_targets("ipv4:10.0.0.1:1,10.0.0.2:1") == ("ipv4:10.0.0.1:1,10.0.0.2:1",)  # gRPC's own list
    with pytest.raises(ValueError):
        parse_targets([])
    with pytest.raises(ValueError):
        parse_targets(" , ")


def test_rotation_is_round_robin_and_skips_the_failed_address() -> None:
    r = AddressRotation(["a", "b", "c"])
    assert [r.next() for _ in range(4)] == ["a", "b", "c", "a"]
    assert r.next(avoid="b") == "c"  # b was next, but it just failed
    assert r.next(avoid="a") == "b"
    one = AddressRotation(["only"])
    assert one.next(avoid="only") == "only"


# -- de-duplication across resumed calls -------------------------------------------------------------


def seg(i: int, start: int, end: int) -> Segment:
    return Segment(i, start, end, None, (), Timing())


def test_segments_pass_once_and_set_the_resume_point() -> None:
    t = StreamTracker()
    assert t.resume_offset_ms == 0 and t.next_segment_id == 0
    assert t.segment(seg(0, 100, 900)) and t.segment(seg(1, 1200, 2000))
    assert t.resume_offset_ms == 2000 and t.next_segment_id == 2
    assert not t.segment(seg(1, 1200, 2000))  # a resumed call repeats one
    assert not t.segment(seg(0, 100, 900))
    assert t.segment(seg(2, 2100, 2500))
    t.drained(3000)  # a drain hands over everything before its offset
    assert t.resume_offset_ms == 3000
    t.drained(2800)
    assert t.resume_offset_ms == 3000


def test_captions_of_delivered_segments_are_dropped() -> None:
    t = StreamTracker()
    cap = Interim(0, 100, 500, None, (), Timing())
    assert t.interim(cap)
    t.segment(seg(0, 100, 900))
    assert not t.interim(cap)
    assert t.interim(Interim(1, 1000, 1200, None, (), Timing()))


def test_speech_events_alternate_and_never_go_back() -> None:
    t = StreamTracker()
    started, ended = SpeechEventType.STARTED, SpeechEventType.ENDED
    seen = [
        SpeechEvent(started, 100),
        SpeechEvent(ended, 900),
        SpeechEvent(started, 1200),  # the call is lost here; the new one starts at 900
        SpeechEvent(started, 1216),  # the new server hears the same speech start: a repeat
        SpeechEvent(ended, 2000),
        SpeechEvent(ended, 2000),
        SpeechEvent(started, 1500),  # older than what was delivered
        SpeechEvent(started, 2400),
    ]
    passed = [ev for ev in seen if t.speech(ev)]
    assert [(e.type, e.offset_ms) for e in passed] == [
        (started, 100),
        (ended, 900),
        (started, 1200),
        (ended, 2000),
        (started, 2400),
    ]


def test_speech_events_alternate_on_each_channel_of_separate_channels() -> None:
    t = StreamTracker()
    started, ended = SpeechEventType.STARTED, SpeechEventType.ENDED
    seen = [
        SpeechEvent(started, 300, 1),
        SpeechEvent(started, 200, 2),  # the other channel's speech began earlier: not a step back
        SpeechEvent(started, 300, 1),  # a repeat on channel 1
        SpeechEvent(ended, 700, 2),
        SpeechEvent(ended, 900, 1),
    ]
    passed = [(e.type, e.offset_ms, e.channel) for e in seen if t.speech(e)]
    assert passed == [(started, 300, 1), (started, 200, 2), (ended, 700, 2), (ended, 900, 1)]
    assert not t.speech_open


# -- conversions and channel options ---------------------------------------------------------------


def test_segments_convert_to_typed_results() -> None:
    audio = (np.arange(-4, 4) * 4096).astype("<i2")
    msg = pb.SegmentResult(
        segment_id=3,
        start_ms=10,
        end_ms=20,
        transcript=pb.Transcript(language="eng", text="hello"),
        translations=[
            pb.Translation(
                target_language="spa",
                text="hola",
                audio=pb.SynthesizedAudio(content=audio.tobytes(), sample_rate_hz=16000, num_samples=8),
            ),
            pb.Translation(
                target_language="fra",
                text="salut",
                audio=pb.SynthesizedAudio(
                    encoding=pb.SPEECH_ENCODING_OPUS,
                    sample_rate_hz=48000,
                    num_samples=4000,
                    opus_packets=[pb.OpusPacket(data=b"\x01", duration_samples=960)],
                    opus_pre_skip=312,
                ),
            ),
            pb.Translation(target_language="deu", text="hallo"),
        ],
        timing=pb.Timing(queue_ms=1, model_ms=2, total_ms=3, vad_wait_ms=4),
    )
    s = convert.segment(msg)
    assert (s.segment_id, s.start_ms, s.end_ms, s.transcript, s.ok) == (3, 10, 20, "hello", True)
    spa, fra, deu = s.translations
    assert spa.audio is not None and spa.audio.dtype == np.float32
    np.testing.assert_array_equal(spa.audio, audio / 32768.0)
    assert fra.audio is None and fra.opus_packets[0].data == b"\x01" and fra.opus_pre_skip == 312
    assert fra.duration_s == pytest.approx(4000 / 48000)
    assert not deu.has_speech and s.translation("deu").text == "hallo"
    assert s.timing == Timing(1, 2, 3, 4)
    failed = convert.segment(pb.SegmentResult(segment_id=4, status=status_pb2.Status(code=13, message="boom")))
    assert failed.error is not None and failed.error.code == "INTERNAL" and not failed.ok
    assert failed.transcript is None


def test_stream_chunks_and_clips_become_wire_bytes() -> None:
    x = np.array([0.0, 0.5, -1.0, 1.2], np.float32)
    assert np.frombuffer(chunk_bytes(x, "linear16"), "<i2").tolist() == [0, 16384, -32768, 32767]
    assert np.frombuffer(chunk_bytes(x, "float32"), "<f4").tolist() == [0.0, 0.5, -1.0, 1.0]
    i16 = np.array([16384, -32768], np.int16)
    assert np.frombuffer(chunk_bytes(i16, "float32"), "<f4").tolist() == [0.5, -1.0]
    stereo = np.array([[1, 2], [3, 4]], np.int16)
    assert np.frombuffer(chunk_bytes(stereo, "linear16"), "<i2").tolist() == [1, 2, 3, 4]
    assert chunk_bytes(b"\x01\x02", "opus") == b"\x01\x02"
    with pytest.raises(TypeError):
        chunk_bytes(x, "mulaw")
    with pytest.raises(TypeError):
        chunk_bytes(x, "opus")
    assert clip_input(b"RIFF", encoding=None, sample_rate=None, channels=None) == (b"RIFF", "container", 0, 0)
    content, enc, rate, ch = clip_input(stereo, encoding=None, sample_rate=8000, channels=None)
    assert (enc, rate, ch) == ("linear16", 8000, 2) and len(content) == 8
    _, enc, _, _ = clip_input(x, encoding=None, sample_rate=16000, channels=None)
    assert enc == "float32"
    with pytest.raises(ValueError, match="sample_rate"):
        clip_input(x, encoding=None, sample_rate=None, channels=None)
    with pytest.raises(ValueError, match="whole number"):
        clip_input(b"\x00" * 3, encoding="linear16", sample_rate=16000, channels=None)


def test_channel_options() -> None:
    opts = dict(channel_options())
    assert opts["grpc.keepalive_permit_without_calls"] == 0  # pings only while a call is open
    assert opts["grpc.max_receive_message_length"] == opts["grpc.max_send_message_length"] == 64 * 1024 * 1024
    assert json.loads(opts["grpc.service_config"]) == {"loadBalancingConfig": [{"round_robin": {}}]}
    assert "grpc.keepalive_time_ms" not in dict(channel_options(keepalive_s=None))
    assert dict(channel_options(server_name="svc.example"))["grpc.ssl_target_name_override"] == "svc.example"
    # a fixed receive window (BDP probing off): what a stream nobody reads takes in (issue 34)
    assert opts["grpc.http2.bdp_probe"] == 0 and opts["grpc.http2.lookahead_bytes"] == 64 * 1024
    assert dict(channel_options(receive_window_bytes=4096))["grpc.http2.lookahead_bytes"] == 4096
    own = dict(channel_options(receive_window_bytes=None))
    assert "grpc.http2.bdp_probe" not in own and "grpc.http2.lookahead_bytes" not in own
    with pytest.raises(ValueError, match="receive_window_bytes"):
        channel_options(receive_window_bytes=0)
    with pytest.raises(ValueError, match="max_buffered_events"):
        AsyncTranslateClient("127.0.0.1:1").stream(targets="spa", max_buffered_events=0)


def test_tokens_go_as_bearer_metadata_on_plaintext_channels() -> None:
    c = AsyncTranslateClient("127.0.0.1:1", token="s3cr3t")
    assert c._metadata == (("authorization", "Bearer s3cr3t"),)
    assert AsyncTranslateClient("127.0.0.1:1")._metadata == ()
    with pytest.raises(ValueError, match="go together"):
        TlsOptions(ca_file=None, cert_file="c.pem")


def test_the_sdk_keepalive_stays_within_the_servers_ping_policy() -> None:
    from translate_svc.client.aio import DEFAULT_KEEPALIVE_S, channel_options
    from translate_svc.transport.host import KEEPALIVE_OPTIONS

    server = dict(KEEPALIVE_OPTIONS)
    client_ms = dict(channel_options())["grpc.keepalive_time_ms"]
    assert client_ms == DEFAULT_KEEPALIVE_S * 1000
    # a ping more often than the server allows is a strike (too_many_pings): keep a 2x margin
    assert client_ms >= 2 * server["grpc.http2.min_ping_interval_without_data_ms"]
    assert server["grpc.keepalive_permit_without_calls"] == 1


async def test_calls_take_the_pools_channels_in_turn_opened_as_needed() -> None:
    c = AsyncTranslateClient(["127.0.0.1:1", "127.0.0.1:2"], connections=3)
    try:
        stubs = [c._stub("127.0.0.1:1") for _ in range(7)]
        channels = [s.StreamingTranslate._channel for s in stubs]
        assert len(set(map(id, channels))) == 3 and channels[3] is channels[0] and channels[6] is channels[0]
        assert len(c._channels["127.0.0.1:1"]) == 3 and "127.0.0.1:2" not in c._channels  # opened as needed
    finally:
        await c.close()
    with pytest.raises(ValueError, match="connections"):
        AsyncTranslateClient("127.0.0.1:1", connections=0)


def test_a_token_is_not_sent_in_the_clear_to_another_machine() -> None:
    from translate_svc.client import AsyncTranslateClient, TlsOptions
    from translate_svc.client._addresses import is_local

    local = ["localhost:50051", "127.0.0.1:1", "127.9.9.9:1", "[::1]:50051", "unix:/run/ts.sock", "dns:///localhost:1"]
    remote = ["10.0.0.5:50051", "svc.ns:50051", "dns:///svc.ns:50051", "ipv4:127.0.0.1:1,10.0.0.5:1", "[fd00::1]:1"]
    assert all(is_local(t) for t in local) and not any(is_local(t) for t in remote)
    with pytest.raises(ValueError, match=r"in the clear to 10\.0\.0\.5:50051") as refused:
        AsyncTranslateClient(["localhost:1", "10.0.0.5:50051"], token="secret")
    assert "allow_plaintext_token=True" in str(refused.value) and "secret" not in str(refused.value)
    AsyncTranslateClient("10.0.0.5:50051", token="secret", allow_plaintext_token=True)  # the caller's choice
    AsyncTranslateClient("10.0.0.5:50051", token="secret", tls=TlsOptions())  # TLS: fine
    AsyncTranslateClient("10.0.0.5:50051")  # no token: nothing to leak
    AsyncTranslateClient("localhost:50051", token="secret")  # loopback: fine


def test_only_a_half_close_with_ok_is_a_clean_end_and_the_error_carries_the_end() -> None:
    from translate_svc.client import EndReason, StreamEnd, StreamEndedError, TranslateError

    base = convert.stream_end(pb.StreamEnd(reason=pb.StreamEnd.QUOTA, segments_total=2, audio_received_ms=3000))
    assert base.reason is EndReason.QUOTA and base.code is grpc.StatusCode.OK and base.message == ""
    assert StreamEnd(EndReason.HALF_CLOSE, 0, 0).clean
    assert not StreamEnd(EndReason.HALF_CLOSE, 0, 0, code=grpc.StatusCode.INTERNAL).clean
    assert not StreamEnd(EndReason.IDLE_TIMEOUT, 0, 0).clean
    end = StreamEnd(
        EndReason.QUOTA, 2, 3000, code=grpc.StatusCode.RESOURCE_EXHAUSTED, message="tenant 'x' ...", request_id="r1"
    )
    err = StreamEndedError(end, retry_delay_s=1.5, address="a:1")
    assert isinstance(err, TranslateError) and err.end is end and err.reason is EndReason.QUOTA
    assert (err.code, err.message, err.request_id, err.retry_delay_s) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "tenant 'x' ...",
        "r1",
        1.5,
    )
    assert str(err) == "the stream ended: quota (RESOURCE_EXHAUSTED): tenant 'x' ... [request_id r1]"


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 3000), min_size=1, max_size=10),  # samples 0..29999 fit int16
    finals=st.lists(st.integers(0, 2000), max_size=5),
    offset=st.integers(0, 2000),
    lead=st.integers(0, 1500),
)
def test_a_resume_sends_the_lead_in_before_the_offset_then_the_rest(
    sizes: list[int], finals: list[int], offset: int, lead: int
) -> None:
    """The lead-in (ResumeFrom.lead_in_ms) is kept past the finals that cover it and sent first:
    the audio from ``offset - lead`` (or the stream's start) on, exactly, and the call says how
    much of it comes before the resume point."""
    buf = ReplayBuffer(rate=16000, frame_bytes=2, lead_in_ms=lead)
    pos = 0
    for n in sizes:
        buf.append(pcm(pos, n))
        pos += n
    finals = sorted(min(f, pos // 16) for f in finals)  # results end within the audio sent
    for end_ms in finals:
        buf.trim(end_ms)
    offset = max([min(offset, pos // 16), *finals])
    start_ms, lead_in_ms, chunks = buf.replay_from(offset)
    assert start_ms == max(0, offset - lead) and lead_in_ms == offset - start_ms
    got = [v for c in chunks for v in samples(c.data)]
    assert got == list(range(min(start_ms * 16, pos), pos))


def test_the_lead_in_starts_no_earlier_than_the_audio_kept_and_replays_no_flush_before_the_offset() -> None:
    buf = ReplayBuffer(rate=16000, frame_bytes=2, lead_in_ms=1000)
    buf.append(pcm(0, 1600), timestamp=8000)  # the stream's audio starts at 500 ms (an RTP gap)
    buf.append_flush()  # at 600 ms: acted on by the lost call
    buf.append(pcm(0, 3200))
    start_ms, lead_in_ms, chunks = buf.replay_from(700)
    assert (start_ms, lead_in_ms) == (500, 200)  # the lead-in is what there is
    assert [(c.start, c.is_flush) for c in chunks] == [(8000, False), (9600, False)]
