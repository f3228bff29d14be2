"""The security review's attacks (issue 52), one function per attack, and a run that measures them.

Each attack is an async function over a server's address (and a token): it opens what the attack
opens, from this process, and returns what its client saw, as plain values. Tests run them as a
separate client process (``python -m tests.support.attacks.grpc_calls <attack> ...``: one JSON object on stdout,
after a ``started`` line once the attack's calls are open), so the attack's connections and memory
are not the test's. ``measure`` starts a real ``translate-svc serve`` from one or more checkouts
(before and after a fix) with a tokens file of a capped tenant, an uncapped one and a
``languages``-only one, runs every attack against each and reports the figures side by side:

    python -m tests.support.attacks.grpc_calls measure --checkout /tmp/base --checkout . --json out/attacks.json

Attacks:

- ``silent_unary`` (F1): unary calls that never send their message, many per connection.
- ``large_unary`` (F2): concurrent unary calls of a large message each; the caller reads the
  server's peak RSS around it (``peak_rss_growth_mb``).
- ``silent_translate`` (silent Translate callers): Translate calls that never send their clip,
  reopened as the server ends them.

``probe`` is the other tenant's view meanwhile: a health Check, ListLanguages and a short
StreamingTranslate, each with its status and latency.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc

from tests.support.attacks.bystander import probe
from tests.support.attacks.checkouts import add_measure, commit, save_runs
from tests.support.attacks.client import OWN, code_name, metadata, most_held, silent
from tests.support.proc import peak_rss_growth_mb

MB = 1024 * 1024
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
METHODS = {
    "ListLanguages": "/translate_svc.api.v1.Translator/ListLanguages",
    "Translate": "/translate_svc.api.v1.Translator/Translate",
    "TranslateText": "/translate_svc.api.v1.Translator/TranslateText",
    "StreamingTranslate": "/translate_svc.api.v1.Translator/StreamingTranslate",
    "riva.TranslateText": "/nvidia.riva.nmt.RivaTranslation/TranslateText",
    "riva.ListSupportedLanguagePairs": "/nvidia.riva.nmt.RivaTranslation/ListSupportedLanguagePairs",
}
#: the tokens file ``measure`` serves with: a capped tenant, an uncapped one, a languages-only token
TOKENS = {
    "uncapped": "attacks-uncapped-token-5f1c",
    "capped": "attacks-capped-token-0a9e",
    "languages": "attacks-languages-token-77d2",
    "other": "attacks-other-tenant-token-3b6d",
}
TOKENS_FILE = (
    f"{TOKENS['uncapped']} * tenant=acme\n"
    f"{TOKENS['capped']} stream,translate tenant=capped translate_calls=1\n"
    f"{TOKENS['languages']} languages\n"
    f"{TOKENS['other']} * tenant=other\n"
)


async def silent_unary(
    address: str,
    token: str | None,
    method: str = "ListLanguages",
    *,
    connections: int = 4,
    per_connection: int = 300,
    hold_s: float = 8.0,
    started: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """F1: ``connections`` x ``per_connection`` calls of ``method`` that never send their message,
    held until each has ended or ``hold_s`` passed: the server admits a call when a slot frees,
    which under load may be seconds into the flood, and ends it a read deadline later. Returns how
    many were still open (held by the server) at each second, the most at once, each call's
    status once it ended (or ``held`` if it was still open after ``hold_s``), and
    ``refused_by``: when (``time.monotonic()``, a clock all processes share) the last call the
    server refused outright ended here, i.e. when the server was through the flood's refusals;
    ``begun_at``: when the calls were opened (the same clock)."""
    release = asyncio.Event()
    chs = [grpc.aio.insecure_channel(address, options=OWN) for _ in range(connections)]
    ended_at: dict[int, float] = {}
    begun_at = time.monotonic()
    try:
        calls = [
            ch.stream_unary(METHODS[method])(silent(release), metadata=metadata(token))
            for ch in chs
            for _ in range(per_connection)
        ]
        for i, c in enumerate(calls):
            c.add_done_callback(lambda _call, i=i: ended_at.setdefault(i, time.monotonic()))
        loop = asyncio.get_running_loop()
        start = loop.time()
        open_by_second: list[int] = []
        await asyncio.sleep(1.0)
        started()
        while loop.time() - start < hold_s and not all(c.done() for c in calls):
            open_by_second.append(sum(not c.done() for c in calls))
            await asyncio.sleep(min(1.0, max(0.0, hold_s - (loop.time() - start))))
        held = sum(not c.done() for c in calls)
        codes: Counter[str] = Counter()
        refused_by = 0.0
        for i, c in enumerate(calls):
            if not c.done():
                codes["held"] += 1
                c.cancel()
                continue
            try:
                await c
                codes["OK"] += 1
            except grpc.aio.AioRpcError as e:
                codes[e.code().name] += 1
                if e.code() is not grpc.StatusCode.DEADLINE_EXCEEDED:  # refused, not admitted and timed out
                    refused_by = max(refused_by, ended_at.get(i, 0.0))
        release.set()
        return {
            "attack": "silent_unary",
            "method": method,
            "calls": len(calls),
            "open_each_second": open_by_second,
            "held_most": max(open_by_second, default=0),
            "held_at_end": held,
            "codes": dict(codes),
            "refused_by": refused_by,
            "begun_at": begun_at,
        }
    finally:
        for ch in chs:
            await ch.close(grace=None)


async def large_unary(
    address: str,
    token: str | None,
    method: str = "ListLanguages",
    *,
    calls: int = 8,
    mib: float = 60,
    started: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """F2: ``calls`` concurrent calls of ``method``, each one message of ``mib`` MiB (zeros: the
    server's size check, not its parser, is what is measured). Returns their statuses."""
    payload = bytes(int(mib * MB))
    options = [*OWN, ("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    async with grpc.aio.insecure_channel(address, options=options) as ch:
        call = ch.unary_unary(METHODS[method])
        started()
        outcomes = await asyncio.gather(
            *(call(payload, metadata=metadata(token), timeout=120) for _ in range(calls)), return_exceptions=True
        )
    codes = Counter("OK" if isinstance(o, bytes) else code_name(o) for o in outcomes)
    details = sorted({(o.details() or "")[:120] for o in outcomes if isinstance(o, grpc.aio.AioRpcError)})
    return {
        "attack": "large_unary",
        "method": method,
        "calls": calls,
        "mib": mib,
        "codes": dict(codes),
        "details": details,
    }


async def silent_translate(
    address: str,
    token: str | None,
    *,
    slots: int = 8,
    seconds: float = 20.0,
    started: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """Silent Translate callers: ``slots`` Translate calls that never send their clip, each
    reopened once the server ends it (at once if it was refused; 50 ms later, so a refusal loop
    does not spin), for ``seconds``. Returns the most held at once (open for over a second: the
    server admitted them) and the statuses of those that ended."""
    release = asyncio.Event()
    codes: Counter[str] = Counter()
    opened_at: dict[int, float] = {}
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    async with grpc.aio.insecure_channel(address, options=OWN) as ch:
        translate = ch.stream_unary(METHODS["Translate"])

        async def slot(k: int) -> None:
            while loop.time() < end:
                opened_at[k] = loop.time()
                call = translate(silent(release), metadata=metadata(token))
                try:
                    await asyncio.wait_for(asyncio.shield(call), max(0.0, end - loop.time()))
                    codes["OK"] += 1
                except grpc.aio.AioRpcError as e:
                    codes[e.code().name] += 1
                except TimeoutError:
                    call.cancel()
                    break
                finally:
                    opened_at.pop(k, None)
                await asyncio.sleep(0.05)

        tasks = [asyncio.create_task(slot(k)) for k in range(slots)]
        most = await most_held(opened_at, end, started)
        release.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {"attack": "silent_translate", "slots": slots, "seconds": seconds, "held_most": most, "codes": dict(codes)}


async def translate_probe(address: str, token: str | None) -> dict[str, Any]:
    """The other tenant's Translate of a 1 s clip (silence): its status and seconds."""
    from translate_svc.api.v1 import translate_pb2 as pb
    from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

    request = pb.TranslateRequest(
        audio=pb.AudioInput(content=bytes(32000), format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000)),
        target_languages=["spa"],
    )
    async with grpc.aio.insecure_channel(address, options=OWN) as ch:
        t = time.perf_counter()
        try:
            await pb_grpc.TranslatorStub(ch).Translate(request, metadata=metadata(token), timeout=30)
            code = "OK"
        except grpc.aio.AioRpcError as e:
            code = e.code().name
    return {"code": code, "seconds": round(time.perf_counter() - t, 3)}


# -- measure: a server per checkout, every attack ---------------------------------------------------


@contextlib.contextmanager
def server(checkout: Path, model: str, env: dict[str, str] | None = None) -> Any:
    """``translate-svc serve`` of ``checkout`` (its code first on the path) with the tokens file and
    the Riva door, on a free port; yields (address, pid)."""
    from translate_svc.cli import ready_file as ready

    tmp = Path(tempfile.mkdtemp(prefix="attacks-"))
    (tmp / "tokens").write_text(TOKENS_FILE)
    cmd = [sys.executable, "-m", "translate_svc.cli", "serve", "--model", model, "--host", "127.0.0.1", "--port", "0"]
    cmd += ["--tokens-file", str(tmp / "tokens"), "--riva", "--ready-file", str(tmp / "ready.json")]
    full_env = {**os.environ, "PYTHONPATH": str(checkout), **(env or {})}
    proc = subprocess.Popen(cmd, cwd=checkout, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=full_env)
    try:
        info = ready.wait(tmp / "ready.json", proc, 300)
        yield f"127.0.0.1:{info.port}", proc.pid
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)


async def _during(attack: Awaitable[dict[str, Any]], probe_after_s: float, probes: Callable[[], Awaitable[Any]]) -> Any:
    task = asyncio.ensure_future(attack)
    await asyncio.sleep(probe_after_s)
    seen = await probes()
    return await task, seen


async def measure_one(checkout: Path, model: str) -> dict[str, Any]:
    out: dict[str, Any] = {"checkout": str(checkout), "commit": commit(checkout)}
    with server(checkout, model) as (address, pid):
        # F1: a languages-only token, 4 connections x 300 silent ListLanguages; the other tenant meanwhile
        with peak_rss_growth_mb(pid) as rss:
            attack, seen = await _during(
                silent_unary(address, TOKENS["languages"], "ListLanguages", hold_s=8),
                2.0,
                lambda: probe(address, TOKENS["other"]),
            )
        out["silent_list_languages"] = {**attack, "other_tenant": seen, "peak_rss_growth_mb": rss["mb"]}
        attack, seen = await _during(
            silent_unary(address, TOKENS["capped"], "riva.TranslateText", hold_s=8),
            2.0,
            lambda: probe(address, TOKENS["other"]),
        )
        out["silent_riva_translate_text"] = {**attack, "other_tenant": seen}
    # F2: 8 x 60 MiB per method, each on a fresh server
    for method, who in [
        ("ListLanguages", "languages"),
        ("TranslateText", "uncapped"),
        ("riva.TranslateText", "uncapped"),
        ("Translate", "uncapped"),
    ]:
        with server(checkout, model) as (address, pid), peak_rss_growth_mb(pid) as rss:
            attack = await large_unary(address, TOKENS[who], method)
        out[f"large_{method}"] = {**attack, "peak_rss_growth_mb": rss["mb"], "rss_after_mb": rss["after_mb"]}
    # just under the receive limit: what one token's admitted unary calls can make the server buffer
    with server(checkout, model) as (address, pid), peak_rss_growth_mb(pid) as rss:
        attack = await large_unary(address, TOKENS["languages"], "ListLanguages", calls=16, mib=3.9)
    out["near_limit_ListLanguages"] = {**attack, "peak_rss_growth_mb": rss["mb"], "rss_after_mb": rss["after_mb"]}
    # silent Translate callers: an uncapped tenant keeps 8 silent Translate calls open for 20 s
    with server(checkout, model) as (address, pid):

        async def others() -> list[dict[str, Any]]:
            got = []
            for _ in range(5):
                got.append(await translate_probe(address, TOKENS["capped"]))
                await asyncio.sleep(1)
            return got

        attack, seen = await _during(silent_translate(address, TOKENS["uncapped"], seconds=20), 3.0, others)
        out["silent_translate"] = {**attack, "other_tenant_translate": seen}
    return out


# -- the command line ---------------------------------------------------------------------------------


def _run_attack(opts: argparse.Namespace) -> dict[str, Any]:
    def started() -> None:
        print("started", flush=True)  # the test's signal: the attack's calls are open

    if opts.command == "silent-unary":
        return asyncio.run(
            silent_unary(
                opts.address,
                opts.token,
                opts.method,
                connections=opts.connections,
                per_connection=opts.per_connection,
                hold_s=opts.hold_s,
                started=started,
            )
        )
    if opts.command == "large-unary":
        return asyncio.run(
            large_unary(opts.address, opts.token, opts.method, calls=opts.calls, mib=opts.mib, started=started)
        )
    if opts.command == "silent-translate":
        return asyncio.run(
            silent_translate(opts.address, opts.token, slots=opts.slots, seconds=opts.seconds, started=started)
        )
    raise AssertionError(opts.command)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    add_measure(sub)
    for name in ("silent-unary", "large-unary", "silent-translate"):
        a = sub.add_parser(name)
        a.add_argument("--address", required=True)
        a.add_argument("--token", default=None)
        if name != "silent-translate":
            a.add_argument("--method", default="ListLanguages", choices=sorted(METHODS))
    su = sub.choices["silent-unary"]
    su.add_argument("--connections", type=int, default=4)
    su.add_argument("--per-connection", type=int, default=300)
    su.add_argument("--hold-s", type=float, default=8.0)
    lu = sub.choices["large-unary"]
    lu.add_argument("--calls", type=int, default=8)
    lu.add_argument("--mib", type=float, default=60)
    st = sub.choices["silent-translate"]
    st.add_argument("--slots", type=int, default=8)
    st.add_argument("--seconds", type=float, default=20.0)
    opts = ap.parse_args(argv)
    if opts.command == "measure":
        runs = [asyncio.run(measure_one(c.resolve(), opts.model)) for c in opts.checkout]
        save_runs(runs, opts.json)
        return
    print(json.dumps(_run_attack(opts)), flush=True)


if __name__ == "__main__":
    main()
