"""The security review's attacks on the SIP door (issue 68), one function per attack, and a run
that measures them against real servers, before and after a fix:

    PYTHONPATH=$PWD python -m tests.support.attacks.sip measure --checkout /tmp/base68 --checkout . \\
        --json out/attacks-sip68.json

Each attack is an async function over the SIP door's address (and what else it needs) that returns
what its peers saw, as plain values; the tests run them against a server in their own process, and
``measure`` against a ``translate-svc serve --sip-port`` of each checkout (its code first on the
path, the stable test translator, a tokens file with two SIP users):

- ``named_host`` (H1): a call whose SDP ``c=`` names a host (and, when it is admitted, a re-INVITE
  naming one); meanwhile a health ``Check`` every 0.2 s; before it, the same loop as a control.
  ``measure`` serves the server behind a resolver that never answers (a mount namespace whose
  ``/etc/resolv.conf`` names a UDP socket of this process that reads and never replies).
- ``silent_tcp`` (H2): ``connections`` TCP connections from a refused source that send nothing;
  meanwhile the health port, the HTTP port's ``/healthz`` and the SIP door over UDP and TCP from an
  allowed source. ``measure`` serves it under ``ulimit -n 1024`` and reports the log's growth.
- ``third_party_rtp`` (H3): an INVITE and ACK whose SDP names a third party (a socket here); the
  RTP it received in ``seconds``; and the answers to SDP naming multicast, broadcast, 0.0.0.0.
- ``digest_replay`` (H5): a digest call answered right, then its ``Authorization`` replayed with
  new Call-IDs, rooms and Request-URIs, from the same and from another source; and the tenant's
  token itself as the password.
- ``dialog_collision`` (H8): another tenant's INVITE with a live call's Call-ID, then the call's BYE.
- ``call_id_injection`` (H9): a Call-ID with a bare LF and a forged ``key=value``.
- ``unauthenticated_401`` (H10): an INVITE needing a digest answer that never ACKs the 401: the
  bytes that came back against the bytes sent.
- ``neighbour_latch`` (H11): a neighbour at the caller's address (another port) sends RTP first.
- ``bad_sdp`` (H12): ports 99999 and 5,000 digits, an invalid room: each one's answers in order.
- ``dtmf_flood`` (H16): RFC 4733 end packets, each its own event, as fast as a socket sends.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.support.attacks.checkouts import add_measure, commit, save_runs
from tests.support.attacks.sip_peer import (
    Dialog,
    RtpSocket,
    SipPeer,
    SipResponse,
    challenge,
    digest_answer,
    dtmf_end,
    offer,
    rtp_packet,
)

#: the tokens file ``measure`` serves with: two SIP users of two tenants
TOKENS = {"acme": "sip68-acme-token-51f0", "rival": "sip68-rival-token-0c3d"}
TOKENS_FILE = (
    f"{TOKENS['acme']} stream tenant=acme sip_user=acme1 publish=town-*\n"
    f"{TOKENS['rival']} stream tenant=rival sip_user=rival1\n"
)
REALM = "translate-svc"
#: a host name no resolver answers for here (``measure``: the resolver never answers at all)
NEVER = "media.never-answers.example"


def statuses(responses: list[SipResponse]) -> list[int]:
    return [r.status for r in responses]


def p95(values: list[float]) -> float | None:
    if len(values) < 2:
        return round(values[0], 4) if values else None
    return round(statistics.quantiles(values, n=20)[-1], 4)


async def check_loop(address: str, stop: asyncio.Event, out: list[float], every_s: float = 0.2) -> None:
    """A token-less health ``Check`` every ``every_s`` until ``stop``: each one's latency (a failed
    or timed-out one counts as its time to fail)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async with grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)]) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        while not stop.is_set():
            t = time.perf_counter()
            with contextlib.suppress(grpc.aio.AioRpcError):
                await stub.Check(health_pb2.HealthCheckRequest(), timeout=60)
            out.append(time.perf_counter() - t)
            await asyncio.sleep(every_s)


async def checks_during(address: str, seconds: float) -> list[float]:
    stop = asyncio.Event()
    out: list[float] = []
    task = asyncio.get_running_loop().create_task(check_loop(address, stop, out))
    await asyncio.sleep(seconds)
    stop.set()
    await task
    return out


# -- H1: a host name in the SDP ---------------------------------------------------------------------


async def named_host(sip: tuple[str, int], grpc_address: str, *, seconds: float = 6.0) -> dict[str, Any]:
    """The control Check loop, then a call whose ``c=`` names ``NEVER`` (and a re-INVITE naming it)
    with the Check loop running for ``seconds``."""
    control = await checks_during(grpc_address, seconds / 2)
    stop = asyncio.Event()
    during: list[float] = []
    checks = asyncio.get_running_loop().create_task(check_loop(grpc_address, stop, during))
    out: dict[str, Any] = {}
    async with SipPeer(sip) as peer:
        first = await peer.invite(offer(NEVER, 40000))
        out["invite_status"] = first.status if first else None
        media = RtpSocket()
        try:
            if first is not None and first.status == 200:  # admitted: a re-INVITE names it again
                reinvite = await peer.invite(offer(NEVER, 40002))
                out["reinvite_status"] = reinvite.status if reinvite else None
            else:  # refused: a call at a literal address, then a re-INVITE naming a host
                peer.dialog = None
                call = await peer.invite(offer(*media.address))
                out["literal_call_status"] = call.status if call else None
                if call is not None and call.status == 200:
                    reinvite = await peer.invite(offer(NEVER, 40002))
                    out["reinvite_status"] = reinvite.status if reinvite else None
            await asyncio.sleep(seconds)
            stop.set()
            await checks
            with contextlib.suppress(TimeoutError):
                await peer.bye(timeout_s=5)
        finally:
            await media.close()
    out["check_p95_control_s"] = p95(control)
    out["check_p95_during_s"] = p95(during)
    out["check_worst_during_s"] = round(max(during), 3) if during else None
    out["checks_during"] = len(during)
    return out


# -- H3 and H11: where RTP goes ---------------------------------------------------------------------


async def third_party_rtp(sip: tuple[str, int], *, seconds: float = 3.0) -> dict[str, Any]:
    """An INVITE and ACK whose SDP names a third party that never speaks; what it received in
    ``seconds``; then the answers to offers naming multicast, broadcast and the unspecified address."""
    third = RtpSocket()
    out: dict[str, Any] = {}
    try:
        async with SipPeer(sip) as peer:
            resp = await peer.invite(offer(*third.address))
            out["invite_status"] = resp.status if resp else None
            await asyncio.sleep(seconds)
            out["third_party_packets"] = third.packets
            out["third_party_bytes"] = third.bytes
            if resp is not None and resp.status == 200:
                await peer.bye()
        for name, address in (("multicast", "224.0.0.1"), ("broadcast", "255.255.255.255"), ("unspecified", "0.0.0.0")):
            async with SipPeer(sip) as peer:
                resp = await peer.invite(offer(address, 40000))
                out[f"{name}_status"] = resp.status if resp else None
                if resp is not None and resp.status == 200:
                    await peer.bye()
    finally:
        await third.close()
    return out


async def neighbour_latch(sip: tuple[str, int], *, seconds: float = 2.0) -> dict[str, Any]:
    """The caller's SDP names its media socket; a neighbour at the same address, another port,
    sends RTP first; then the caller does. The packets each of them received in ``seconds``."""
    caller, neighbour = RtpSocket(), RtpSocket()
    out: dict[str, Any] = {}
    try:
        async with SipPeer(sip) as peer:
            resp = await peer.invite(offer(*caller.address))
            out["invite_status"] = resp.status if resp else None
            media = resp.sdp_media() if resp is not None else None
            if media is not None:
                silence = b"\xff" * 160
                await neighbour.send(rtp_packet(0, 1, 160, 0xBEEF, silence), media)
                await asyncio.sleep(0.1)
                for n in range(int(seconds / 0.02)):
                    await caller.send(rtp_packet(0, n, n * 160, 0xCA11, silence), media)
                    await asyncio.sleep(0.02)
            out["caller_packets"] = caller.packets
            out["neighbour_packets"] = neighbour.packets
            if resp is not None and resp.status == 200:
                await peer.bye()
    finally:
        await caller.close()
        await neighbour.close()
    return out


# -- H16: a flood of DTMF events ----------------------------------------------------------------------


async def dtmf_flood(sip: tuple[str, int], *, seconds: float = 3.0) -> dict[str, Any]:
    """A call, then RFC 4733 end packets (digit 1, each its own event: a new timestamp) as fast as
    the socket sends for ``seconds``, then the caller's BYE."""
    media = RtpSocket()
    out: dict[str, Any] = {"sent": 0}
    try:
        async with SipPeer(sip) as peer:
            resp = await peer.invite(offer(*media.address))
            out["invite_status"] = resp.status if resp else None
            where = resp.sdp_media() if resp is not None else None
            if where is not None:
                loop = asyncio.get_running_loop()
                end = loop.time() + seconds
                n = 0
                while loop.time() < end:
                    for _ in range(50):
                        media.sock.sendto(dtmf_end(1, n, 1000 + 800 * n), where)
                        n += 1
                    await asyncio.sleep(0)
                out["sent"] = n
                bye = await peer.bye()
                out["bye_status"] = bye.status if bye else None
    finally:
        await media.close()
    return out


# -- H12: SDP and parameters that used to be answered late or with a traceback ---------------------


async def bad_sdp(sip: tuple[str, int]) -> dict[str, Any]:
    """The answers (every status, in order) to an offer with port 99999, one with a port of 5,000
    digits, and a call naming an invalid room."""
    out: dict[str, Any] = {}
    media = RtpSocket()
    try:
        for name, body, headers in (
            ("port_99999", offer(media.address[0], 99999), []),
            (
                "port_5000_digits",
                offer(media.address[0], 4).replace(b"m=audio 4 ", b"m=audio " + b"9" * 5000 + b" "),
                [],
            ),
            ("invalid_room", offer(*media.address), [("X-Translate-Room", "no room!")]),
        ):
            async with SipPeer(sip) as peer:
                await peer.invite(body, headers=headers, timeout_s=5)
                await asyncio.sleep(0.3)
                out[name] = statuses(peer.got)
                if any(r.status == 200 for r in peer.got):
                    with contextlib.suppress(Exception):
                        await peer.bye(timeout_s=3)
    finally:
        await media.close()
    return out


# -- H5 and H10: digest --------------------------------------------------------------------------------


async def authorized_invite(
    peer: SipPeer,
    user: str,
    password: str,
    body: bytes,
    *,
    headers: list[tuple[str, str]] = (),  # type: ignore[assignment]
) -> tuple[SipResponse | None, str]:
    """An INVITE, its 401 ACKed, the INVITE again answering the challenge (nc 1): its final
    response and the ``Authorization`` sent."""
    first = await peer.invite(body, headers=headers)
    if first is None or first.status != 401:
        return first, ""
    params = challenge(first)
    assert peer.dialog is not None
    auth = digest_answer(user, password, params.get("realm", REALM), params["nonce"], "INVITE", peer.dialog.uri, 1)
    resp = await peer.invite(body, headers=[*headers, ("Authorization", auth)])
    return resp, auth


async def digest_replay(
    sip: tuple[str, int],
    user: str,
    password: str,
    token: str,
    *,
    hosts: tuple[str, str] = ("127.0.0.2", "127.0.0.3"),
    replays: int = 5,
) -> dict[str, Any]:
    """A digest call from ``hosts[0]`` answered right (``password``), then its ``Authorization``
    replayed ``replays`` times with a new Call-ID, room and Request-URI each, from the same source
    and from ``hosts[1]``; and the token itself as the password."""
    out: dict[str, Any] = {}
    media = RtpSocket(hosts[0])
    try:
        async with SipPeer(sip, host=hosts[0]) as peer:
            resp, auth = await authorized_invite(peer, user, password, offer(*media.address))
            out["right_answer_status"] = resp.status if resp else None
            if resp is not None and resp.status == 200:
                await peer.bye()
        admitted = []
        for n in range(replays):
            for host in hosts:
                async with SipPeer(sip, host=host) as replay:
                    uri = f"sip:spa-eng@{sip[0]}" if n % 2 else None
                    headers = [("Authorization", auth), ("X-Translate-Room", f"town-{n}")]
                    got = await replay.invite(offer(*media.address), headers=headers, uri=uri)
                    admitted.append(got is not None and got.status == 200)
                    out.setdefault(f"replay_statuses_from_{host}", []).append(got.status if got else None)
                    if got is not None and got.status == 200:
                        await replay.bye()
        out["replays_admitted"] = f"{sum(admitted)} of {len(admitted)}"
        async with SipPeer(sip, host=hosts[0]) as peer:
            resp, _ = await authorized_invite(peer, user, token, offer(*media.address))
            out["token_as_password_status"] = resp.status if resp else None
            if resp is not None and resp.status == 200:
                await peer.bye()
    finally:
        await media.close()
    return out


async def unauthenticated_401(sip: tuple[str, int], *, seconds: float = 8.0, host: str = "127.0.0.2") -> dict[str, Any]:
    """One INVITE from a source that must answer a digest challenge, the 401 never ACKed: what came
    back in ``seconds`` against what was sent."""
    async with SipPeer(sip, host=host) as peer:
        await peer.send(peer.request("INVITE", body=offer(host, 40000)))
        await asyncio.sleep(seconds)
        return {
            "responses": statuses(peer.got),
            "sent_bytes": peer.sent_bytes,
            "received_bytes": peer.received_bytes,
            "amplification": round(peer.received_bytes / peer.sent_bytes, 2),
        }


# -- H8 and H9: dialogs and Call-IDs --------------------------------------------------------------------


async def dialog_collision(
    sip: tuple[str, int], victim_host: str, attacker: tuple[str, str, str] | None = None
) -> dict[str, Any]:
    """A call from ``victim_host``; another caller's INVITE with its Call-ID (``attacker``: a SIP
    user, its password and its source address; else from ``victim_host``'s network too) that is
    answered and hung up; then the victim's BYE."""
    media = RtpSocket(victim_host)
    out: dict[str, Any] = {}
    try:
        async with SipPeer(sip, host=victim_host) as victim:
            resp = await victim.invite(offer(*media.address))
            out["victim_status"] = resp.status if resp else None
            assert victim.dialog is not None
            host = attacker[2] if attacker else victim_host
            async with SipPeer(sip, host=host) as other:
                other.dialog = None
                body = offer(host, media.address[1])
                if attacker is not None:  # the victim's Call-ID, its own From tag
                    other.dialog = Dialog(victim.dialog.call_id, os.urandom(4).hex(), victim.dialog.uri)
                    got, _ = await authorized_invite(other, attacker[0], attacker[1], body)
                else:
                    got = await other.invite(body, call_id=victim.dialog.call_id)
                out["other_status"] = got.status if got else None
                if got is not None and got.status == 200:
                    bye = await other.bye()
                    out["other_bye_status"] = bye.status if bye else None
            bye = await victim.bye()
            out["victim_bye_status"] = bye.status if bye else None
    finally:
        await media.close()
    return out


async def call_id_injection(sip: tuple[str, int]) -> dict[str, Any]:
    """An INVITE whose Call-ID holds a bare LF and a forged ``key=value``: its answers."""
    media = RtpSocket()
    try:
        async with SipPeer(sip) as peer:
            call_id = "inj-" + os.urandom(3).hex() + "\ncode=OK tenant=forged"
            resp = await peer.invite(offer(*media.address), call_id=call_id)
            out = {"statuses": statuses(peer.got)}
            if resp is not None and resp.status == 200:
                await peer.bye()
            return out
    finally:
        await media.close()


# -- H2: silent TCP connections ---------------------------------------------------------------------------


async def _answers_options_tcp(sip: tuple[str, int], host: str) -> bool:
    """An OPTIONS over a new TCP connection from ``host`` is answered 200 within 5 s."""
    try:
        async with asyncio.timeout(5):
            reader, writer = await asyncio.open_connection(*sip, local_addr=(host, 0))
            try:
                lines = [
                    f"OPTIONS sip:{sip[0]}:{sip[1]} SIP/2.0",
                    f"Via: SIP/2.0/TCP {host};branch=z9hG4bK{os.urandom(6).hex()}",
                    "Max-Forwards: 70",
                    f"From: <sip:probe@{host}>;tag={os.urandom(3).hex()}",
                    f"To: <sip:{sip[0]}>",
                    f"Call-ID: {os.urandom(6).hex()}",
                    "CSeq: 1 OPTIONS",
                    "Content-Length: 0",
                ]
                writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
                head = await reader.readuntil(b"\r\n\r\n")
                return head.startswith(b"SIP/2.0 200")
            finally:
                writer.close()
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return False


async def _answers_options_udp(sip: tuple[str, int], host: str) -> bool:
    async with SipPeer(sip, host=host) as peer:
        await peer.send(peer.request("OPTIONS"))
        return (await peer.final(timeout_s=5)) is not None


async def _health(grpc_address: str) -> str:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    try:
        async with grpc.aio.insecure_channel(grpc_address, options=[("grpc.use_local_subchannel_pool", 1)]) as ch:
            got = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
            return str(health_pb2.HealthCheckResponse.ServingStatus.Name(got.status))
    except grpc.aio.AioRpcError as e:
        return str(e.code().name)


async def _healthz(http_url: str) -> int | str:
    import aiohttp

    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(http_url + "/healthz", timeout=aiohttp.ClientTimeout(5)) as r,
        ):
            return r.status
    except (aiohttp.ClientError, TimeoutError) as e:
        return type(e).__name__


async def silent_tcp(
    sip: tuple[str, int],
    *,
    connections: int = 1100,
    source: str = "127.0.0.2",
    allowed: str = "127.0.0.1",
    hold_s: float = 10.0,
    health: str | None = None,
    http_url: str | None = None,
    grpc_address: str | None = None,
) -> dict[str, Any]:
    """``connections`` TCP connections from ``source`` that send nothing, held ``hold_s``; meanwhile
    the doors from ``allowed`` (and the health port, the HTTP port's ``/healthz``, the gRPC port's
    health ``Check`` when given). How many the server closed, how fast, and what the probes got."""
    loop = asyncio.get_running_loop()
    opened: list[asyncio.StreamReader] = []
    writers: list[asyncio.StreamWriter] = []
    failed = 0
    closed_at: list[float] = []
    t0 = loop.time()

    async def watch(reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            await reader.read(1)
        closed_at.append(loop.time() - t0)

    watchers = []
    for _ in range(connections):
        try:
            reader, writer = await asyncio.open_connection(*sip, local_addr=(source, 0))
        except OSError:
            failed += 1
            continue
        opened.append(reader)
        writers.append(writer)
        watchers.append(loop.create_task(watch(reader)))
    await asyncio.sleep(1.0)
    probes: dict[str, Any] = {
        "sip_udp_options_answered": await _answers_options_udp(sip, allowed),
        "sip_tcp_options_answered": await _answers_options_tcp(sip, allowed),
    }
    if health is not None:
        probes["health_check"] = await _health(health)
    if grpc_address is not None:
        probes["grpc_port_check"] = await _health(grpc_address)
    if http_url is not None:
        probes["http_healthz"] = await _healthz(http_url)
    await asyncio.sleep(max(0.0, hold_s - (loop.time() - t0)))
    still_open = sum(1 for w in watchers if not w.done())
    for w in writers:
        w.close()
    for w in watchers:
        w.cancel()
    return {
        "connect_failed": failed,
        "closed_by_server": len(closed_at),
        "closed_within_1s": sum(1 for t in closed_at if t <= 1.0),
        "still_open_at_end": still_open,
        **probes,
    }


# -- measure: a server per attack and checkout ------------------------------------------------------------


class _SilentResolver:
    """A UDP socket on 127.0.0.53 port 53 that reads queries and never answers (needs root)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.153", 53))

    def close(self) -> None:
        self.sock.close()


@contextlib.contextmanager
def server(
    checkout: Path, model: str, *, nofile: int | None = None, silent_dns: bool = False, sip_users: bool = True
) -> Iterator[dict[str, Any]]:
    """``translate-svc serve --sip-port`` of ``checkout`` (the stable translator, the tokens file
    with its SIP users unless ``sip_users`` is off, loopback 127.0.0.1 only allowed), optionally
    under ``ulimit -n nofile`` and behind a resolver that never answers; its addresses, its pid
    and its log file."""
    from tests.support.proc import free_port
    from translate_svc.cli import ready_file as ready

    tmp = Path(tempfile.mkdtemp(prefix="attacks-sip-"))
    (tmp / "tokens").write_text(TOKENS_FILE if sip_users else f"{TOKENS['acme']} * tenant=acme\n")
    sip_port, health_port = free_port(), free_port()
    cmd = [sys.executable, "-m", "translate_svc.cli", "serve", "--model", model, "--test-translator", "stable"]
    cmd += ["--host", "127.0.0.1", "--port", "0", "--http-port", "0", "--health-port", str(health_port)]
    cmd += ["--sip-port", str(sip_port), "--tokens-file", str(tmp / "tokens"), "--ready-file", str(tmp / "ready.json")]
    env = {
        **os.environ,
        "PYTHONPATH": str(checkout),
        "TRANSLATE_SVC_SIP__ALLOWED_CIDRS": '["127.0.0.1/32"]',
        "TRANSLATE_SVC_SIP__MEDIA_TIMEOUT_S": "60",
    }
    prefix: list[str] = []
    if nofile is not None:
        prefix += ["prlimit", f"--nofile={nofile}"]
    resolver = None
    if silent_dns:
        resolver = _SilentResolver()
        (tmp / "resolv.conf").write_text("nameserver 127.0.0.153\noptions timeout:5 attempts:2\n")
        inner = f'mount --bind {tmp / "resolv.conf"} /etc/resolv.conf && exec "$@"'
        prefix += ["unshare", "-m", "sh", "-c", inner, "sh"]
    log = tmp / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*prefix, *cmd], cwd=checkout, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        info = ready.wait(tmp / "ready.json", proc, 300)
        yield {
            "sip": ("127.0.0.1", sip_port),
            "grpc": f"127.0.0.1:{info.port}",
            "health": f"127.0.0.1:{health_port}",
            "http": f"http://127.0.0.1:{info.http_port}",
            "pid": proc.pid,
            "log": log,
        }
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(60)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if resolver is not None:
            resolver.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _access_field(log: Path, name: str) -> list[str]:
    return re.findall(rf"method=sip .*?\b{name}=(\S+)", log.read_text(errors="replace"))


async def measure_one(checkout: Path, model: str, hold_s: float) -> dict[str, Any]:
    out: dict[str, Any] = {"checkout": str(checkout), "commit": commit(checkout)}
    with server(checkout, model, silent_dns=True) as srv:
        out["named_host"] = await named_host(srv["sip"], srv["grpc"], seconds=10.0)
    for name, users in (("silent_tcp", False), ("silent_tcp_with_sip_users", True)):
        with server(checkout, model, nofile=1024, sip_users=users) as srv:
            before = srv["log"].stat().st_size
            out[name] = await silent_tcp(
                srv["sip"], hold_s=hold_s, health=srv["health"], http_url=srv["http"], grpc_address=srv["grpc"]
            )
            out[name]["server_log_bytes"] = srv["log"].stat().st_size - before
    with server(checkout, model) as srv:
        sip = srv["sip"]
        out["third_party_rtp"] = await third_party_rtp(sip)
        out["neighbour_latch"] = await neighbour_latch(sip)
        out["bad_sdp"] = await bad_sdp(sip)
        out["call_id_injection"] = await call_id_injection(sip)
        out["unauthenticated_401"] = await unauthenticated_401(sip)
        out["digest_replay"] = await digest_replay(sip, "acme1", _sip_password(checkout, "acme"), TOKENS["acme"])
        out["dialog_collision"] = await dialog_collision(
            sip, "127.0.0.1", ("rival1", _sip_password(checkout, "rival"), "127.0.0.2")
        )
        out["dtmf_flood"] = await dtmf_flood(sip)
        await asyncio.sleep(2.0)
        out["dtmf_flood"]["access_dtmf_digits"] = _access_field(srv["log"], "dtmf_digits")[-1:]
    return out


def _sip_password(checkout: Path, tenant: str) -> str:
    """The SIP password of a tenant's token as ``checkout`` derives it (its own ``phone-config``
    code when it has the derivation; before it, the token itself)."""
    code = (
        "import sys\n"
        "try:\n from translate_svc.transport.tokens.sip import sip_password\n"
        "except ImportError:\n print(sys.argv[1]); raise SystemExit\n"
        "print(sip_password(sys.argv[1], sys.argv[2]))\n"
    )
    user = {"acme": "acme1", "rival": "rival1"}[tenant]
    got = subprocess.run(
        [sys.executable, "-c", code, TOKENS[tenant], user],
        capture_output=True,
        text=True,
        cwd=checkout,  # (python -c puts the working directory first on the path)
        env={**os.environ, "PYTHONPATH": str(checkout)},
        check=True,
    )
    return got.stdout.strip()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    m = add_measure(sub)
    m.add_argument("--hold", type=float, default=40.0, help="how long the silent TCP connections are held (s)")
    opts = ap.parse_args(argv)
    runs = [asyncio.run(measure_one(c.resolve(), opts.model, opts.hold)) for c in opts.checkout]
    save_runs(runs, opts.json)
    print(json.dumps({"done": len(runs)}), file=sys.stderr)


if __name__ == "__main__":
    main()
