"""Issue 87's probes of the jobs API (the review "Hardening 6", findings J2-J10), shared by the
tests that hold the fixes (tests/transport/jobs/, tests/jobs/): a server's jobs address, tokens
lines with the ``jobs`` permission, long polls that hold their connections, parts sent and then
stalled, and what the HTTP port's connection budget holds now.

``JOBS`` is the permission the jobs API asks for since issue 87; a checkout from before it knew
none (its tokens file refuses the word), so a run against such a checkout sets it empty (the
"before" runs in docs/security.md, "Issue 87: jobs").

Run as a probe at the review's scale (one ``translate-svc serve`` of the checkout it runs from, the
HTTP port at its default cap: 520 long polls of one token, then 96 parts of 16 MiB sent 15 MiB and
stalled; what another tenant and ``/healthz`` got meanwhile, the server's peak RSS growth)::

    python -m tests.support.attacks.jobs --polls 520 --parts 96
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.live_server import LiveServer
from tests.support.paths import TEST_MODEL

#: the tokens file's permission for the jobs API (empty: a checkout from before issue 87)
JOBS = os.environ.get("TRANSLATE_SVC_TEST_JOBS_PERMISSION", "jobs")


def token_line(token: str, tenant: str, *options: str) -> str:
    """A tokens file's line for a token that may call everything and submit jobs."""
    return " ".join([token, "*", JOBS, f"tenant={tenant}", *options]).replace("  ", " ") + "\n"


def jobs_url(live: LiveServer) -> str:
    return f"http://127.0.0.1:{live.server.ports()['http_port']}/v1/jobs"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def serving_connections(live: LiveServer) -> int:
    """Connections of the HTTP port serving a request now (a long poll, a part being received)."""
    from translate_svc.transport.http.door import HttpDoor

    door = live.server.door(HttpDoor)
    assert door is not None and door.site is not None
    budget = door.site.budget
    return budget.open - budget.waiting


async def status_of(http: aiohttp.ClientSession, method: str, url: str, token: str, **kw: Any) -> tuple[int, Any]:
    """One request's status and body (JSON when it is), on a connection of its own."""
    try:
        async with http.request(method, url, headers=bearer(token), **kw) as r:
            body = await r.read()
            if r.content_type == "application/json":
                return r.status, await r.json()
            return r.status, body
    except aiohttp.ClientError as e:
        return 0, type(e).__name__


async def create_job(http: aiohttp.ClientSession, base: str, token: str) -> dict[str, Any]:
    """A new job that waits for its upload (a long poll on it waits its whole time)."""
    status, job = await status_of(
        http, "POST", base, token, json={"source_language": "eng", "target_languages": ["spa"]}
    )
    assert status == 201, job
    return dict(job)


def long_polls(http: aiohttp.ClientSession, base: str, token: str, job_id: str, n: int) -> list[asyncio.Task[Any]]:
    """``n`` status long polls (``?wait=60``) at once, each on a connection of its own."""
    url = f"{base}/{job_id}?wait=60"
    return [asyncio.create_task(status_of(http, "GET", url, token)) for _ in range(n)]


async def stalled_part(port: int, path: str, token: str, declared: int, sent: int) -> tuple[int, float]:
    """A part that declares ``declared`` bytes, sends ``sent`` of them and stalls: the status the
    server answers (0: none before the connection closed) and when (loop time). Raw socket: the
    client's own buffers hold nothing back; the answer is read while the part is sent (a server
    that refuses it unread answers at once)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {declared}\r\n\r\n"
    )
    answer = asyncio.create_task(reader.readline())
    try:
        writer.write(head.encode())
        chunk = bytes(256 * 1024)
        left = sent
        while left > 0 and not answer.done():
            writer.write(chunk[: min(left, len(chunk))])
            left -= len(chunk)
            await writer.drain()
        line = await answer
    except ConnectionError:
        line = answer.result() if answer.done() and not answer.exception() else b""
    finally:
        answer.cancel()
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass
    parts = line.split()
    return (int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0), asyncio.get_running_loop().time()


async def at_once(port: int, method: str, path: str, token: str, body: bytes, n: int) -> list[tuple[int, bytes]]:
    """``n`` requests sent together: their connections opened first, then every request written in
    one go (what a client's pool does only by luck); each answer's status and body."""
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(n)]
    request = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    for _, writer in conns:
        writer.write(request)
    answers = []
    for reader, writer in conns:
        raw = await reader.read()
        writer.close()
        head, _, rest = raw.partition(b"\r\n\r\n")
        parts = head.split(b"\r\n", 1)[0].split()
        answers.append((int(parts[1]) if len(parts) > 1 else 0, rest))
    return answers


async def uploaded_job(
    http: aiohttp.ClientSession, base: str, token: str, audio: bytes, *, targets: tuple[str, ...] = ("spa",)
) -> dict[str, Any]:
    """A job made, its audio uploaded in parts of 4 MiB and completed: the job as ``complete`` answered."""
    status, job = await status_of(
        http, "POST", base, token, json={"source_language": "eng", "target_languages": list(targets)}
    )
    assert status == 201, job
    step = 4 * 1024 * 1024
    for at in range(0, len(audio), step):
        status, got = await status_of(http, "PUT", f"{base}/{job['id']}/audio", token, data=audio[at : at + step])
        assert status == 200, got
    status, queued = await status_of(http, "POST", f"{base}/{job['id']}/complete", token)
    assert status == 202, queued
    return dict(queued)


FLOOD, QUIET = "probe-flood-token-5e1d", "probe-quiet-token-9a3c"


async def probe(polls: int, parts: int, settle_s: float) -> dict[str, Any]:
    """The review's J2 at scale, against a ``translate-svc serve`` of this checkout."""
    from tests.support.proc import peak_rss_growth_mb
    from tests.support.server_process import ServerProcess

    tmp = Path(tempfile.mkdtemp(prefix="jobs-probe-"))
    (tmp / "tokens").write_text(token_line(FLOOD, "flood", f"jobs={parts + 1}") + token_line(QUIET, "quiet"))
    env = {"TRANSLATE_SVC_AUTH__TOKENS_FILE": str(tmp / "tokens"), "TRANSLATE_SVC_JOBS__DIR": str(tmp / "jobs")}
    args = ["--model", str(TEST_MODEL), "--host", "127.0.0.1", "--port", "0", "--http-port", "0"]
    server = await asyncio.to_thread(ServerProcess, args, env)
    out: dict[str, Any] = {}
    loop = asyncio.get_running_loop()
    try:
        port = server.info.http_port
        assert port is not None
        base = f"http://127.0.0.1:{port}/v1/jobs"
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as http:
            job = await create_job(http, base, FLOOD)
            held = long_polls(http, base, FLOOD, job["id"], polls)
            await asyncio.sleep(settle_s)  # a probe's settling time, not a test's
            answered = [t.result()[0] for t in held if t.done()]
            out["long polls"] = {"sent": polls, "held": polls - len(answered), "answered": sorted(set(answered))}
            create = await status_of(http, "POST", base, QUIET, json={"target_languages": ["spa"]})
            healthz = await status_of(http, "GET", f"http://127.0.0.1:{port}/healthz", QUIET)
            out["meanwhile"] = {"healthz": healthz[0], "another tenant's create": create[0]}
            for t in held:
                t.cancel()
            await asyncio.gather(*held, return_exceptions=True)
            await status_of(http, "POST", f"{base}/{job['id']}/cancel", FLOOD)
            jobs = [await create_job(http, base, FLOOD) for _ in range(parts)]
        began = loop.time()
        with peak_rss_growth_mb(server.proc.pid) as grown:
            got = await asyncio.gather(
                *(stalled_part(port, f"/v1/jobs/{j['id']}/audio", FLOOD, 16 << 20, 15 << 20) for j in jobs)
            )
        out["stalled parts"] = {
            "parts": parts,
            "peak RSS growth MB": grown["mb"],
            "answered": sorted({status for status, _ in got}),
            "the last after s": round(max(at for _, at in got) - began, 1),
        }
    finally:
        await asyncio.to_thread(server.stop)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--polls", type=int, default=520)
    ap.add_argument("--parts", type=int, default=96)
    ap.add_argument("--settle-s", type=float, default=8.0)
    opts = ap.parse_args()
    print(json.dumps(asyncio.run(probe(opts.polls, opts.parts, opts.settle_s)), indent=1))


if __name__ == "__main__":
    main()
