"""Translate clips beside live streams: do big clips take anything from real-time streams (issue 23)?

Run from the repository root::

    python -m benchmarks.studies.clips_beside_streams --streams 4 --clip-callers 16 --json out/clips.json

It starts one ``translate-svc serve`` (``--model``, defaults for every limit: ``max_translate_calls``
4, ``max_clip_seconds`` 600, 64 MiB clips), then runs ``python -m benchmarks.tools.loadgen --target``
as a separate process twice: ``--streams`` real-time streams alone, then the same streams while
``--clip-callers`` callers in this process each send the largest clip the defaults allow (600 s of
48 kHz PCM16 WAV, 57.6 MB: ``--clip-speech-s`` of speech from ``--clip-file``, then silence) again
and again for as long as the streams run, over ``TranslateChunked`` in 1 MiB messages (the port
takes at most 4 MiB a message since issue 52; one tenant has at most
``max_clip_reads_per_tenant``, 2, clips arriving at once). A caller refused with RESOURCE_EXHAUSTED waits the
RetryInfo delay and tries again. Reported: the streams' p95 and p50 segment latency in each run,
the clip calls answered and refused (and whether every refusal carried RetryInfo), and the server's
peak RSS growth (VmHWM from /proc, reset before each run) against docs/security.md's bound.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import grpc
import numpy as np
import soundfile as sf
import typer
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from benchmarks.tools.frontend import SERVE, Server
from benchmarks.tools.machine import git_state
from tests.support.paths import REPO, SHARED_AUDIO, TEST_MODEL
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.client_cli.decode import load_pcm16k

MB = 1024 * 1024
#: TranslateChunked's message: an audio chunk the server takes (its max_chunk_bytes, 1 MiB by default)
CHUNK = 1024 * 1024
CLIP_RATE = 48_000

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_enable=False)


def clip_wav(path: Path, seconds: float, speech_s: float) -> bytes:
    import soxr

    speech = load_pcm16k(path)[: int(16000 * speech_s)].astype(np.float32) / 32768.0
    pcm = np.zeros(int(seconds * CLIP_RATE), np.int16)
    up = np.clip(np.round(soxr.resample(speech, 16000, CLIP_RATE) * 32767), -32768, 32767).astype(np.int16)
    pcm[: len(up)] = up
    buf = io.BytesIO()
    sf.write(buf, pcm, CLIP_RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def reset_peak(pid: int) -> int:
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return vm(pid, "VmRSS")


def vm(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


async def clip_caller(address: str, messages: list[bytes], stop: asyncio.Event, tally: dict[str, Any]) -> None:
    """Sends the clip over TranslateChunked (``messages``: the request, then its chunks), again and
    again: the port takes at most 4 MiB a message (issue 52)."""
    async with grpc.aio.insecure_channel(address) as ch:
        call = ch.stream_unary("/translate_svc.api.v1.Translator/TranslateChunked")
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                await call(iter(messages), timeout=600)
                tally["answered"] += 1
                tally["answer_s"].append(time.perf_counter() - t0)
            except grpc.aio.AioRpcError as e:
                tally["refused" if e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED else "failed"] += 1
                status = rpc_status.from_call(e)
                info = error_details_pb2.RetryInfo()
                if status is None or not status.details or not status.details[0].Unpack(info):
                    tally["refused_without_retry_info"] += 1
                    await asyncio.sleep(1.0)
                else:
                    await asyncio.sleep(info.retry_delay.ToMilliseconds() / 1000)


async def run_streams(cmd: list[str], address: str, clip: bytes | None, callers: int) -> dict[str, Any]:
    stop = asyncio.Event()
    tally: dict[str, Any] = {
        "answered": 0, "refused": 0, "failed": 0, "refused_without_retry_info": 0, "answer_s": []
    }  # fmt: skip
    messages: list[bytes] = []
    if clip is not None:
        first = pb.TranslateRequest(
            audio=pb.AudioInput(content=clip[:CHUNK], format=pb.AudioFormat(encoding=pb.CONTAINER)),
            target_languages=["spa"],
            output=pb.OutputOptions(speech=False),
        )
        messages = [first.SerializeToString()] + [
            pb.TranslateRequest(audio=pb.AudioInput(content=clip[at : at + CHUNK])).SerializeToString()
            for at in range(CHUNK, len(clip), CHUNK)
        ]
    tasks = [asyncio.create_task(clip_caller(address, messages, stop, tally)) for _ in range(callers if clip else 0)]
    try:
        proc = await asyncio.create_subprocess_exec(*cmd, cwd=REPO)
        await proc.wait()
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    if proc.returncode != 0:
        raise RuntimeError(f"loadgen exited with {proc.returncode}")
    return tally


@app.command()
def main(
    streams: Annotated[int, typer.Option(min=1, help="real-time streams")] = 4,
    clip_callers: Annotated[int, typer.Option(min=1, help="concurrent Translate callers in the second run")] = 16,
    stream_s: Annotated[float, typer.Option(help="each stream's audio (looped file)")] = 60.0,
    clip_file: Annotated[str, typer.Option(help="speech at the start of the clip")] = "jfk.flac",
    clip_speech_s: Annotated[float, typer.Option(help="seconds of speech in the clip; the rest is silence")] = 11.0,
    clip_seconds: Annotated[float, typer.Option(help="the clip's length (the default limit: 600)")] = 600.0,
    model: Annotated[Path, typer.Option(help="model directory")] = TEST_MODEL,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the results here")] = None,
) -> None:
    clip = clip_wav(SHARED_AUDIO / clip_file, clip_seconds, clip_speech_s)
    work = Path(tempfile.mkdtemp(prefix="clips-beside-streams-"))
    env = {**os.environ, "TRANSLATE_SVC_MODEL__PATH": str(model)}
    server = Server([str(SERVE), "serve", "--host", "127.0.0.1", "--port", "0"], env, work / "server.log")
    runs: dict[str, Any] = {}
    try:
        port = server.wait_ready(300)
        address = f"127.0.0.1:{port}"
        for name, with_clips in (("streams_alone", False), ("beside_clips", True)):
            out = work / f"{name}.json"
            cmd = [
                sys.executable, "-m", "benchmarks.tools.loadgen", "--target", address, "--server-pid", str(server.pid),
                "--streams", str(streams), "--stream-s", f"{stream_s:g}", "--stagger-s", "2", "--no-saturation",
                "--no-speech", "--json", str(out), "--log-level", "WARNING",
            ]  # fmt: skip
            before_kb = reset_peak(server.pid)
            tally = asyncio.run(run_streams(cmd, address, clip if with_clips else None, clip_callers))
            doc = json.loads(out.read_text())
            realtime = doc["results"]["target"]["realtime"]
            runs[name] = {
                "latency_ms": realtime["latency_ms"],
                "segments": realtime.get("segments"),
                "failed_streams": realtime.get("streams_failed"),
                "peak_rss_growth_mb": (vm(server.pid, "VmHWM") - before_kb) / 1024,
                "clips": {k: v for k, v in tally.items() if k != "answer_s"} if with_clips else None,
                "clip_answer_s_max": max(tally["answer_s"], default=None) if with_clips else None,
                "loadgen_json": str(out),
            }
    finally:
        server.stop()
    bound_mb = 4 * (2 * len(clip) + clip_seconds * CLIP_RATE * 4) / MB + 128  # docs/security.md (chunked)
    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "git": git_state(),
        "streams": streams,
        "clip_callers": clip_callers,
        "clip_bytes": len(clip),
        "documented_bound_mb": bound_mb,
        "runs": runs,
        "server_log": str(work / "server.log"),
    }
    for name, r in runs.items():
        lat = r["latency_ms"]
        print(
            f"{name}: p50 {lat['p50']:.0f} ms, p95 {lat['p95']:.0f} ms over {lat['count']} segments; "
            f"peak RSS +{r['peak_rss_growth_mb']:.0f} MB; clips {r['clips']}"
        )
    print(f"documented bound for the clips: {bound_mb:.0f} MB")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    app()
