"""Issue 87 J1: what streams with the ear (noise suppression, speaker labels) cost another tenant,
measured on a real ``translate-svc serve`` process (the test checkpoint, ``--demo-page``, a tokens
file with an ``attacker`` tenant and a ``victim`` one) and, with ``--before TREE``, on another
checkout too (e.g. the base commit's: ``git archive HEAD | tar -x -C /tmp/base87``), in one run.

- ``demo``: ``--clients`` OpenAI-door sessions, each opened with a client secret the demo page
  minted (no token), ask for ``audio.input.noise_reduction`` and stream quiet noise (24 kHz PCM16,
  100 ms an append, paced in real time; nothing for the model: only the ear and the VAD work);
- ``plain``: the same sessions without ``noise_reduction`` (what a stream costs without the ear);
- ``speakers``: ``--clients`` gRPC streams of the attacker's token with RNNoise and ``speakers=8``
  stream jfk.flac in a loop, paced in real time (the ear, the VAD, the speaker encoder, the model).

Meanwhile the victim tenant streams jfk.flac in real time over gRPC (how late each of its results
comes: arrival minus when the audio of its segment's end was sent) and a token-less health
``Check`` goes every 0.2 s (its latency, and the checks that failed). Reported per attack: those,
the attack's sessions that opened and those refused (and the first refusal's words), and the
server's CPU time meanwhile, all of it and its main thread's (the event loop's) alone.

    python -m tests.support.attacks.ear --before /tmp/base87 --clients 16 --json out/attacks_ear.json
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.attacks.bystander import realtime_lateness, speech, summary
from tests.support.attacks.checkouts import add_trees, before_after
from tests.support.attacks.client import OWN, metadata
from tests.support.attacks.unread import Served, served
from tests.support.json_result import print_and_save
from tests.support.proc import cpu_s
from translate_svc.api.v1 import translate_pb2 as pb

ATTACKS = ("demo", "plain", "speakers")
ATTACKER = "attacks-ear-attacker-7c2e4a"  # tenant attacker, uncapped
VICTIM = "attacks-ear-victim-3b9d1f"  # tenant victim
TOKENS = f"{ATTACKER} stream tenant=attacker\n{VICTIM} * tenant=victim\n"
REALTIME = "/v1/realtime/translations"
REALTIME_RATE = 24_000
CHUNK_MS = 100


def quiet_noise(seconds: float, rate: int = REALTIME_RATE) -> bytes:
    """Low white noise as PCM16 (no speech: the VAD closes no segment, the model does nothing)."""
    rng = np.random.default_rng(87)
    return (rng.standard_normal(int(seconds * rate)) * 300).astype("<i2").tobytes()


class Checks:
    """A token-less health ``Check`` every 0.2 s (10 s deadline each) on a connection of its own
    until closed: each one's latency, and those that failed."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.port}", options=OWN) as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            while True:
                t0 = time.perf_counter()
                try:
                    await stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
                except grpc.aio.AioRpcError as e:
                    self.failures.append(e.code().name)
                self.latencies.append(time.perf_counter() - t0)
                await asyncio.sleep(0.2)

    async def __aenter__(self) -> Checks:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


class Tally:
    """What the attack's sessions met: how many opened, how many were refused and the first
    refusal's words, and any other end."""

    def __init__(self) -> None:
        self.opened = 0
        self.refused = 0
        self.refusal = ""
        self.refusal_code = ""
        self.other: list[str] = []

    def refuse(self, code: str, message: str) -> None:
        self.refused += 1
        if not self.refusal:
            self.refusal, self.refusal_code = message, code

    def figures(self) -> dict[str, Any]:
        return {
            "sessions_opened": self.opened,
            "sessions_refused": self.refused,
            "refusal_code": self.refusal_code,
            "refusal": self.refusal,
            "other_ends": self.other[:4],
        }


def loop_cpu_s(pid: int) -> float:
    """The CPU time of ``pid``'s main thread so far (the server's event loop), seconds."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def demo_session(port: int, seconds: float, tally: Tally, *, noise: bool = True) -> None:
    """One session of a demo-page secret (asking for noise suppression if ``noise``), streaming
    quiet noise for ``seconds`` in real time (if it opens)."""
    pcm = quiet_noise(seconds)
    step = REALTIME_RATE * 2 * CHUNK_MS // 1000
    async with aiohttp.ClientSession() as http:
        async with http.post(f"http://127.0.0.1:{port}/demo/client_secret") as r:
            if r.status != 200:
                tally.other.append(f"mint {r.status}")
                return
            secret = (await r.json())["value"]
        async with http.ws_connect(
            f"http://127.0.0.1:{port}{REALTIME}?model=m", headers={"Authorization": f"Bearer {secret}"}
        ) as ws:
            await ws.receive_json(timeout=30)  # session.created
            reduction = {"type": "near_field"} if noise else None
            session = {"audio": {"input": {"noise_reduction": reduction}, "output": {"language": "es"}}}
            await ws.send_json({"type": "session.update", "session": {**session, "x_speech": False}})
            first = await ws.receive_json(timeout=30)
            if first.get("type") == "error":
                error = first.get("error", {})
                tally.refuse(str(error.get("code")), str(error.get("message")))
                return
            tally.opened += 1

            async def drain() -> None:
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.TEXT and '"type":"error"' in msg.data.replace(" ", ""):
                        tally.other.append(json.loads(msg.data)["error"].get("code", ""))

            reader = asyncio.create_task(drain())
            t0 = time.perf_counter()
            for k, i in enumerate(range(0, len(pcm), step)):
                await asyncio.sleep(max(0.0, t0 + k * CHUNK_MS / 1000 - time.perf_counter()))
                chunk = base64.b64encode(pcm[i : i + step]).decode()
                await ws.send_json({"type": "session.input_audio_buffer.append", "audio": chunk})
            await ws.send_json({"type": "session.close"})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reader, 30)
            reader.cancel()


async def speakers_stream(port: int, seconds: float, tally: Tally, pcm: np.ndarray) -> None:
    """One gRPC stream of the attacker's with RNNoise and ``speakers=8``: ``pcm`` (16 kHz int16)
    in a loop for ``seconds``, in real time, its results read as they come."""
    step = 16 * CHUNK_MS
    loops = int(np.ceil(seconds * 16000 / len(pcm)))
    audio = np.tile(pcm, loops)[: int(seconds * 16000)]

    async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
        cfg = pb.StreamingConfig(
            format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000),
            source_language="eng",
            target_languages=["spa"],
            output=pb.OutputOptions(text=True, speech=False, transcript=True),
            noise_suppression=pb.NOISE_SUPPRESSION_RNNOISE,
            speakers=8,
        )
        yield pb.StreamingTranslateRequest(config=cfg)
        t0 = time.perf_counter()
        for k, i in enumerate(range(0, len(audio), step)):
            await asyncio.sleep(max(0.0, t0 + k * CHUNK_MS / 1000 - time.perf_counter()))
            yield pb.StreamingTranslateRequest(audio=audio[i : i + step].astype("<i2").tobytes())

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=OWN) as ch:
        call = ch.stream_stream(
            "/translate_svc.api.v1.Translator/StreamingTranslate",
            request_serializer=pb.StreamingTranslateRequest.SerializeToString,
            response_deserializer=pb.StreamingTranslateResponse.FromString,
        )(requests(), metadata=metadata(ATTACKER), timeout=seconds + 120)
        opened = False
        try:
            async for r in call:
                if not opened and r.HasField("started"):
                    opened = True
                    tally.opened += 1
        except grpc.aio.AioRpcError as e:
            if not opened:
                tally.refuse(e.code().name, e.details() or "")
            else:
                tally.other.append(e.code().name)


async def under_attack(srv: Served, attack: str, clients: int, *, warm_s: float = 3.0) -> dict[str, Any]:
    """``attack`` by ``clients`` sessions while the victim streams jfk.flac and health is checked:
    the victim's lateness, the checks, the attack's tally and the server's CPU meanwhile."""
    pcm = speech()
    victim_s = len(pcm) / 16000
    seconds = warm_s + victim_s + 10  # the attack outlasts the victim's stream and its last result
    tally = Tally()
    if attack in ("demo", "plain"):
        attackers = [demo_session(srv.http_port, seconds, tally, noise=attack == "demo") for _ in range(clients)]
    else:
        attackers = [speakers_stream(srv.port, seconds, tally, pcm) for _ in range(clients)]
    cpu0, loop0, t0 = cpu_s(srv.pid), loop_cpu_s(srv.pid), time.perf_counter()
    running = [asyncio.create_task(a) for a in attackers]
    async with Checks(srv.port) as checks:
        await asyncio.sleep(warm_s)  # the attack is under way
        late = await realtime_lateness(f"127.0.0.1:{srv.port}", VICTIM, pcm, timeout_s=240)
    outcomes = await asyncio.gather(*running, return_exceptions=True)
    wall = time.perf_counter() - t0
    return {
        "clients": clients,
        "victim_late_s": summary(late),
        "check_s": summary(checks.latencies),
        "checks_failed": len(checks.failures),
        **tally.figures(),
        "attack_errors": [type(o).__name__ for o in outcomes if isinstance(o, BaseException)][:4],
        "server_cpu_s_per_s": round((cpu_s(srv.pid) - cpu0) / wall, 3),
        "loop_cpu_s_per_s": round((loop_cpu_s(srv.pid) - loop0) / wall, 3),
    }


def serve_args(attack: str) -> tuple[str, ...]:
    return ("--demo-page",) if attack in ("demo", "plain") else ()


async def run_tree(tree: Path, opts: argparse.Namespace) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    env = {f"TRANSLATE_SVC_LIMITS__{k.upper()}": v for k, v in (opts.limit or [])}
    for attack in opts.only:
        with served(tree, TOKENS, *serve_args(attack), env=env) as srv:
            out[attack] = await under_attack(srv, attack, opts.clients)
        with served(tree, TOKENS, *serve_args(attack), env=env) as srv:
            out[f"{attack} (control: no attack)"] = await under_attack(srv, attack, 0)
    return out


async def main(opts: argparse.Namespace) -> dict[str, Any]:
    results = await before_after(opts, run_tree)
    return {"date": time.strftime("%Y-%m-%d"), "clients": opts.clients, "results": results}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_trees(ap, ATTACKS)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument(
        "--limit",
        nargs=2,
        action="append",
        metavar=("FIELD", "VALUE"),
        help="a limits setting for the server (e.g. --limit demo_ear_streams 16)",
    )
    opts = ap.parse_args()
    result = asyncio.run(main(opts))
    print_and_save(result, opts.json)
    sys.exit(0)
