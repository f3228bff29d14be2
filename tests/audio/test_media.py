"""Video containers read narrowly (issue 90, ``audio/media.py``) and the voice-over's duck
(``audio/remux.py``): a container is known by its first bytes and nothing else; FFmpeg may open
only audio decoders in a video file, so a video decoder is refused even while it probes (its own
log says so); what cannot be taken is refused saying why (no audio stream, an audio codec outside
the list, a video stream whose frame size only its decoder knows); the audio read from a frame on
is the audio read whole from there (a resumed job's samples are the uninterrupted run's); the
duck's gain is the floor while the dub speaks, 1 away from it, ramped in between.
"""

from __future__ import annotations

from pathlib import Path

import av
import av.logging
import numpy as np
import pytest

from tests.support import videos
from translate_svc.audio.media import AUDIO_DECODERS, MediaAudio, MediaKind, inspect_media, sniff_media
from translate_svc.audio.remux import ATTACK_S, RELEASE_S, ducked, language_tag
from translate_svc.errors import InvalidInput

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("suffix", videos.KINDS)
def test_a_video_is_known_by_its_first_bytes(suffix: str, shared_audio: Path, tmp_path: Path) -> None:
    path = videos.write_video(tmp_path / f"a.{suffix}", shared_audio / "jfk.flac", seconds=1)
    want = {"mp4": MediaKind.MP4, "mov": MediaKind.MOV, "webm": MediaKind.WEBM, "mkv": MediaKind.MATROSKA}
    assert sniff_media(path.read_bytes()[:64]) is want[suffix]


@pytest.mark.parametrize(
    "head",
    [b"RIFF\x00\x00\x00\x00WAVEfmt ", b"OggS\x00\x02", b"fLaC\x00", b"RIFF\x00\x10\x00\x00AVI LIST", b"ID3\x04", b""],
    ids=["wav", "ogg", "flac", "avi", "mp3", "empty"],
)
def test_anything_else_is_no_video(head: bytes) -> None:
    assert sniff_media(head + bytes(64)) is None


def test_the_video_decoder_is_never_opened(shared_audio: Path, tmp_path: Path) -> None:
    path = videos.write_video(tmp_path / "a.mp4", shared_audio / "jfk.flac", seconds=1)
    level = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture() as logs:
            info = inspect_media(path, MediaKind.MP4)
    finally:
        av.logging.set_level(level)
    assert info.video[0].codec == "h264" and info.audio_codec == "aac"
    refused = [m for _, _, m in logs if "not on whitelist" in m]
    assert refused and all("h264" in m for m in refused), logs
    assert "h264" not in AUDIO_DECODERS


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p, s: videos.write_video(p / "a.mp4", s, seconds=1, audio=False), "holds no audio stream"),
        (lambda p, s: videos.write_video(p / "a.mkv", s, seconds=1, audio_codec="ac3"), "audio codec ac3"),
        # named as the codec it is, not as FFmpeg's decoder of it (mp3float; issue 100 item 5)
        (
            lambda p, s: videos.write_video(p / "a.mkv", s, seconds=1, audio_codec="mp3"),
            r"audio codec mp3 \(MP3 \(MPEG audio layer 3\)\) is not accepted",
        ),
    ],
    ids=["no-audio", "ac3", "mp3"],
)
def test_what_cannot_be_taken_is_refused_saying_why(
    make: object, words: str, shared_audio: Path, tmp_path: Path
) -> None:
    path = make(tmp_path, shared_audio / "jfk.flac")  # type: ignore[operator]
    with pytest.raises(InvalidInput, match=words):
        inspect_media(path, MediaKind.MP4 if path.suffix == ".mp4" else MediaKind.MATROSKA)


def test_a_video_whose_frame_size_only_its_decoder_knows_is_refused(tmp_path: Path) -> None:
    """MPEG-4 Part 2 in MP4: FFmpeg reads its frame size from the bitstream, with its decoder."""
    path = tmp_path / "part2.mp4"
    with av.open(str(path), "w", format="mp4") as c:
        v = c.add_stream("mpeg4", rate=10)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = c.add_stream("aac", rate=16000, layout="mono")
        for i in range(10):
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 20, np.uint8), format="rgb24")
            f.pts = i
            c.mux(v.encode(f))
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        c.mux(a.encode(frame))
        c.mux(v.encode(None))
        c.mux(a.encode(None))
    with pytest.raises(InvalidInput, match="states no frame size"):
        inspect_media(path, MediaKind.MP4)


@pytest.mark.parametrize("suffix", ["mp4", "webm"])
def test_audio_read_from_a_frame_on_is_the_whole_read_from_there(
    suffix: str, shared_audio: Path, tmp_path: Path
) -> None:
    path = videos.write_video(tmp_path / f"a.{suffix}", shared_audio / "jfk.flac", seconds=4)
    kind = sniff_media(path.read_bytes()[:64])
    assert kind is not None
    whole = MediaAudio(path, kind)
    everything = np.concatenate([whole.read(10_000) for _ in range(30)])
    whole.close()
    assert whole.frames is None or len(everything) == whole.frames
    later = MediaAudio(path, kind, start_frame=12_345)
    rest = np.concatenate([later.read(7_000) for _ in range(40)])
    later.close()
    assert np.array_equal(rest, everything[12_345:])


def test_the_duck_is_the_floor_while_the_dub_speaks_and_ramped_around_it() -> None:
    rate, floor = 1000, 0.1
    starts, ends = np.array([1000, 5000]), np.array([2000, 5500])
    gain = ducked(starts, ends, 0, 7000, rate, floor)
    attack, release = round(ATTACK_S * rate), round(RELEASE_S * rate)
    assert np.allclose(gain[1000:2000], floor) and np.allclose(gain[5000:5500], floor)
    assert np.allclose(gain[: 1000 - attack], 1) and np.allclose(gain[2000 + release : 5000 - attack], 1)
    assert np.all(np.diff(gain[1000 - attack : 1001]) <= 0) and np.all(np.diff(gain[2000 : 2000 + release]) >= 0)
    pieces = np.concatenate([ducked(starts, ends, at, 250, rate, floor) for at in range(0, 7000, 250)])
    assert np.array_equal(pieces, gain)  # the same whatever the window


@pytest.mark.parametrize(
    ("code", "kind", "tag"),
    [("fra", MediaKind.MP4, "fra"), ("zho", MediaKind.MATROSKA, "zho"), ("deu", MediaKind.MOV, "ger"),
     ("swe", MediaKind.MOV, "sve"), ("yue", MediaKind.MOV, "und")],
)  # fmt: skip
def test_a_language_is_tagged_as_its_container_reads_it(code: str, kind: MediaKind, tag: str, tmp_path: Path) -> None:
    assert language_tag(code, kind) == tag
    path = tmp_path / f"t.{kind.suffix}"
    with av.open(str(path), "w", format=kind.muxer) as c:
        s = c.add_stream("aac" if kind is not MediaKind.WEBM else "libopus", rate=48000, layout="mono")
        s.metadata["language"] = language_tag(code, kind)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format=s.format.name, layout="mono")
        frame.sample_rate, frame.pts = 48000, 0
        c.mux(s.encode(frame))
        c.mux(s.encode(None))
    with av.open(str(path)) as c:
        assert c.streams.audio[0].metadata.get("language", "und") == tag
