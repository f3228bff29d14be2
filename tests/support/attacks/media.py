"""Hardening 7's probes of the jobs' untrusted media (docs/security.md, "Hardening 7: untrusted
media"): a tenant that keeps ``complete`` calls in flight on uploads that decode for hours (K1),
run as a client process of its own (``AttackProcess``, or this module's command line)::

    python -m tests.support.attacks.media completes --http-port 8080 --token T --file k1.mkv \\
        --jobs 8 --seconds 120

It makes ``--jobs`` jobs, uploads ``--file`` to each (parts of 16 MiB), then keeps a ``complete``
in flight for each: one answered 429 is sent again after its ``Retry-After``; one that fails its
job (400) or queues it (202) is followed by a new job, uploaded again. It prints ``started`` once
every job's first ``complete`` is sent, and at its end (``--seconds``, or the server gone) one JSON
line: the answers' statuses counted, the jobs made, and how many requests failed to connect.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import aiohttp

PART = 16 * 1024 * 1024


async def keep_completing(http_port: int, token: str, data: bytes, jobs: int, seconds: float) -> dict[str, Any]:
    base = f"http://127.0.0.1:{http_port}/v1/jobs"
    headers = {"Authorization": f"Bearer {token}"}
    statuses: collections.Counter[str] = collections.Counter()
    made = 0
    sent_first = 0
    started = asyncio.Event()
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    timeout = aiohttp.ClientTimeout(total=seconds + 60)

    async def one(http: aiohttp.ClientSession) -> None:
        nonlocal made, sent_first
        first = True
        while loop.time() < end:
            async with http.post(base, json={"source_language": "eng", "target_languages": ["spa"]}) as r:
                job = await r.json()
                if r.status != 201:
                    statuses[f"create {r.status}"] += 1
                    await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
                    continue
            made += 1
            for at in range(0, len(data), PART):
                async with http.put(f"{base}/{job['id']}/audio", data=data[at : at + PART]) as r:
                    await r.read()
            while loop.time() < end:
                if first:
                    first, sent_first = False, sent_first + 1
                    if sent_first == jobs:
                        loop.call_later(0.5, started.set)
                async with http.post(f"{base}/{job['id']}/complete") as r:
                    await r.read()
                    statuses[str(r.status)] += 1
                    if r.status != 429:
                        break
                    await asyncio.sleep(float(r.headers.get("Retry-After", "1")))

    failed = 0

    async def run() -> None:
        nonlocal failed
        connector = aiohttp.TCPConnector(force_close=True, limit=0)
        async with aiohttp.ClientSession(headers=headers, timeout=timeout, connector=connector) as http:
            results = await asyncio.gather(*(one(http) for _ in range(jobs)), return_exceptions=True)
        failed = sum(isinstance(r, aiohttp.ClientError | asyncio.TimeoutError) for r in results)
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, aiohttp.ClientError | asyncio.TimeoutError):
                raise r

    async def say_started() -> None:
        await started.wait()
        print("started", flush=True)

    teller = asyncio.create_task(say_started())
    await run()
    if not started.is_set():
        print("started", flush=True)  # the server went before every job's first complete was sent
    teller.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await teller
    return {"statuses": dict(statuses), "jobs_made": made, "requests_failed": failed}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.support.attacks.media")
    sub = parser.add_subparsers(dest="attack", required=True)
    completes = sub.add_parser("completes", help="keep complete calls in flight on --file (K1)")
    completes.add_argument("--http-port", type=int, required=True)
    completes.add_argument("--token", required=True)
    completes.add_argument("--file", type=Path, required=True)
    completes.add_argument("--jobs", type=int, default=8)
    completes.add_argument("--seconds", type=float, default=120)
    opts = parser.parse_args(argv)
    data = opts.file.read_bytes()
    got = asyncio.run(keep_completing(opts.http_port, opts.token, data, opts.jobs, opts.seconds))
    print(json.dumps(got), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
