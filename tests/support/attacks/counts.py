"""Issue 52, F3 and F5 re-measured: what one caller's requests cost everyone else, before and after.

Each attack runs against ``translate-svc serve`` (the test checkpoint, ``--riva``, a tokens file with
an ``attacker`` tenant and a ``victim`` one) started as a separate process from each ``--tree`` in
turn (``PYTHONPATH`` set to it), so one run gives the figures of two checkouts side by side:

- ``term_configs`` (F3): ``--clients`` attackers repeat 1 MB term configs for ``--seconds`` (half of
  them Riva's, ``dnt_phrases = ["a," * 500,000]``, half ours, 200,000 ``Term``s; each call opened,
  its one config sent, its answer awaited, again) while the victim tenant streams jfk.flac in real
  time (100 ms chunks, paced) and a health ``Check`` is sent every 100 ms. Reported: the worst and
  median ``Check`` latency, and how late the victim's segment results come (arrival minus when the
  audio of the segment's end was sent), with and without the attack, and the configs sent.
- ``frameless_opus`` (F5): audio that carries no frame data, as fast as the door takes it: a Riva
  ``OGGOPUS`` stream of one-byte Opus packets (TOC code 1 of a 60 ms SILK configuration: two empty
  frames, 120 ms), our OPUS stream of the same packets one per message, and our stream of
  ``AudioPacket`` timestamps that skip 120 s. Reported per attack: the bytes sent, the audio they
  claim, how the call ended, and the server's CPU time (``/proc/PID/stat``) per KiB sent.

    python -m tests.support.attacks.counts --tree before=/tmp/base --tree after=. --json out/attacks_counts.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import grpc
import numpy as np
from riva.client.proto import riva_asr_pb2 as asr
from riva.client.proto import riva_audio_pb2 as riva_audio
from riva.client.proto import riva_nmt_pb2 as nmt

import translate_svc.errors
from tests.support.attacks.bystander import check_loop, realtime_lateness, speech
from tests.support.json_result import print_and_save
from tests.support.paths import REPO, TEST_MODEL
from tests.support.proc import cpu_s, stop_process
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.cli import ready_file as ready

ATTACKER, VICTIM = "attacker-token-5c1e9a7b3d", "victim-token-8f2d4b6a0c"
TOKENS = f"{ATTACKER} stream tenant=attacker\n{VICTIM} * tenant=victim\n"
RIVA_S2T = "/nvidia.riva.nmt.RivaTranslation/StreamingTranslateSpeechToText"
OURS = "/translate_svc.api.v1.Translator/StreamingTranslate"
#: a TOC byte alone: configuration 3 (SILK narrowband, 60 ms), code 1 (two frames of equal size:
#: here both empty), so 120 ms of "audio" libopus conceals (RFC 6716, 3.1 and 3.2.3)
FRAMELESS_PACKET = bytes([3 << 3 | 1])
FRAMELESS_SAMPLES = 5760


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


# -- the server ------------------------------------------------------------------------------------


@dataclass
class Server:
    """``translate-svc serve`` from ``tree`` in a process of its own (its CPU is its own)."""

    #: the checkout whose ``translate_svc`` serves (``PYTHONPATH``): by default the one imported here
    tree: Path = Path(translate_svc.errors.__file__).resolve().parents[1]  # translate_svc is a namespace
    model: Path = TEST_MODEL
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    pid: int = 0

    @contextlib.contextmanager
    def running(self) -> Iterator[Server]:
        tmp = Path(tempfile.mkdtemp(prefix="attacks-counts-"))
        (tmp / "tokens").write_text(TOKENS)
        tree = self.tree.resolve()  # the server and, beside it, the client distribution of that checkout
        env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{tree / 'clients/python/src'}", **self.env}
        args = ["--model", str(self.model.resolve()), "--port", "0", "--riva", "--tokens-file", str(tmp / "tokens")]
        proc = subprocess.Popen(
            [sys.executable, "-m", "translate_svc.cli", "serve", *args, "--ready-file", str(tmp / "ready.json")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=tmp,
        )
        try:
            self.port, self.pid = ready.wait(tmp / "ready.json", proc, 300).port, proc.pid
            yield self
        finally:
            stop_process(proc)
            shutil.rmtree(tmp, ignore_errors=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def channel(self) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(f"127.0.0.1:{self.port}", options=[("grpc.max_send_message_length", -1)])


async def raw_call(
    channel: grpc.aio.Channel, method: str, messages: Sequence[bytes], token: str, deadline_s: float
) -> tuple[grpc.StatusCode, str, int]:
    """One stream of already serialized ``messages`` (half-closed after them): its status, its
    message and how many responses came."""
    call = channel.stream_stream(method)(iter(messages), metadata=bearer(token), timeout=deadline_s)
    n = 0
    try:
        async for _ in call:
            n += 1
        return grpc.StatusCode.OK, "", n
    except grpc.aio.AioRpcError as e:
        return e.code(), e.details() or "", n


# -- F3: 1 MB term configs ----------------------------------------------------------------------------


def riva_term_config(items: int = 500_000) -> bytes:
    """A Riva speech-to-text config whose one ``dnt_phrases`` element is ``"a,"`` times ``items`` (1 MB)."""
    recognition = asr.RecognitionConfig(
        encoding=riva_audio.LINEAR_PCM, sample_rate_hertz=16000, language_code="en-US", audio_channel_count=1
    )
    msg = nmt.StreamingTranslateSpeechToTextRequest(
        config=nmt.StreamingTranslateSpeechToTextConfig(
            asr_config=asr.StreamingRecognitionConfig(config=recognition),
            translation_config=nmt.TranslationConfig(
                source_language_code="en-US", target_language_code="es-ES", dnt_phrases=["a," * items]
            ),
        )
    )
    return bytes(msg.SerializeToString())


def our_term_config(terms: int = 200_000) -> bytes:
    """Our StreamingConfig with ``terms`` one-letter Terms (1 MB)."""
    cfg = pb.StreamingConfig(
        format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000),
        target_languages=["spa"],
        terms=[pb.Term(phrase="a") for _ in range(terms)],
    )
    return bytes(pb.StreamingTranslateRequest(config=cfg).SerializeToString())


async def repeat_config(server: Server, method: str, config: bytes, stop: asyncio.Event, sent: list[int]) -> None:
    """Open a call, send ``config``, await its answer; again until ``stop``."""
    async with server.channel() as ch:
        while not stop.is_set():
            await raw_call(ch, method, [config], ATTACKER, 30)
            sent[0] += 1


@dataclass
class Observed:
    checks: list[float] = field(default_factory=list)
    late: list[float] = field(default_factory=list)
    configs_sent: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "check_worst_s": round(max(self.checks), 3) if self.checks else None,
            "check_median_s": round(statistics.median(self.checks), 3) if self.checks else None,
            "checks": len(self.checks),
            "results_late_worst_s": round(max(self.late), 2) if self.late else None,
            "results_late_median_s": round(statistics.median(self.late), 2) if self.late else None,
            "segments": len(self.late),
            "configs_sent": self.configs_sent,
        }


async def under_term_configs(server: Server, pcm: np.ndarray, *, clients: int, head_start_s: float = 1.0) -> Observed:
    """The victim's stream and the Check loop while ``clients`` attackers repeat 1 MB term configs
    (none: the control); the attack starts ``head_start_s`` before the victim and stops after it."""
    stop, seen = asyncio.Event(), Observed()
    kinds = [(RIVA_S2T, riva_term_config()), (OURS, our_term_config())]
    counts = [[0] for _ in range(clients)]
    attackers = [asyncio.create_task(repeat_config(server, *kinds[k % 2], stop, counts[k])) for k in range(clients)]
    checks = asyncio.create_task(check_loop(server.address, stop, seen.checks, every_s=0.1, timeout_s=60))
    try:
        if clients:
            await asyncio.sleep(head_start_s)
        seen.late = await realtime_lateness(server.address, VICTIM, pcm, timeout_s=120)
    finally:
        stop.set()
        await asyncio.gather(checks, *attackers, return_exceptions=True)
    seen.configs_sent = sum(c[0] for c in counts)
    return seen


async def term_configs(server: Server, clients: int) -> dict[str, Any]:
    pcm = speech()
    control = await under_term_configs(server, pcm, clients=0)
    attacked = await under_term_configs(server, pcm, clients=clients)
    return {"control": control.summary(), "attacked": attacked.summary()}


# -- F5: audio without frame data --------------------------------------------------------------------


def frameless_ogg(kib: float) -> bytes:
    """An Ogg Opus stream (PyAV's Ogg muxer) of about ``kib`` KiB whose packets are
    ``FRAMELESS_PACKET``: 120 ms each, no frame data."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="ogg") as out:
        stream = out.add_stream("libopus", rate=48000, layout="mono")
        stream.codec_context.open()  # its OpusHead
        n = 0
        while buf.tell() < kib * 1024:
            for _ in range(1000):
                p = av.Packet(FRAMELESS_PACKET)
                p.stream, p.pts, p.dts, p.duration = (
                    stream,
                    n * FRAMELESS_SAMPLES,
                    n * FRAMELESS_SAMPLES,
                    FRAMELESS_SAMPLES,
                )
                p.time_base = Fraction(1, 48000)
                out.mux(p)
                n += 1
    return buf.getvalue()


def riva_ogg_messages(kib: float, piece: int = 4096) -> list[bytes]:
    """Riva's StreamingTranslateSpeechToText: an OGGOPUS config, then ``frameless_ogg`` in pieces."""
    recognition = asr.RecognitionConfig(encoding=riva_audio.OGGOPUS, language_code="en-US", audio_channel_count=1)
    cfg = nmt.StreamingTranslateSpeechToTextRequest(
        config=nmt.StreamingTranslateSpeechToTextConfig(
            asr_config=asr.StreamingRecognitionConfig(config=recognition),
            translation_config=nmt.TranslationConfig(source_language_code="en-US", target_language_code="es-ES"),
        )
    )
    data = frameless_ogg(kib)
    pieces = [
        nmt.StreamingTranslateSpeechToTextRequest(audio_content=data[i : i + piece]) for i in range(0, len(data), piece)
    ]
    return [cfg.SerializeToString(), *(p.SerializeToString() for p in pieces)]


def our_config(encoding: int = pb.OPUS, rate: int = 48000) -> bytes:
    cfg = pb.StreamingConfig(
        format=pb.AudioFormat(encoding=encoding, sample_rate_hz=rate), source_language="eng", target_languages=["spa"]
    )
    return bytes(pb.StreamingTranslateRequest(config=cfg).SerializeToString())


def our_frameless_messages(kib: float) -> list[bytes]:
    """Our OPUS stream: ``FRAMELESS_PACKET`` one per message, about ``kib`` KiB of messages."""
    one = pb.StreamingTranslateRequest(audio=FRAMELESS_PACKET).SerializeToString()
    return [our_config(), *[one] * int(kib * 1024 / (len(one) + 5))]  # 5: gRPC's length prefix


def our_skip_messages(skips: int, skip_s: float = 120.0) -> list[bytes]:
    """Our OPUS stream of ``FRAMELESS_PACKET``s in ``AudioPacket``s whose timestamps skip ``skip_s`` each."""
    step = int(skip_s * 48000)
    packets = [
        pb.StreamingTranslateRequest(packet=pb.AudioPacket(data=FRAMELESS_PACKET, timestamp=k * step))
        for k in range(skips + 1)
    ]
    return [our_config(), *(p.SerializeToString() for p in packets)]


def wire_kib(messages: Sequence[bytes]) -> float:
    """What the messages after the config weigh on the wire, gRPC's 5-byte prefixes included."""
    return sum(len(m) + 5 for m in messages[1:]) / 1024


async def cpu_of(server: Server, method: str, messages: Sequence[bytes], claimed_s: float) -> dict[str, Any]:
    """Send ``messages`` as the attacker (as fast as the server takes them), until the call ends."""
    before, t = cpu_s(server.pid), time.perf_counter()
    async with server.channel() as ch:
        code, details, _ = await raw_call(ch, method, messages, ATTACKER, 120)
    await asyncio.sleep(0.5)  # what the call left running (its open speech translated) ends
    spent, kib = cpu_s(server.pid) - before, wire_kib(messages)
    return {
        "kib_sent": round(kib, 1),
        "audio_claimed_s": round(claimed_s, 1),
        "status": code.name,
        "message": details[:160],
        "call_s": round(time.perf_counter() - t, 2),
        "server_cpu_s": round(spent, 2),
        "server_cpu_ms_per_kib": round(1000 * spent / kib, 1),
    }


async def frameless_opus(server: Server, kib: float) -> dict[str, Any]:
    riva = riva_ogg_messages(kib)
    ours = our_frameless_messages(kib)
    skips = our_skip_messages(2)
    per_byte = FRAMELESS_SAMPLES / 48000
    return {
        "riva_oggopus": await cpu_of(server, RIVA_S2T, riva, per_byte * len(frameless_ogg(kib))),
        "ours_opus": await cpu_of(server, OURS, ours, per_byte * (len(ours) - 1)),
        "ours_timestamp_skips": await cpu_of(server, OURS, skips, 2 * 120.0),
    }


async def main(opts: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "clients": opts.clients, "kib": opts.kib}
    for name, tree in opts.tree:
        with Server(Path(tree)).running() as server:
            row: dict[str, Any] = {"tree": tree}
            if "f3" in opts.only:
                row["term_configs"] = await term_configs(server, opts.clients)
            if "f5" in opts.only:
                row["frameless_opus"] = await frameless_opus(server, opts.kib)
            result[name] = row
    return result


def tree_arg(value: str) -> tuple[str, str]:
    name, _, path = value.partition("=")
    return (name, path) if path else ("this", name)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", type=tree_arg, action="append", help="NAME=PATH: a checkout to serve from (repeatable)")
    ap.add_argument("--clients", type=int, default=4, help="F3: attackers repeating 1 MB term configs")
    ap.add_argument("--kib", type=float, default=16.0, help="F5: KiB of frame-less audio per attack")
    ap.add_argument("--only", nargs="+", default=["f3", "f5"], choices=["f3", "f5"])
    ap.add_argument("--json")
    args = ap.parse_args()
    args.tree = args.tree or [("this", str(REPO))]
    print_and_save(asyncio.run(main(args)), args.json)
