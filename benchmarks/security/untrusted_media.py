"""Hardening 7's attacks on the jobs' untrusted media, measured on a real ``translate-svc serve``
of the tree on ``PYTHONPATH`` (the test checkpoint, jobs on, on loopback; docs/security.md,
"Hardening 7: untrusted media"). Run from the repository root::

    python -m benchmarks.security.untrusted_media k1 --hours 11.7 --completes 8 --json out/k1.json
    python -m benchmarks.security.untrusted_media k2 --json out/k2.json
    python -m benchmarks.security.untrusted_media k4 --json out/k4.json

For the tree before a fix, copy this directory and ``tests/support`` into that tree and run it
there with that tree first on ``PYTHONPATH`` (the server is started from it).

- ``k1``: a tenant keeps ``--completes`` ``complete`` calls in flight on a Matroska file of DTX
  Opus that states no length (``--hours`` of it: 11.7 h are 14.8 MB), from a client process of its
  own (``tests/support/attacks/media.py``). Another tenant, from this process, before (control) and
  during the attack: an OpenAI realtime session (the ``openai`` SDK) streaming jfk.flac in real time
  (when its first audio and its first text came, from its first audio sent), and a gRPC stream
  asking 24 kHz speech (how late each segment's result came). Then SIGTERM: how long the server
  takes to exit (killed after ``--stop-wait`` seconds).
- ``k2``: a 19 kB MP4 stating 20 M and then 40 M one-byte video samples, each uploaded and
  completed: the answer, and the server process's peak RSS growth (``VmHWM``, reset before).
- ``k4``: a 16 MiB JSON body of ``{}`` posted to ``/v1/glossaries``: the answer, and the peak RSS
  growth of the glossary parse process that read it (a child of the server).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import soxr

from tests.support import hostile_media, videos
from tests.support.attacks.bystander import CHUNK_MS, STREAM, speech, summary
from tests.support.attacks.client import OWN, metadata
from tests.support.paths import SHARED_AUDIO, TEST_MODEL
from tests.support.proc import descendants, memory_kb, reset_peak
from tests.support.server_process import ServerProcess

ATTACKER = "media-attacker-token-2f7a"
OTHER = "media-other-token-8b1d"
TOKENS = f"{ATTACKER} * jobs tenant=attacker jobs=64 job_hours=1000\n{OTHER} * jobs glossaries tenant=other\n"
MODEL = "gpt-realtime-translate"


@contextmanager
def served(folder: Path, env: dict[str, str] | None = None) -> Iterator[ServerProcess]:
    tokens = folder / "tokens"
    tokens.write_text(TOKENS)
    server = ServerProcess(
        [
            *("--model", str(TEST_MODEL), "--host", "127.0.0.1", "--port", "0", "--http-port", "0"),
            *("--tokens-file", str(tokens)),
        ],
        env={
            "TRANSLATE_SVC_JOBS__DIR": str(folder / "jobs"),
            "TRANSLATE_SVC_GLOSSARIES__ENABLED": "true",
            "TRANSLATE_SVC_GLOSSARIES__DATA_DIR": str(folder / "glossaries"),
            "TRANSLATE_SVC_GLOSSARIES__PARSE_PROCESSES": "1",
            "TRANSLATE_SVC_SERVER__GRACE_S": "10",
            "TRANSLATE_SVC_SERVER__DRAIN_S": "5",
            **(env or {}),
        },
    )
    try:
        yield server
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()
        server.stop()


# -- K1 ---------------------------------------------------------------------------------------------


async def realtime_first(http_port: int, pcm24k: np.ndarray, timeout_s: float) -> dict[str, Any]:
    """An OpenAI realtime translation session of ``OTHER``'s streaming ``pcm24k`` (24 kHz int16) in
    real time, 200 ms a message: seconds from its first audio sent to its first output audio and
    its first output text (None: not within ``timeout_s``)."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=f"http://127.0.0.1:{http_port}/v1", api_key=OTHER, max_retries=0)
    got: dict[str, Any] = {"first_audio_s": None, "first_text_s": None, "audio_deltas": 0}
    step = 24000 // 5
    try:
        async with asyncio.timeout(timeout_s), client.realtime.translations.connect(model=MODEL) as conn:
            await conn.recv()  # session.created
            await conn.session.update(session={"audio": {"output": {"language": "es"}, "input": {"language": "en"}}})
            t0 = time.perf_counter()

            async def send() -> None:
                for n, at in enumerate(range(0, len(pcm24k), step)):
                    await asyncio.sleep(max(0.0, t0 + n * 0.2 - time.perf_counter()))
                    chunk = pcm24k[at : at + step].astype("<i2").tobytes()
                    await conn.session.input_audio_buffer.append(audio=base64.b64encode(chunk).decode())

            sender = asyncio.create_task(send())
            try:
                async for ev in conn:
                    now = round(time.perf_counter() - t0, 3)
                    if ev.type == "session.output_audio.delta":
                        got["audio_deltas"] += 1
                        got["first_audio_s"] = got["first_audio_s"] or now
                    elif ev.type == "session.output_transcript.delta" and getattr(ev, "delta", ""):
                        got["first_text_s"] = got["first_text_s"] or now
                    if got["first_audio_s"] and got["first_text_s"]:
                        break
            finally:
                sender.cancel()
    except TimeoutError:
        got["timed_out_s"] = timeout_s
    except Exception as e:  # the session refused or dropped: say how
        got["error"] = f"{type(e).__name__}: {str(e)[:120]}"
    return got


async def speech_lateness(address: str, pcm: np.ndarray, timeout_s: float) -> dict[str, Any]:
    """``OTHER``'s gRPC stream of ``pcm`` (16 kHz int16) in real time asking 24 kHz speech: how late
    each segment's result came (its arrival minus when the audio of its end was sent), seconds."""
    import grpc

    from translate_svc.api.v1 import translate_pb2 as pb

    step = 16 * CHUNK_MS
    sent_at: list[float] = []

    async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
        cfg = pb.StreamingConfig(
            format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000),
            source_language="eng",
            target_languages=["spa"],
            output=pb.OutputOptions(text=True, speech=True, speech_sample_rate_hz=24000),
        )
        yield pb.StreamingTranslateRequest(config=cfg)
        t0 = time.perf_counter()
        for k, i in enumerate(range(0, len(pcm), step)):
            await asyncio.sleep(max(0.0, t0 + (k + 1) * CHUNK_MS / 1000 - time.perf_counter()))
            sent_at.append(time.perf_counter())
            yield pb.StreamingTranslateRequest(audio=pcm[i : i + step].astype("<i2").tobytes())

    late: list[float] = []
    out: dict[str, Any] = {}
    try:
        async with grpc.aio.insecure_channel(address, options=OWN) as ch:
            call = ch.stream_stream(
                STREAM,
                request_serializer=pb.StreamingTranslateRequest.SerializeToString,
                response_deserializer=pb.StreamingTranslateResponse.FromString,
            )(requests(), metadata=metadata(OTHER), timeout=timeout_s)
            async for r in call:
                if r.HasField("segment"):
                    chunk = min(len(sent_at) - 1, max(0, -(-r.segment.end_ms // CHUNK_MS) - 1))
                    late.append(time.perf_counter() - sent_at[chunk])
    except grpc.aio.AioRpcError as e:
        out["error"] = e.code().name
    return {**summary(late), **out}


async def bystander(server: ServerProcess, timeout_s: float) -> dict[str, Any]:
    pcm = speech()
    pcm24k = soxr.resample(pcm.astype(np.float32) / 32768, 16000, 24000)
    pcm24k = np.clip(pcm24k * 32768, -32768, 32767).astype(np.int16)
    port = server.info.http_port
    assert port is not None
    realtime = await realtime_first(port, pcm24k, timeout_s)
    stream = await speech_lateness(server.address, pcm, timeout_s + 20)
    return {"realtime": realtime, "grpc_24khz_speech_late_s": stream}


def k1(hours: float, completes: int, stop_wait_s: float) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="media-k1-"))
    k1_file = hostile_media.lengthless_opus_mkv(folder / "k1.mkv", hours)
    out: dict[str, Any] = {"file_mb": round(k1_file.stat().st_size / 1e6, 1), "hours": hours}
    with served(folder) as server:
        out["control"] = asyncio.run(bystander(server, 60))
        attack = subprocess.Popen(
            [
                *(sys.executable, "-m", "tests.support.attacks.media", "completes"),
                *("--http-port", str(server.info.http_port), "--token", ATTACKER, "--file", str(k1_file)),
                *("--jobs", str(completes), "--seconds", "900"),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert attack.stdout is not None
            assert attack.stdout.readline().strip() == "started"
            time.sleep(2.0)  # the completes reach their probes
            out["attacked"] = asyncio.run(bystander(server, 40))
            t = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            try:
                server.proc.wait(stop_wait_s)
                out["sigterm_stop_s"] = round(time.monotonic() - t, 1)
            except subprocess.TimeoutExpired:
                out["sigterm_stop_s"] = f"not stopped in {stop_wait_s:g} s (killed)"
                server.proc.kill()
            tail, _ = attack.communicate(timeout=120)
            out["attacker"] = json.loads(tail.strip().splitlines()[-1]) if tail.strip() else None
        finally:
            if attack.poll() is None:
                attack.kill()
    return out


# -- K2 and K4 --------------------------------------------------------------------------------------


async def job_of(server: ServerProcess, data: bytes) -> dict[str, Any]:
    base = f"http://127.0.0.1:{server.info.http_port}/v1/jobs"
    headers = {"Authorization": f"Bearer {OTHER}"}
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=600)) as http:
        async with http.post(base, json={"source_language": "eng", "target_languages": ["spa"]}) as r:
            job = await r.json()
        async with http.put(f"{base}/{job['id']}/audio", data=data) as r:
            await r.read()
        async with http.post(f"{base}/{job['id']}/complete") as r:
            doc = await r.json()
            said = doc["error"]["message"] if r.status >= 400 else doc["state"]
            return {"complete": r.status, "said": said[:160]}


def k2() -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="media-k2-"))
    small = videos.write_video(folder / "small.mp4", SHARED_AUDIO / "jfk.flac", seconds=1)
    out: dict[str, Any] = {}
    with served(folder) as server:
        for samples in (20_000_000, 40_000_000):
            data = hostile_media.mp4_stating_samples(folder / f"k2-{samples}.mp4", small, samples).read_bytes()
            pid = server.proc.pid
            reset_peak(pid)
            before = memory_kb(pid)["VmRSS"]
            got = asyncio.run(job_of(server, data))
            got["file_bytes"] = len(data)
            got["server_peak_growth_mb"] = round((memory_kb(pid)["VmHWM"] - before) / 1024, 1)
            out[f"{samples // 1_000_000}M"] = got
    return out


async def post_glossary(server: ServerProcess, body: bytes) -> dict[str, Any]:
    url = f"http://127.0.0.1:{server.info.http_port}/v1/glossaries"
    headers = {"Authorization": f"Bearer {OTHER}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http, http.post(url, data=body, headers=headers) as r:
        doc = await r.json()
        return {"status": r.status, "said": (doc["error"]["message"] if r.status >= 400 else doc["id"])[:160]}


def k4() -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="media-k4-"))
    out: dict[str, Any] = {}
    with served(folder) as server:
        small = json.dumps({"id": "small", "display_name": "s", "entries": []}).encode()
        out["first"] = asyncio.run(post_glossary(server, small))  # the parse process starts
        (parser,) = descendants(server.proc.pid)
        head = b'{"id": "many", "display_name": "many", "entries": ['
        body = head + b",".join([b"{}"] * ((16 * 1024 * 1024 - len(head) - 1) // 3)) + b"]}"
        reset_peak(parser)
        before = memory_kb(parser)["VmRSS"]
        got = asyncio.run(post_glossary(server, body))
        got["body_bytes"] = len(body)
        got["parse_process_mb_before"] = round(before / 1024, 1)
        got["parse_process_peak_growth_mb"] = round((memory_kb(parser)["VmHWM"] - before) / 1024, 1)
        out["empty_objects"] = got
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.security.untrusted_media")
    parser.add_argument("attack", choices=["k1", "k2", "k4"])
    parser.add_argument("--hours", type=float, default=11.7)
    parser.add_argument("--completes", type=int, default=8)
    parser.add_argument("--stop-wait", type=float, default=60.0)
    parser.add_argument("--json", type=Path)
    opts = parser.parse_args()
    got = {"k1": lambda: k1(opts.hours, opts.completes, opts.stop_wait), "k2": k2, "k4": k4}[opts.attack]()
    text = json.dumps(got, indent=1)
    print(text)
    if opts.json is not None:
        opts.json.parent.mkdir(parents=True, exist_ok=True)
        opts.json.write_text(text)


if __name__ == "__main__":
    main()
