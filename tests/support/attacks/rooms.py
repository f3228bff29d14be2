"""Issue 57's attacks on rooms and listeners, one function per attack, and a run that measures them.

Each attack is an async function over a server's addresses (and a token): it opens what the attack
opens, from this process, and returns what its client saw, as plain values. Tests run them as a
separate client process (``python -m tests.support.attacks.rooms <attack> ...``: a ``started`` line
once the attack is under way, then one JSON object on stdout), so the attack's connections, CPU and
memory are not the test's. ``measure`` starts a real ``translate-svc serve`` (the test checkpoint,
``--http-port``, a tokens file of an uncapped tenant, a ``languages``-only token, a listen-only
token and another tenant) from each checkout, runs every attack against each, scaled to run in a
few minutes, and reports the figures side by side:

    python -m tests.support.attacks.rooms measure --checkout /tmp/base57rooms --checkout . --json out/rooms.json

Attacks:

- ``qr_flood``: token-less clients ask for ``/listen/<room>/qr.svg`` of ever new room names, with a
  long ``Host`` (each address a new code to draw); the other tenant's health ``Check`` and
  real-time results meanwhile (``under_qr_flood``).
- ``silent_listen``: ``Listen`` calls that never send their request, each reopened as it ends.
- ``large_listen``: concurrent ``Listen`` calls of one large request each (the caller reads the
  server's peak RSS around it).
- ``many_listeners``: one tenant's listeners of one room, over gRPC or the WebSocket, held open.
- ``many_rooms``: one tenant listens in ever new rooms, then leaves them all.
- ``fast_speaker``: one speaker sends speech into a room as fast as the server takes it (the
  server's RSS, held by the room's backlog, read by the caller).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import numpy as np

from tests.support.attacks.bystander import STREAM, check_loop, probe, realtime_lateness, speech, summary
from tests.support.attacks.checkouts import add_measure, commit, save_runs
from tests.support.attacks.client import OWN, metadata, most_held, silent
from tests.support.proc import cpu_s, peak_rss_growth_mb, stop_process

MB = 1024 * 1024
LISTEN = "/translate_svc.api.v1.Translator/Listen"
#: the tokens file ``measure`` serves with
TOKENS = {
    "uncapped": "rooms-attacks-uncapped-6a1f",  # every right, no cap
    "languages": "rooms-attacks-languages-93c2",  # ListLanguages only: no room
    "listener": "rooms-attacks-listener-2e7b",  # listen to any room, nothing else
    "other": "rooms-attacks-other-c41d",  # the tenant whose service is watched
}
TOKENS_FILE = (
    f"{TOKENS['uncapped']} * tenant=acme\n"
    f"{TOKENS['languages']} languages\n"
    f"{TOKENS['listener']} listen=* tenant=ears\n"
    f"{TOKENS['other']} * tenant=other\n"
)


def listen_request(room: str, language: str = "spa") -> bytes:
    from translate_svc.api.v1 import translate_pb2 as pb

    return bytes(pb.ListenRequest(room=room, language=language).SerializeToString())


# -- the QR flood ---------------------------------------------------------------------------------


async def qr_flood(
    http: str,
    *,
    clients: int = 32,
    seconds: float = 20.0,
    host_chars: int = 200,
    started: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """``clients`` token-less loops, each asking for the QR code of a new room name (and a
    ``host_chars`` ``Host``: a long address, a costly code) as soon as its last answer came, for
    ``seconds``. Returns the answers' statuses."""
    host = "q" * host_chars + ".example"
    codes: Counter[str] = Counter()
    tag = secrets.token_hex(3)
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients), timeout=timeout) as session:

        async def one(k: int) -> None:
            n = 0
            while loop.time() < end:
                n += 1
                try:
                    async with session.get(f"{http}/listen/r{tag}-{k}-{n}/qr.svg", headers={"Host": host}) as r:
                        await r.read()
                        codes[str(r.status)] += 1
                except (aiohttp.ClientError, TimeoutError) as e:
                    codes[type(e).__name__] += 1

        tasks = [asyncio.create_task(one(k)) for k in range(clients)]
        started()
        await asyncio.gather(*tasks)
    return {"attack": "qr_flood", "clients": clients, "seconds": seconds, "codes": dict(codes)}


async def under_qr_flood(served: Served, *, clients: int, seconds: float) -> dict[str, Any]:
    """The other tenant's health ``Check`` (every 200 ms) and real-time stream of jfk.flac during
    ``qr_flood`` (none: the control), and the server's CPU."""
    pcm = speech()
    stop = asyncio.Event()
    checks: list[float] = []
    cpu = cpu_s(served.pid)
    flood = asyncio.ensure_future(qr_flood(served.http, clients=clients, seconds=seconds)) if clients else None
    await asyncio.sleep(1.0)
    checker = asyncio.create_task(check_loop(served.address, stop, checks))
    try:
        late = await realtime_lateness(served.address, TOKENS["other"], pcm)
    finally:
        stop.set()
        await checker
    flooded = await flood if flood is not None else None
    return {
        "qr_flood": flooded,
        "health_check_s": summary(checks),
        "results_late_s": summary(late, 2),
        "server_cpu_s": round(cpu_s(served.pid) - cpu, 1),
    }


# -- Listen calls ---------------------------------------------------------------------------------


async def silent_listen(
    address: str,
    token: str | None,
    *,
    slots: int = 1200,
    connections: int = 4,
    seconds: float = 20.0,
    reopen_s: float = 0.05,
    started: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """``slots`` Listen calls that never send their ListenRequest, spread over ``connections``, each
    reopened ``reopen_s`` after the server ends it, for ``seconds``. Returns the most held at once (open
    for over a second: admitted) and how the ended ones ended."""
    release = asyncio.Event()
    codes: Counter[str] = Counter()
    opened_at: dict[int, float] = {}
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    chs = [grpc.aio.insecure_channel(address, options=OWN) for _ in range(connections)]
    try:

        async def slot(k: int) -> None:
            listen = chs[k % connections].stream_stream(LISTEN)
            while loop.time() < end:
                opened_at[k] = loop.time()
                call = listen(silent(release), metadata=metadata(token))
                try:
                    async with asyncio.timeout(max(0.0, end - loop.time())):
                        async for _ in call:
                            pass
                    codes["OK"] += 1
                except grpc.aio.AioRpcError as e:
                    codes[e.code().name] += 1
                except TimeoutError:
                    call.cancel()
                    break
                finally:
                    opened_at.pop(k, None)
                await asyncio.sleep(reopen_s)

        tasks = [asyncio.create_task(slot(k)) for k in range(slots)]
        most = await most_held(opened_at, end, started)
        release.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for ch in chs:
            await ch.close(grace=None)
    return {"attack": "silent_listen", "slots": slots, "seconds": seconds, "held_most": most, "codes": dict(codes)}


async def large_listen(
    address: str,
    token: str | None,
    *,
    calls: int = 96,
    mib: float = 3.9,
    started: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """``calls`` concurrent Listen calls, each one request of ``mib`` MiB (zeros: the server's size
    check is what is measured), just under the port's 4 MiB receive limit. Returns their statuses."""
    payload = bytes(int(mib * MB))
    options = [*OWN, ("grpc.max_send_message_length", -1)]
    codes: Counter[str] = Counter()
    details: set[str] = set()
    async with grpc.aio.insecure_channel(address, options=options) as ch:
        listen = ch.unary_stream(LISTEN)

        async def one() -> None:
            try:
                async for _ in listen(payload, metadata=metadata(token), timeout=120):
                    pass
                codes["OK"] += 1
            except grpc.aio.AioRpcError as e:
                codes[e.code().name] += 1
                details.add((e.details() or "")[:120])

        started()
        await asyncio.gather(*(one() for _ in range(calls)))
    return {"attack": "large_listen", "calls": calls, "mib": mib, "codes": dict(codes), "details": sorted(details)}


async def _hold_listen(ch: grpc.aio.Channel, room: str, token: str, codes: Tally, release: asyncio.Event) -> None:
    """One ``Listen`` of ``room``: counted "let in" at its first event and held until ``release``,
    or counted by the status that refused it."""
    call = ch.unary_stream(LISTEN)(listen_request(room), metadata=metadata(token))
    try:
        async for _ in call:
            codes.add("let in")
            await release.wait()
            call.cancel()
            return
    except grpc.aio.AioRpcError as e:
        codes.add(e.code().name)


async def many_listeners(
    address: str,
    http: str,
    token: str,
    *,
    count: int = 1024,
    door: str = "grpc",
    room: str = "hall",
    hold_s: float = 10.0,
    started: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """One tenant opens ``count`` listeners of ``room`` (``door``: ``grpc`` Listen calls over
    connections of at most 256 calls, or ``ws`` WebSockets) and holds those let in for ``hold_s``.
    Returns how many were let in (their first event came) and how the others were refused."""
    codes = Tally(count)
    release = asyncio.Event()
    if door == "grpc":
        chs = [grpc.aio.insecure_channel(address, options=OWN) for _ in range(-(-count // 256))]

        async def one(k: int) -> None:
            await _hold_listen(chs[k // 256], room, token, codes, release)

        tasks = [asyncio.create_task(one(k)) for k in range(count)]
        try:
            await codes.wait(60)
            started()
            await asyncio.sleep(hold_s)
        finally:
            release.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            for ch in chs:
                await ch.close(grace=None)
    else:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            sockets: list[aiohttp.ClientWebSocketResponse] = []

            async def ws_one() -> None:
                url = f"{http.replace('http', 'ws', 1)}/v1/rooms/{room}/listen?language=spa"
                try:
                    ws = await session.ws_connect(url, headers={"Authorization": f"Bearer {token}"})
                except aiohttp.WSServerHandshakeError as e:
                    codes.add(str(e.status))
                    return
                except aiohttp.ClientError as e:
                    codes.add(type(e).__name__)
                    return
                sockets.append(ws)
                codes.add("let in")

            await asyncio.gather(*(ws_one() for _ in range(count)))
            started()
            try:
                await asyncio.sleep(hold_s)
            finally:
                await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return {"attack": "many_listeners", "door": door, "count": count, "let_in": codes["let in"], "codes": dict(codes)}


async def many_rooms(
    address: str,
    token: str,
    *,
    count: int = 256,
    started: Callable[[], None] = lambda: None,
    while_held: Callable[[], Any] | None = None,
) -> dict[str, Any]:
    """One tenant listens in ``count`` new rooms (one listener each, on four connections), holds
    them while ``while_held`` runs (awaited), then leaves them all. Returns how many were let in."""
    codes = Tally(count)
    release = asyncio.Event()
    tag = secrets.token_hex(3)
    chs = [grpc.aio.insecure_channel(address, options=OWN) for _ in range(4)]

    async def one(k: int) -> None:
        await _hold_listen(chs[k % 4], f"room-{tag}-{k}", token, codes, release)

    tasks = [asyncio.create_task(one(k)) for k in range(count)]
    seen: Any = None
    try:
        await codes.wait(60)
        started()
        if while_held is not None:
            seen = await while_held()
    finally:
        release.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for ch in chs:
            await ch.close(grace=None)
    return {"attack": "many_rooms", "count": count, "codes": dict(codes), "while_held": seen}


async def open_room(address: str, token: str, room: str) -> str:
    """Another tenant listens in a new room: ``let in`` or the refusal's status (then leaves)."""
    async with grpc.aio.insecure_channel(address, options=OWN) as ch:
        call = ch.unary_stream(LISTEN)(listen_request(room), metadata=metadata(token), timeout=30)
        try:
            async for _ in call:
                call.cancel()
                return "let in"
        except grpc.aio.AioRpcError as e:
            return f"{e.code().name}: {(e.details() or '')[:100]}"
    return "ended"


async def fast_speaker(
    address: str,
    token: str,
    *,
    room: str = "stage",
    audio_s: float = 600.0,
    targets: tuple[str, ...] = ("spa", "fra", "deu", "por"),
    rate: int = 48000,
    started: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """One speaker sends ``audio_s`` of speech (jfk.flac over and over) into ``room`` as fast as the
    server takes it, its own targets ``targets`` with speech at ``rate``, nobody listening. Returns
    its segments and how long it took."""
    from translate_svc.api.v1 import translate_pb2 as pb

    pcm = speech()
    reps = int(np.ceil(audio_s * 16000 / len(pcm)))
    audio = np.tile(pcm, reps)[: int(audio_s * 16000)].astype("<i2").tobytes()
    step = 32000  # 1 s a message

    async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
        cfg = pb.StreamingConfig(
            format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000),
            source_language="eng",
            target_languages=list(targets),
            output=pb.OutputOptions(text=True, speech=True, transcript=True, speech_sample_rate_hz=rate),
            room=pb.RoomSpeaking(name=room),
        )
        yield pb.StreamingTranslateRequest(config=cfg)
        started()
        for k in range(0, len(audio), step):
            yield pb.StreamingTranslateRequest(audio=audio[k : k + step])

    segments = 0
    t = time.perf_counter()
    status = "OK"
    async with grpc.aio.insecure_channel(address, options=[*OWN, ("grpc.max_receive_message_length", -1)]) as ch:
        call = ch.stream_stream(
            STREAM,
            request_serializer=pb.StreamingTranslateRequest.SerializeToString,
            response_deserializer=pb.StreamingTranslateResponse.FromString,
        )(requests(), metadata=metadata(token), timeout=1800)
        try:
            async for r in call:
                if r.HasField("segment"):
                    segments += 1
        except grpc.aio.AioRpcError as e:
            status = f"{e.code().name}: {(e.details() or '')[:100]}"
    return {
        "attack": "fast_speaker",
        "audio_s": audio_s,
        "segments": segments,
        "seconds": round(time.perf_counter() - t, 1),
        "status": status,
    }


class Tally(Counter[str]):
    """How calls came out; ``settled`` once ``expected`` of them did."""

    def __init__(self, expected: int) -> None:
        super().__init__()
        self.expected = expected
        self.settled = asyncio.Event()

    def add(self, outcome: str) -> None:
        self[outcome] += 1
        if self.total() >= self.expected:
            self.settled.set()

    async def wait(self, bound_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.settled.wait(), bound_s)


# -- the server -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Served:
    address: str  # the gRPC port, host:port
    http: str  # the HTTP port, http://host:port
    pid: int


@contextlib.contextmanager
def serve(checkout: Path, model: str, env: dict[str, str] | None = None) -> Iterator[Served]:
    """``translate-svc serve`` of ``checkout`` (its code first on the path) with the tokens file and
    the HTTP port, on free ports, in a process of its own."""
    from translate_svc.cli import ready_file as ready

    tmp = Path(tempfile.mkdtemp(prefix="attacks-rooms-"))
    (tmp / "tokens").write_text(TOKENS_FILE)
    cmd = [sys.executable, "-m", "translate_svc.cli", "serve", "--model", model, "--host", "127.0.0.1", "--port", "0"]
    cmd += ["--http-port", "0", "--tokens-file", str(tmp / "tokens"), "--ready-file", str(tmp / "ready.json")]
    path = f"{checkout}{os.pathsep}{checkout / 'clients/python/src'}"
    full_env = {**os.environ, "PYTHONPATH": path, **(env or {})}
    proc = subprocess.Popen(cmd, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=full_env)
    try:
        info = ready.wait(tmp / "ready.json", proc, 300)
        yield Served(f"127.0.0.1:{info.port}", f"http://127.0.0.1:{info.http_port}", proc.pid)
    finally:
        stop_process(proc)
        shutil.rmtree(tmp, ignore_errors=True)


# -- measure: a server per checkout, every attack ---------------------------------------------------


async def measure_one(checkout: Path, model: str, scale: float) -> dict[str, Any]:

    out: dict[str, Any] = {"checkout": str(checkout), "commit": commit(checkout)}
    with serve(checkout, model) as s:
        out["qr_control"] = await under_qr_flood(s, clients=0, seconds=0)
        out["qr_flood_32"] = await under_qr_flood(s, clients=32, seconds=20)
    # 1,200 silent Listen calls of a languages-only token, each reopened 2 s after it ends; the other tenant meanwhile
    with serve(checkout, model) as s:
        task = asyncio.ensure_future(
            silent_listen(s.address, TOKENS["languages"], slots=1200, seconds=20, reopen_s=2.0)
        )
        await asyncio.sleep(8)
        seen = [await probe(s.address, TOKENS["other"]) for _ in range(3)]
        out["silent_listen_languages_token"] = {**await task, "other_tenant": seen}
    # large Listen requests: a languages-only token, then a listen-only one (admitted: the unary caps)
    for who in ("languages", "listener"):
        with serve(checkout, model) as s, peak_rss_growth_mb(s.pid) as rss:
            got = await large_listen(s.address, TOKENS[who], calls=int(256 * scale), mib=3.9)
        out[f"large_listen_{who}"] = {**got, "peak_rss_growth_mb": rss["mb"], "rss_after_mb": rss["after_mb"]}
    # one tenant's listeners: 1,024 Listen calls, then 512 WebSockets; the other tenant meanwhile
    with serve(checkout, model) as s:

        async def grpc_probe() -> Any:
            return await probe(s.address, TOKENS["other"])

        task = asyncio.ensure_future(many_listeners(s.address, s.http, TOKENS["uncapped"], count=1024, hold_s=15))
        await asyncio.sleep(10)
        seen = await grpc_probe()
        out["listeners_grpc_1024"] = {**await task, "other_tenant": seen}
    with serve(checkout, model) as s:
        task = asyncio.ensure_future(
            many_listeners(s.address, s.http, TOKENS["uncapped"], count=512, door="ws", hold_s=15)
        )
        await asyncio.sleep(10)
        seen_http = await realtime_handshake(s.http, TOKENS["other"])
        out["listeners_ws_512"] = {**await task, "other_tenant_realtime_handshake": seen_http}
    # one tenant's rooms: 256 (rooms.max_rooms), the other tenant's room meanwhile and just after
    with serve(checkout, model) as s:

        async def other_room() -> str:
            return await open_room(s.address, TOKENS["other"], "theirs-1")

        got = await many_rooms(s.address, TOKENS["uncapped"], count=256, while_held=other_room)
        got["other_tenant_after_release"] = await open_room(s.address, TOKENS["other"], "theirs-2")
        out["rooms_256"] = got
    # the backlog: one fast speaker, 4 targets with 48 kHz speech, nobody listening
    env = {"TRANSLATE_SVC_MODEL__TEST_TRANSLATOR": "stable"}
    with serve(checkout, model, env) as s, peak_rss_growth_mb(s.pid) as rss:
        got = await fast_speaker(s.address, TOKENS["uncapped"], audio_s=1200)
    out["fast_speaker"] = {**got, "peak_rss_growth_mb": rss["mb"], "rss_after_mb": rss["after_mb"]}
    return out


async def realtime_handshake(http: str, token: str) -> dict[str, Any]:
    """The other tenant opens a realtime translation WebSocket: the handshake's status and seconds."""
    url = f"{http.replace('http', 'ws', 1)}/v1/realtime/translations?model=m"
    t = time.perf_counter()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        try:
            async with session.ws_connect(url, headers={"Authorization": f"Bearer {token}"}):
                status = "101"
        except aiohttp.WSServerHandshakeError as e:
            status = str(e.status)
        except aiohttp.ClientError as e:
            status = type(e).__name__
    return {"status": status, "seconds": round(time.perf_counter() - t, 3)}


# -- the command line ---------------------------------------------------------------------------------


def _run_attack(opts: argparse.Namespace) -> dict[str, Any]:
    def started() -> None:
        print("started", flush=True)  # the test's signal: the attack is under way

    if opts.command == "qr-flood":
        return asyncio.run(qr_flood(opts.http, clients=opts.clients, seconds=opts.seconds, started=started))
    if opts.command == "silent-listen":
        return asyncio.run(
            silent_listen(
                opts.address,
                opts.token,
                slots=opts.slots,
                connections=opts.connections,
                seconds=opts.seconds,
                reopen_s=opts.reopen_s,
                started=started,
            )
        )
    if opts.command == "large-listen":
        return asyncio.run(large_listen(opts.address, opts.token, calls=opts.calls, mib=opts.mib, started=started))
    raise AssertionError(opts.command)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    m = add_measure(sub)
    m.add_argument("--scale", type=float, default=0.5, help="the large Listen requests: 256 times this")
    q = sub.add_parser("qr-flood")
    q.add_argument("--http", required=True, help="http://host:port of the HTTP port")
    q.add_argument("--clients", type=int, default=32)
    q.add_argument("--seconds", type=float, default=20.0)
    sl = sub.add_parser("silent-listen")
    sl.add_argument("--address", required=True)
    sl.add_argument("--token", default=None)
    sl.add_argument("--slots", type=int, default=1200)
    sl.add_argument("--connections", type=int, default=4)
    sl.add_argument("--seconds", type=float, default=20.0)
    sl.add_argument("--reopen-s", type=float, default=0.05)
    ll = sub.add_parser("large-listen")
    ll.add_argument("--address", required=True)
    ll.add_argument("--token", default=None)
    ll.add_argument("--calls", type=int, default=96)
    ll.add_argument("--mib", type=float, default=3.9)
    opts = ap.parse_args(argv)
    if opts.command == "measure":
        runs = [asyncio.run(measure_one(c.resolve(), opts.model, opts.scale)) for c in opts.checkout]
        save_runs(runs, opts.json)
        return
    print(json.dumps(_run_attack(opts)), flush=True)


if __name__ == "__main__":
    main()
