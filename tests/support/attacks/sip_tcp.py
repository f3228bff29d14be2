"""Issue 87's attack on the SIP door's TCP port (J6, H2's residual), and a run that measures it
against real servers, before and after the fix:

    PYTHONPATH=$PWD python -m tests.support.attacks.sip_tcp measure --checkout /tmp/base87 --checkout . \\
        --json out/attacks-sip87.json      # prlimit: the review's ulimit -n 1024 (a cap of 341)

``refused_keepalives``: strangers (sources outside ``sip.allowed_cidrs``, let in because the tokens
file names SIP users) open TCP connections and send an OPTIONS every ``every_s`` on each, which
the door refuses (403: no dialog of theirs), reconnecting when one is closed; meanwhile a trunk
(an allowed source) opens a new TCP connection every ``trunk_every_s`` and sends an OPTIONS. In
the review, 24 addresses with one refused OPTIONS every 20 s per connection held all 341 slots for
70 s, and the trunk's TCP INVITE was reset at every try. Requests are RFC 3261 §7's over plain
TCP sockets (§18.3: a message's end by its Content-Length).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

from tests.support.attacks.checkouts import add_measure, commit, save_runs


def options(sip: tuple[str, int], host: str) -> bytes:
    """An OPTIONS over TCP from ``host`` (RFC 3261 §11)."""
    lines = [
        f"OPTIONS sip:{sip[0]}:{sip[1]} SIP/2.0",
        f"Via: SIP/2.0/TCP {host};branch=z9hG4bK{os.urandom(6).hex()}",
        "Max-Forwards: 70",
        f"From: <sip:probe@{host}>;tag={os.urandom(3).hex()}",
        f"To: <sip:{sip[0]}>",
        f"Call-ID: {os.urandom(6).hex()}@{host}",
        "CSeq: 1 OPTIONS",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def answered(sip: tuple[str, int], host: str, timeout_s: float = 5.0) -> int | str:
    """An OPTIONS over a new TCP connection from ``host``: the status of its answer, or why none."""
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(*sip, local_addr=(host, 0))
            try:
                writer.write(options(sip, host))
                head = await reader.readuntil(b"\r\n\r\n")
                return int(head.split(b" ", 2)[1])
            finally:
                writer.close()
    except asyncio.IncompleteReadError:
        return "closed"
    except ConnectionError:
        return "reset"
    except TimeoutError:
        return "timeout"
    except OSError as e:
        return type(e).__name__


class _Held:
    """The strangers' connections the server has let in (answered at least once) and not closed."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.lifetimes: list[float] = []
        self.at_accept = 0
        self.opened = 0
        self.refused_answers = 0

    def up(self) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)


async def _stranger(sip: tuple[str, int], host: str, every_s: float, end: float, held: _Held, retry_s: float) -> None:
    """One connection slot of a stranger: connect, an OPTIONS every ``every_s`` until the server
    closes it, then again ``retry_s`` later, until ``end``."""
    loop = asyncio.get_running_loop()
    while loop.time() < end:
        try:
            reader, writer = await asyncio.open_connection(*sip, local_addr=(host, 0))
        except OSError:
            await asyncio.sleep(retry_s)
            continue
        held.opened += 1
        t0, let_in, closed = loop.time(), False, False
        try:
            while not closed and loop.time() < end:
                writer.write(options(sip, host))
                due = min(loop.time() + every_s, end)
                while not closed and loop.time() < due:
                    try:
                        async with asyncio.timeout(due - loop.time()):
                            data = await reader.read(4096)
                    except TimeoutError:
                        break
                    closed = not data
                    if data and not let_in:
                        let_in = True
                        held.up()
                    held.refused_answers += data.count(b"SIP/2.0 403 ")
        except OSError:
            pass
        finally:
            writer.close()
            if let_in:
                held.now -= 1
                held.lifetimes.append(loop.time() - t0)
            else:
                held.at_accept += 1
        await asyncio.sleep(retry_s)  # (an attacker reconnects at once; a pause spares the test's machine)


async def refused_keepalives(
    sip: tuple[str, int],
    *,
    sources: list[str],
    per_source: int,
    every_s: float,
    seconds: float,
    trunk: str = "127.0.0.1",
    trunk_every_s: float = 1.0,
    settle_s: float = 2.0,
    retry_s: float = 0.5,
) -> dict[str, Any]:
    """``per_source`` connection slots from each of ``sources``, each sending a refused OPTIONS
    every ``every_s`` for ``seconds``; after ``settle_s`` a trunk's OPTIONS on a new connection
    every ``trunk_every_s``: how many the strangers held at most, how long each lived, and what the
    trunk got."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    held = _Held()
    tasks = [
        loop.create_task(_stranger(sip, host, every_s, end, held, retry_s))
        for host in sources
        for _ in range(per_source)
    ]
    trunk_got: list[int | str] = []
    try:
        await asyncio.sleep(settle_s)
        while loop.time() < end - trunk_every_s:
            t = loop.time()
            trunk_got.append(await answered(sip, trunk))
            await asyncio.sleep(max(0.0, trunk_every_s - (loop.time() - t)))
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    lives = sorted(held.lifetimes)
    return {
        "stranger_connections_opened": held.opened,
        "stranger_closed_at_accept": held.at_accept,
        "stranger_refused_answers": held.refused_answers,
        "stranger_held_peak": held.peak,
        "stranger_lifetime_p50_s": round(statistics.median(lives), 1) if lives else None,
        "stranger_lifetime_max_s": round(lives[-1], 1) if lives else None,
        "trunk_tries": len(trunk_got),
        "trunk_answered_200": sum(1 for g in trunk_got if g == 200),
        "trunk_got": sorted({str(g) for g in trunk_got}),
    }


async def measure_one(checkout: Path, model: str, seconds: float) -> dict[str, Any]:
    """The review's run against ``checkout``'s ``serve`` under ``ulimit -n 1024``: 24 stranger
    addresses, 16 connections each (``sip.tcp_connections_per_source``), a refused OPTIONS every
    20 s on each, for ``seconds``; the trunk's OPTIONS every 2 s."""
    from tests.support.attacks.sip import server

    out: dict[str, Any] = {"checkout": str(checkout), "commit": commit(checkout)}
    with server(checkout, model, nofile=1024, sip_users=True) as srv:
        sources = [f"127.0.1.{n}" for n in range(1, 25)]
        out["refused_keepalives"] = await refused_keepalives(
            srv["sip"], sources=sources, per_source=16, every_s=20.0, seconds=seconds, trunk_every_s=2.0, settle_s=5.0
        )
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    m = add_measure(sub)
    m.add_argument("--seconds", type=float, default=70.0, help="how long the strangers keep at it (s)")
    opts = ap.parse_args(argv)
    runs = [asyncio.run(measure_one(c.resolve(), opts.model, opts.seconds)) for c in opts.checkout]
    save_runs(runs, opts.json)
    print(json.dumps({"done": len(runs)}), file=sys.stderr)


if __name__ == "__main__":
    main()
