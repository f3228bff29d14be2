"""The shared speech as the tests and benchmarks use it: a file at 16 kHz (float samples, or PCM16
bytes beside the floats the server decodes them to), the first seconds of a file as a client would
send them, Opus packets as a WebRTC sender makes them, and the segments a server's VAD cuts from a
whole clip."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import av
import numpy as np
import soundfile as sf
import soxr

from translate_svc.audio.resample import resample
from translate_svc.client_cli.decode import load_pcm16k


async def vad_segments(samples16k: Any, config: Any = None) -> list[Any]:
    """The segments (``SegmentReady``) a server cuts from a whole 16 kHz float32 clip at the default
    VAD settings (``config``: a ``SegmenterConfig`` of its own, e.g. a shorter length cap), the
    session's way: the ``VadWorker`` scores a fresh silero state, a ``Segmenter`` cuts. No model
    runs: the spans a Translate call of the clip would return, in VAD time only."""
    from translate_svc.vad.segmenter import Segmenter, SegmenterConfig, SegmentReady
    from translate_svc.vad.silero import SileroVad
    from translate_svc.vad.worker import VadWorker

    vad = SileroVad()
    worker = VadWorker(vad)
    try:
        probs = await worker.probabilities(vad.new_state(), samples16k, last=True)
    finally:
        worker.close()
    segmenter = Segmenter(config or SegmenterConfig())
    return [e for e in segmenter.push(samples16k, probs) + segmenter.finish() if isinstance(e, SegmentReady)]


def speech_pcm16(path: Path, seconds: float, rate: int) -> Any:
    """The first ``seconds`` of a shared speech file as mono PCM16 (int16 samples) at ``rate``:
    what the doors' tests stream as a client or a microphone would."""
    pcm = load_pcm16k(path)[: int(16000 * seconds)].astype(np.float32) / 32768.0
    if rate != 16000:
        pcm = soxr.resample(pcm, 16000, rate)
    return np.clip(np.round(pcm * 32767), -32768, 32767).astype("<i2")


#: the shared speech files (../shared/audio, ``paths.SHARED_AUDIO``)
SHARED_FILES = ("jfk.flac", "silero_test.wav")


def read_16k(path: Path) -> np.ndarray:
    """A shared audio file as 16 kHz mono float32."""
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    x = audio.mean(axis=1)
    return x if rate == 16000 else resample(x, rate, 16000)


def two_parties(shared_audio: Path, seconds: int) -> tuple[np.ndarray, np.ndarray]:
    """Two different speakers, ``seconds`` each at 16 kHz (jfk.flac padded with silence, the start of
    silero_test.wav): the channels of a stereo call's parties."""
    n = seconds * 16000
    left, right = read_16k(shared_audio / "jfk.flac")[:n], read_16k(shared_audio / "silero_test.wav")[:n]
    return np.pad(left, (0, n - len(left))), right


def wav_bytes(samples: np.ndarray, rate: int = 16000) -> bytes:
    """``samples`` (frames, or frames x channels) as a PCM16 WAV file's bytes."""
    out = io.BytesIO()
    sf.write(out, samples, rate, format="WAV", subtype="PCM_16")
    return out.getvalue()


def shared_pcm(shared_audio: Path, name: str) -> tuple[bytes, np.ndarray]:
    """The file as 16 kHz PCM16 bytes, and the float samples the server decodes them to."""
    audio, rate = sf.read(shared_audio / name, dtype="float32", always_2d=True)
    x = audio.mean(axis=1) if rate == 16000 else resample(audio.mean(axis=1), rate, 16000)
    pcm = (np.clip(x, -1, 1) * 32767).astype("<i2")
    return pcm.tobytes(), pcm.astype(np.float32) / 32768.0


def jfk_16k(shared_audio: Path) -> np.ndarray:
    """jfk.flac resampled to 16 kHz mono float32 (resampled whatever its rate)."""
    audio, rate = sf.read(shared_audio / "jfk.flac", dtype="float32", always_2d=True)
    return resample(audio.mean(axis=1), rate, 16000)


FRAME = 960  # 20 ms at 48 kHz


def to_48k(pcm16k: np.ndarray) -> np.ndarray:
    """16 kHz PCM16 samples as 48 kHz float32 (Opus' clock)."""
    return soxr.resample(pcm16k.astype(np.float32) / 32768.0, 16000, 48000).astype(np.float32)


def opus_packets(pcm16k: np.ndarray, *, fec: bool = False) -> list[bytes]:
    """Encode like a WebRTC sender: libopus via PyAV, 48 kHz mono, 20 ms per packet (``fec``: with
    in-band FEC for a 5 % expected loss, as browsers negotiate ``useinbandfec=1``)."""
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format, enc.bit_rate = 48000, "mono", "s16", 32000
    enc.options = {"application": "voip", "frame_duration": "20", **({"fec": "1", "packet_loss": "5"} if fec else {})}
    enc.open()
    x = np.clip(np.round(to_48k(pcm16k) * 32767), -32768, 32767).astype("<i2")
    x = np.pad(x, (0, -len(x) % FRAME))
    packets: list[bytes] = []
    for i in range(0, len(x), FRAME):
        frame = av.AudioFrame.from_ndarray(x[None, i : i + FRAME], format="s16", layout="mono")
        frame.sample_rate, frame.pts = 48000, i
        packets += [bytes(p) for p in enc.encode(frame)]
    packets += [bytes(p) for p in enc.encode(None)]
    return packets
