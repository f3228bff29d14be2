"""Issue 57's findings on the HTTP port, measured on a real ``translate-svc serve`` process (the test
checkpoint) and, with ``--before TREE``, on another checkout too (e.g. the base commit's:
``git archive 225e846 | tar -x -C /tmp/base57``), in one run.

- ``log``: strangers writing the log. ``--clients`` connections at a time, for ``--seconds``, each
  sends a request line over the port's 8190 bytes and reads the answer (aiohttp's parser: 400):
  the requests sent, what the server wrote to its log meanwhile (bytes, lines, tracebacks), its CPU.
- ``gzip``: a compressed body. One ``POST /v1/audio/transcriptions`` (a token with ``translate``)
  whose ``Content-Encoding: gzip`` body is ``--gzip-mb`` MB of lines before the form's first
  boundary: its ``Content-Length`` is a few hundred KB. The answer, how long it took, the server's
  CPU meanwhile.

    python -m tests.support.attacks.http_port --before /tmp/base57 --json out/attacks_http57.json
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.attacks.checkouts import add_trees, before_after
from tests.support.attacks.unread import ATTACKER, Served, served
from tests.support.json_result import print_and_save
from tests.support.proc import cpu_s

ATTACKS = ("log", "gzip")
LONG_LINE = b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"


def log_size(srv: Served) -> int:
    return Path(srv.log.name).stat().st_size


def log_since(srv: Served, size: int) -> bytes:
    return Path(srv.log.name).read_bytes()[size:]


async def long_lines(port: int, stop: float, sent: list[int]) -> None:
    """Over-long request lines, one connection each, until ``stop`` (monotonic)."""
    while time.monotonic() < stop:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(LONG_LINE)
            await writer.drain()
            await reader.readline()
            sent[0] += 1
        except ConnectionError:
            pass
        finally:
            writer.close()
            await writer.wait_closed()


async def log_flood(srv: Served, seconds: float, clients: int) -> dict[str, Any]:
    await asyncio.sleep(1.0)  # what start-up still logs
    size, cpu = log_size(srv), cpu_s(srv.pid)
    sent = [0]
    stop = time.monotonic() + seconds
    await asyncio.gather(*(long_lines(srv.http_port, stop, sent) for _ in range(clients)))
    await asyncio.sleep(0.5)
    written = log_since(srv, size)
    return {
        "bad requests sent": sent[0],
        "log bytes written": len(written),
        "log lines written": written.count(b"\n"),
        "tracebacks": written.count(b"Traceback"),
        "server CPU s": round(cpu_s(srv.pid) - cpu, 2),
    }


async def gzip_body(srv: Served, decoded_mb: int) -> dict[str, Any]:
    lines = b"preamble line\r\n" * (decoded_mb * 1024 * 1024 // 15)
    body = gzip.compress(lines + b"--bnd--\r\n")
    headers = {
        "Authorization": f"Bearer {ATTACKER}",
        "Content-Type": "multipart/form-data; boundary=bnd",
        "Content-Encoding": "gzip",
    }
    cpu, start = cpu_s(srv.pid), time.monotonic()
    async with aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{srv.http_port}/v1/audio/transcriptions"
        async with http.post(url, data=body, headers=headers) as r:
            answer = await r.text()
            status = r.status
    return {
        "Content-Length": len(body),
        "decoded bytes": len(lines) + 9,
        "answer": f"{status} {answer[:90]}",
        "seconds to the answer": round(time.monotonic() - start, 2),
        "server CPU s": round(cpu_s(srv.pid) - cpu, 2),
    }


async def run_tree(tree: Path, opts: argparse.Namespace) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for attack in opts.only:
        with served(tree) as srv:
            if attack == "log":
                out[attack] = await log_flood(srv, opts.seconds, opts.clients)
            elif attack == "gzip":
                out[attack] = await gzip_body(srv, opts.gzip_mb)
        print(f"{tree}: {attack}: {out[attack]}", file=sys.stderr, flush=True)
    return out


async def main(opts: argparse.Namespace) -> dict[str, Any]:
    results = await before_after(opts, run_tree)
    return {"seconds": opts.seconds, "clients": opts.clients, "gzip_mb": opts.gzip_mb, "results": results}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_trees(ap, ATTACKS)
    ap.add_argument("--seconds", type=float, default=10.0, help="how long the log flood runs")
    ap.add_argument("--clients", type=int, default=16, help="the log flood's connections at a time")
    ap.add_argument("--gzip-mb", type=int, default=200, help="what the compressed body decodes to (MB)")
    o = ap.parse_args()
    print_and_save(asyncio.run(main(o)), o.json)
