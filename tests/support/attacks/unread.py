"""Issue 52's attacks on what a client leaves unread, its secrets and the HTTP port, measured on a
real ``translate-svc serve`` process (the test checkpoint) and, with ``--before TREE``, on another
checkout too (e.g. main before the fix: ``git archive 201cb99 | tar -x -C /tmp/base``), in one run.

- ``updates``: F4. One gRPC stream sends ``StreamUpdate``s (alternating targets) for ``--seconds``
  and never reads. The server's RSS (``/proc/PID/status``) before, at the end and 3 s after the
  cancel; the updates gRPC took from the client; the worst health ``Check`` and another tenant's
  ``ListLanguages`` latency meanwhile.
- ``ws-updates``: the same on the OpenAI-compatible WebSocket (``session.update`` of the output
  language, never reading: a raw socket whose receive buffer is small).
- ``secret``: F6. A client secret minted by a token of tenant ``demo`` (the tokens file's line
  capping the demo page), tried after those lines were removed: the handshake's HTTP status.
- ``flood``: the HTTP port. A token-less client keeps ``--flooders`` half-sent requests open
  (reopening each as the server closes it) from 127.0.0.1 while a token holder opens WebSocket
  sessions, ``--tries`` of them, from 127.0.0.2 and from 127.0.0.1: how many opened, and the
  server's CPU time meanwhile (per 1,000 flood connections).

    python -m tests.support.attacks.unread --before /tmp/base --seconds 60 --json out/attacks_unread.json
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.attacks.checkouts import add_trees, before_after
from tests.support.json_result import print_and_save
from tests.support.paths import TEST_MODEL
from tests.support.proc import cpu_s, rss_mb, stop_process
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc
from translate_svc.cli import ready_file as ready

MB = 1024 * 1024
ATTACKER = "attacks-unread-attacker-5c1e9f"  # tenant a, uncapped
VICTIM = "attacks-unread-victim-8b2d7a"  # tenant b
DEMO = "attacks-unread-demo-3f6a1c"  # tenant demo, capped (as docs/security.md suggests for the page)
TOKENS = f"{ATTACKER} * tenant=a\n{VICTIM} * tenant=b\n"
DEMO_LINE = f"{DEMO} stream tenant=demo streams=1\n"
#: a request's head, not sent whole
HALF_SENT = b"GET /v1/realtime/translations HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
REALTIME = "/v1/realtime/translations"


class Served:
    """``serve`` from ``tree`` (its code first on PYTHONPATH) with a tokens file, until closed."""

    def __init__(self, tree: Path, tokens: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="attacks-unread-"))
        self.tokens = self.dir / "tokens"
        self.tokens.write_text(tokens)
        ready_file = self.dir / "ready.json"
        self.log = (self.dir / "serve.log").open("w")
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "translate_svc.cli", "serve", "--model", str(TEST_MODEL)),
                *("--host", "127.0.0.1", "--port", "0", "--http-port", "0", "--tokens-file", str(self.tokens)),
                *args,
                *("--ready-file", str(ready_file)),
            ],
            cwd=tree,
            env={**os.environ, "PYTHONPATH": str(tree), **(env or {})},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        info = ready.wait(ready_file, self.proc, 300)
        self.port, self.pid = info.port, info.pid
        assert info.http_port is not None
        self.http_port = info.http_port

    def close(self) -> None:
        stop_process(self.proc)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def served(tree: Path, tokens: str = TOKENS, *args: str, env: dict[str, str] | None = None) -> Iterator[Served]:
    s = Served(tree, tokens, *args, env=env)
    try:
        yield s
    finally:
        s.close()


def auth(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


class Victim:
    """Another tenant's calls and health ``Check``, every 0.2 s on a channel of their own, while an
    attack runs: the worst latency of each and any failure."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.worst: dict[str, float] = {"check": 0.0, "list_languages": 0.0}
        self.failures: list[str] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.port}") as ch:
            health = health_pb2_grpc.HealthStub(ch)
            stub = pb_grpc.TranslatorStub(ch)
            calls: dict[str, Callable[[], Awaitable[Any]]] = {
                "check": lambda: health.Check(health_pb2.HealthCheckRequest(), timeout=10),
                "list_languages": lambda: stub.ListLanguages(
                    pb.ListLanguagesRequest(), metadata=auth(VICTIM), timeout=10
                ),
            }
            while True:
                for name, call in calls.items():
                    t0 = time.perf_counter()
                    try:
                        await call()
                    except grpc.aio.AioRpcError as e:
                        self.failures.append(f"{name}: {e.code().name}")
                    self.worst[name] = max(self.worst[name], time.perf_counter() - t0)
                await asyncio.sleep(0.2)

    async def __aenter__(self) -> Victim:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def summary(self) -> dict[str, Any]:
        return {
            "worst_check_ms": round(self.worst["check"] * 1000, 1),
            "worst_list_languages_ms": round(self.worst["list_languages"] * 1000, 1),
            "victim_failures": len(self.failures),
        }


def unread_figures(srv: Served, sent: int, before: float, end: float, victim: Victim) -> dict[str, Any]:
    """What an attack that never read cost: the updates the client got written, the server's RSS
    growth at the end and 3 s after the client left (now), and the victim's view meanwhile."""
    return {
        "updates_taken": sent,
        "rss_before_mb": round(before, 1),
        "rss_growth_mb": round(end - before, 1),
        "rss_growth_after_cancel_mb": round(rss_mb(srv.pid) - before, 1),
        **victim.summary(),
    }


def update(k: int) -> pb.StreamingTranslateRequest:
    targets = ("spa", "fra") if k % 2 else ("spa",)
    return pb.StreamingTranslateRequest(update=pb.StreamUpdate(targets=pb.TargetLanguages(languages=targets)))


async def grpc_updates(srv: Served, seconds: float) -> dict[str, Any]:
    """F4 on the gRPC door: one stream sends updates for ``seconds`` and never reads."""
    config = pb.StreamingConfig(
        format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000, channels=1),
        source_language="eng",
        target_languages=["spa"],
        output=pb.OutputOptions(speech=False),
    )
    before = rss_mb(srv.pid)
    sent = 0
    # a client whose window takes in little (the SDK's 64 KiB, BDP probing off): the answers it
    # does not read stay in the server, not in the client's transport
    options = [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 64 * 1024)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{srv.port}", options=options) as ch, Victim(srv.port) as victim:
        call = pb_grpc.TranslatorStub(ch).StreamingTranslate(metadata=auth(ATTACKER))
        await call.write(pb.StreamingTranslateRequest(config=config))
        deadline = time.monotonic() + seconds
        with contextlib.suppress(TimeoutError):
            while (left := deadline - time.monotonic()) > 0:
                await asyncio.wait_for(call.write(update(sent)), left)
                sent += 1
        end = rss_mb(srv.pid)
        call.cancel()
        await asyncio.sleep(3)
    return unread_figures(srv, sent, before, end, victim)


def ws_frame(text: str) -> bytes:
    """One masked WebSocket text frame (a client's), RFC 6455."""
    data = text.encode()
    mask = os.urandom(4)
    n = len(data)
    head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big"))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


async def ws_open(
    port: int, token: str, query: str = "model=m&source_language=en"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw WebSocket on the realtime path, upgraded (its 101 read), as a client that will never
    read again: its socket's receive buffer small, so what the server sends stays in the server."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET {REALTIME}?{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Authorization: Bearer {token}\r\n\r\n".encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"the upgrade was refused: {head[:60]!r}")
    return reader, writer


def session_update(lang: str) -> str:
    return json.dumps({"type": "session.update", "session": {"audio": {"output": {"language": lang}}}})


async def ws_updates(srv: Served, seconds: float) -> dict[str, Any]:
    """F4 on the OpenAI-compatible WebSocket: the config (``session.update`` to Spanish), then
    ``session.update`` to a language the model lacks for ``seconds``, never reading (a raw socket
    that reads nothing after the upgrade). Each is an update of the stream, refused by the stream
    core (the session stays Spanish, so the next one is a change again), answered with an error."""
    before = rss_mb(srv.pid)
    sent = 0
    async with Victim(srv.port) as victim:
        _, writer = await ws_open(srv.http_port, ATTACKER)
        deadline = time.monotonic() + seconds
        with contextlib.suppress(TimeoutError):
            while (left := deadline - time.monotonic()) > 0:
                writer.write(ws_frame(session_update("zz" if sent else "es")))
                await asyncio.wait_for(writer.drain(), left)
                sent += 1
        end = rss_mb(srv.pid)
        writer.transport.abort()  # gone, unread
        await asyncio.sleep(3)
    return unread_figures(srv, sent, before, end, victim)


async def half_sent_loop(port: int, stop: asyncio.Event, opened: list[int]) -> None:
    """One of the flooder's connections: a request's head not sent whole, reopened each time the
    server closes it, until ``stop``."""
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        opened[0] += 1
        try:
            writer.write(HALF_SENT)
            read = asyncio.ensure_future(reader.read())
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait({read, stopped}, return_when=asyncio.FIRST_COMPLETED)
            for f in (read, stopped):
                f.cancel()
        except OSError:
            pass
        finally:
            writer.transport.abort()


async def ws_session(port: int, token: str, local: str) -> str:
    """A token holder's realtime session from address ``local``: "ok" once ``session.created``
    came, else what the handshake answered."""
    connector = aiohttp.TCPConnector(local_addr=(local, 0), force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http:
        try:
            async with http.ws_connect(
                f"http://127.0.0.1:{port}{REALTIME}?model=m",
                headers={"Authorization": f"Bearer {token}"},
                timeout=aiohttp.ClientWSTimeout(ws_close=5),
            ) as ws:
                msg = await ws.receive(timeout=10)
                return "ok" if msg.type == aiohttp.WSMsgType.TEXT and '"session.created"' in msg.data else str(msg.type)
        except aiohttp.WSServerHandshakeError as e:
            return str(e.status)
        except (aiohttp.ClientError, TimeoutError) as e:
            return type(e).__name__


async def http_flood(srv: Served, flooders: int, tries: int, every_s: float = 1.0) -> dict[str, Any]:
    """The HTTP port: ``flooders`` half-sent requests kept open from 127.0.0.1 while a token
    holder opens ``tries`` sessions from 127.0.0.2 and as many from 127.0.0.1."""
    stop = asyncio.Event()
    opened = [0]
    before, cpu_before = rss_mb(srv.pid), cpu_s(srv.pid)
    loops = [asyncio.create_task(half_sent_loop(srv.http_port, stop, opened)) for _ in range(flooders)]
    outcomes: dict[str, list[str]] = {"127.0.0.2": [], "127.0.0.1": []}
    try:
        async with Victim(srv.port) as victim:
            await asyncio.sleep(2)  # the flood in place
            for _ in range(tries):
                for local, got in outcomes.items():
                    got.append(await ws_session(srv.http_port, VICTIM, local))
                await asyncio.sleep(every_s)
            peak, cpu = rss_mb(srv.pid), cpu_s(srv.pid) - cpu_before
    finally:
        stop.set()
        await asyncio.gather(*loops, return_exceptions=True)
    return {
        "flood_connections_opened": opened[0],
        "sessions_opened_other_address": f"{outcomes['127.0.0.2'].count('ok')}/{tries}",
        "sessions_opened_same_address": f"{outcomes['127.0.0.1'].count('ok')}/{tries}",
        "refusals": sorted({o for got in outcomes.values() for o in got if o != "ok"}),
        "rss_growth_mb": round(peak - before, 1),
        "server_cpu_s": round(cpu, 1),
        "server_cpu_ms_per_1000_connections": round(cpu * 1e6 / max(1, opened[0]), 1),
        **victim.summary(),
    }


async def mint(http: aiohttp.ClientSession, port: int, token: str) -> tuple[int, str]:
    """A client secret minted with ``token``: the HTTP status and the secret ("" if refused)."""
    async with http.post(
        f"http://127.0.0.1:{port}{REALTIME}/client_secrets",
        json={"expires_after": {"seconds": 600}},
        headers={"Authorization": f"Bearer {token}"},
    ) as r:
        return r.status, (await r.json())["value"] if r.status == 200 else ""


async def handshake(http: aiohttp.ClientSession, port: int, secret: str) -> int:
    """The realtime handshake's status with ``secret`` (101: a session opened)."""
    try:
        async with http.ws_connect(
            f"http://127.0.0.1:{port}{REALTIME}?model=m", headers={"Authorization": f"Bearer {secret}"}
        ) as ws:
            await ws.receive(timeout=10)
            return 101
    except aiohttp.WSServerHandshakeError as e:
        return e.status


async def demo_secret(srv: Served) -> dict[str, Any]:
    """F6: a secret minted by the ``demo`` tenant's token, before and after the tenant's lines are
    removed from the tokens file (the removal seen once the token itself is refused)."""
    async with aiohttp.ClientSession() as http:
        status, secret = await mint(http, srv.http_port, DEMO)
        assert status == 200, status
        while_listed = await handshake(http, srv.http_port, secret)
        tmp = srv.tokens.with_suffix(".new")
        tmp.write_text(TOKENS)
        os.replace(tmp, srv.tokens)
        end = time.monotonic() + 30
        while (await mint(http, srv.http_port, DEMO))[0] != 401:  # the file re-read: the token is gone
            assert time.monotonic() < end, "the tokens file was not re-read"
            await asyncio.sleep(0.2)
        return {
            "handshake_while_listed": while_listed,
            "handshake_after_removal": await handshake(http, srv.http_port, secret),
        }


ATTACKS = ("updates", "ws-updates", "secret", "flood")


async def run_tree(tree: Path, opts: argparse.Namespace) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for attack in opts.only:
        if attack == "updates":
            with served(tree) as srv:
                out[attack] = await grpc_updates(srv, opts.seconds)
        elif attack == "ws-updates":
            with served(tree) as srv:
                out[attack] = await ws_updates(srv, opts.seconds)
        elif attack == "secret":
            with served(tree, TOKENS + DEMO_LINE, "--demo-page") as srv:
                out[attack] = await demo_secret(srv)
        elif attack == "flood":
            with served(tree) as srv:
                out[attack] = await http_flood(srv, opts.flooders, opts.tries)
        print(f"{tree}: {attack}: {out[attack]}", file=sys.stderr, flush=True)
    return out


async def main(opts: argparse.Namespace) -> dict[str, Any]:
    results = await before_after(opts, run_tree)
    return {"seconds": opts.seconds, "flooders": opts.flooders, "tries": opts.tries, "results": results}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_trees(ap, ATTACKS)
    ap.add_argument("--seconds", type=float, default=60.0, help="how long the update attacks run")
    ap.add_argument("--flooders", type=int, default=700, help="half-sent requests kept open by the flooder")
    ap.add_argument("--tries", type=int, default=10, help="token holder's sessions per address during the flood")
    o = ap.parse_args()
    print_and_save(asyncio.run(main(o)), o.json)
