"""Translate a speech file through a Pipecat pipeline: the file's audio goes in as a transport's
would (20 ms InputAudioRawFrames, in real time or faster), transcripts and translations are
printed, and the translated speech (the TTSAudioRawFrames an output transport would play) is
written to a WAV file.

    python examples/translate_file.py --server 127.0.0.1:50051 --source en --target es \\
        ../../clients/python/src/translate_svc/samples/demo_eng.wav out.wav

Needs a running server (``translate-svc serve``) and the integration's virtualenv (README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import wave
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from pipecat.frames.frames import (
    EndFrame,
    Frame,
    InputAudioRawFrame,
    TranscriptionFrame,
    TranslationFrame,
    TTSAudioRawFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

from pipecat_translate_svc import TranslateSvcSTTService

RATE = 16000  # the pipeline's input rate
OUT_RATE = 24000  # the pipeline's output rate: the translated speech comes at it
FRAME_MS = 20


class Printer(FrameProcessor):
    """Prints texts and keeps the translated speech (where an output transport would go)."""

    def __init__(self) -> None:
        super().__init__()
        self.speech = bytearray()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TranscriptionFrame):
            print(f"[{frame.language}] {frame.text}")
        elif isinstance(frame, TranslationFrame):
            print(f"    -> [{frame.language}] {frame.text}")
        elif isinstance(frame, TTSAudioRawFrame):
            self.speech += frame.audio
        await self.push_frame(frame, direction)


def read_pcm16(path: Path) -> bytes:
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    if rate != RATE:
        mono = soxr.resample(mono, rate, RATE)
    return np.clip(np.round(mono * 32768.0), -32768, 32767).astype("<i2").tobytes()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", type=Path, help="a speech file (WAV, FLAC, OGG)")
    ap.add_argument("output", type=Path, help="the translated speech, as a WAV file")
    ap.add_argument("--server", default="127.0.0.1:50051", help="the translate_svc server (host:port)")
    ap.add_argument("--source", default="en", help="the spoken language (a tag such as en, or eng)")
    ap.add_argument("--target", default="es", help="the language to translate into")
    ap.add_argument("--speed", type=float, default=1.0, help="how much faster than real time to send")
    args = ap.parse_args()

    translate = TranslateSvcSTTService(address=args.server, source_language=args.source, target_languages=[args.target])
    printer = Printer()
    worker = PipelineWorker(
        Pipeline([translate, printer]),
        params=PipelineParams(audio_in_sample_rate=RATE, audio_out_sample_rate=OUT_RATE),
        cancel_on_idle_timeout=False,
        enable_rtvi=False,
    )
    started = asyncio.Event()

    @worker.event_handler("on_pipeline_started")
    async def _started(_worker: PipelineWorker, _frame: Frame) -> None:
        started.set()

    async def feed() -> None:
        pcm = read_pcm16(args.input)
        step = RATE * FRAME_MS // 1000 * 2
        await started.wait()
        for i in range(0, len(pcm), step):
            await worker.queue_frame(InputAudioRawFrame(audio=pcm[i : i + step], sample_rate=RATE, num_channels=1))
            await asyncio.sleep(FRAME_MS / 1000 / args.speed)
        await worker.queue_frame(EndFrame())  # the service waits for the last results first

    runner = WorkerRunner(handle_sigint=True)
    await runner.add_workers(worker)
    await asyncio.gather(runner.run(), feed())

    with wave.open(str(args.output), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(OUT_RATE)
        w.writeframes(bytes(printer.speech))
    print(f"wrote {len(printer.speech) / 2 / OUT_RATE:.1f} s of translated speech to {args.output}")


if __name__ == "__main__":
    asyncio.run(main())
