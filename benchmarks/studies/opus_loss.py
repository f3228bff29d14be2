"""Lost Opus packets: silence fill against libopus's concealment (PLC) and in-band FEC (issue 24).

Speech is encoded as a WebRTC sender does (libopus, 48 kHz mono, 20 ms packets, VoIP mode, in-band
FEC on with a 5 % expected loss, as browsers negotiate ``useinbandfec=1``). ``--loss`` of the
packets are dropped at random (``--seeds`` draws), and the rest is decoded three ways:

- ``silence``: the server's old path, each lost packet's time filled with zeros;
- ``plc``: libopus's packet loss concealment for each lost packet (``opus_decode`` with no data);
- ``plc+fec``: concealment, except that a lost packet followed by a received one is recovered
  from that packet's in-band FEC copy (``decode_fec=1``) -- the server's path now.

Each result goes through the server's VAD and segmenter (silero, default settings) and is compared
with the clean stream's segments: segment count, the largest boundary error of matched segments,
and the SNR of the decoded audio against the clean decode (over the whole clip). No model runs.

    python -m benchmarks.studies.opus_loss --loss 0.02 --seeds 20
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import soundfile as sf
import soxr

from tests.support.paths import SHARED_AUDIO
from translate_svc.audio.opus import OPUS_FRAME_SAMPLES, OPUS_RATE, OpusStreamDecoder
from translate_svc.vad.segmenter import Segmenter, SegmenterConfig, SegmentReady
from translate_svc.vad.silero import SileroVad
from translate_svc.vad.worker import VadWorker

AUDIO = SHARED_AUDIO


def load_48k(path: Path) -> np.ndarray:
    x, rate = sf.read(path, dtype="float32", always_2d=True)
    return soxr.resample(x.mean(axis=1), rate, OPUS_RATE).astype(np.float32)


def encode(x: np.ndarray, *, fec: bool) -> list[bytes]:
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format, enc.bit_rate = OPUS_RATE, "mono", "s16", 32000
    enc.options = {"application": "voip", "frame_duration": "20", **({"fec": "1", "packet_loss": "5"} if fec else {})}
    enc.open()
    pcm = np.clip(np.round(x * 32767), -32768, 32767).astype("<i2")
    pcm = np.pad(pcm, (0, -len(pcm) % OPUS_FRAME_SAMPLES))
    out: list[bytes] = []
    for i in range(0, len(pcm), OPUS_FRAME_SAMPLES):
        frame = av.AudioFrame.from_ndarray(pcm[None, i : i + OPUS_FRAME_SAMPLES], format="s16", layout="mono")
        frame.sample_rate, frame.pts = OPUS_RATE, i
        out += [bytes(p) for p in enc.encode(frame)]
    out += [bytes(p) for p in enc.encode(None)]
    return out


def decode_silence(packets: list[bytes | None]) -> np.ndarray:
    dec = OpusStreamDecoder(1)
    parts = [dec.decode(p) if p is not None else np.zeros(OPUS_FRAME_SAMPLES, np.float32) for p in packets]
    return np.concatenate(parts)


def decode_concealed(packets: list[bytes | None], *, fec: bool) -> np.ndarray:
    """What the server's decoder does with a gap (``OpusStreamDecoder.conceal``)."""
    dec = OpusStreamDecoder(1)
    parts = []
    for i, p in enumerate(packets):
        if p is not None:
            parts.append(dec.decode(p))
            continue
        nxt = packets[i + 1] if i + 1 < len(packets) else None
        parts.append(dec.conceal(OPUS_FRAME_SAMPLES, nxt if fec else None))
    return np.concatenate(parts)


async def segments(x48k: np.ndarray, worker: VadWorker) -> list[tuple[int, int]]:
    x = soxr.resample(x48k, OPUS_RATE, 16000).astype(np.float32)
    probs = await worker.probabilities(worker.vad.new_state(), x, last=True)
    seg = Segmenter(SegmenterConfig())
    evs = seg.push(x, probs) + seg.finish()
    return [(e.start_sample // 16, e.end_sample // 16) for e in evs if isinstance(e, SegmentReady)]


def compare(got: list[tuple[int, int]], want: list[tuple[int, int]]) -> tuple[int, int]:
    """(count difference, largest boundary error in ms of each clean segment's nearest match)."""
    worst = 0
    for b0, b1 in want:
        near = min(got, key=lambda s: abs(s[0] - b0) + abs(s[1] - b1), default=None)
        if near is not None:
            worst = max(worst, abs(near[0] - b0), abs(near[1] - b1))
    return len(got) - len(want), worst


def snr_db(x: np.ndarray, ref: np.ndarray) -> float:
    n = min(len(x), len(ref))
    noise = float(np.sum((x[:n] - ref[:n]) ** 2))
    return 10 * np.log10(float(np.sum(ref[:n] ** 2)) / max(noise, 1e-12))


@dataclass
class Row:
    clip: str
    way: str
    count_diffs: list[int]
    worst_ms: list[int]
    snr: list[float]


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loss", type=float, default=0.02)
    ap.add_argument("--seeds", type=int, default=20)
    args = ap.parse_args()
    vad = SileroVad()
    worker = VadWorker(vad)
    rows: list[Row] = []
    try:
        for clip in ("jfk.flac", "silero_test.wav"):
            packets = encode(load_48k(AUDIO / clip), fec=True)
            clean_audio = decode_silence(list(packets))
            clean = await segments(clean_audio, worker)
            ways = {
                "silence": decode_silence,
                "plc": lambda p: decode_concealed(p, fec=False),
                "plc+fec": lambda p: decode_concealed(p, fec=True),
            }
            results = {w: Row(clip, w, [], [], []) for w in ways}
            for seed in range(args.seeds):
                rng = np.random.default_rng(seed)
                lossy: list[bytes | None] = [
                    None if 0 < i < len(packets) - 1 and rng.random() < args.loss else p for i, p in enumerate(packets)
                ]
                for way, decode in ways.items():
                    audio = decode(lossy)
                    d, worst = compare(await segments(audio, worker), clean)
                    r = results[way]
                    r.count_diffs.append(d)
                    r.worst_ms.append(worst)
                    r.snr.append(snr_db(audio, clean_audio))
            rows += results.values()
            print(f"{clip}: {len(packets)} packets, {len(clean)} clean segments")
    finally:
        worker.close()
    print(f"\nloss {args.loss:.0%}, {args.seeds} seeds per clip")
    print(
        "| clip | decoding | runs with the clean count | extra/missing segments (sum) "
        "| worst boundary error, median / max (ms) | SNR vs clean, median (dB) |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        same = sum(1 for d in r.count_diffs if d == 0)
        print(
            f"| {r.clip} | {r.way} | {same}/{len(r.count_diffs)} | {sum(abs(d) for d in r.count_diffs)} | "
            f"{int(np.median(r.worst_ms))} / {max(r.worst_ms)} | {np.median(r.snr):.1f} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
