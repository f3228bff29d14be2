"""Issue 87's attacks on stored glossaries (J3, J4): a ``translate-svc serve`` with glossaries on
(SQLite) and two tenants, a glossary's bodies (JSON, TBX) and the calls that spend them (creates
over the HTTP port, ``TranslateText`` naming glossaries over gRPC), each client on a connection of
its own. The bystander (``bystander.py``) is tenant ``b``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import grpc

from tests.support.attacks.bystander import check_loop, realtime_lateness, speech, summary
from tests.support.attacks.client import OWN, code_name, metadata
from tests.support.paths import TEST_MODEL
from tests.support.proc import cpu_s, descendants
from tests.support.server_process import ServerProcess
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

ATTACKER, VICTIM = "glossary-attacker-4e1b", "glossary-victim-7a3c"
TOKENS = f"{ATTACKER} * glossaries tenant=a\n{VICTIM} * tenant=b\n"


@contextlib.contextmanager
def served(env: dict[str, str] | None = None, tokens_text: str = TOKENS) -> Iterator[ServerProcess]:
    """``serve`` on the test checkpoint with glossaries kept in a temporary SQLite file; the HTTP
    port on (``info.http_port``); ``tokens_text``: its tokens file."""
    folder = Path(tempfile.mkdtemp(prefix="attacks-glossaries-"))
    tokens = folder / "tokens"
    tokens.write_text(tokens_text)
    server = ServerProcess(
        [
            *("--model", str(TEST_MODEL), "--host", "127.0.0.1", "--port", "0", "--http-port", "0"),
            *("--tokens-file", str(tokens)),
        ],
        env={
            "TRANSLATE_SVC_GLOSSARIES__ENABLED": "true",
            "TRANSLATE_SVC_GLOSSARIES__DATA_DIR": str(folder / "glossaries"),
            **(env or {}),
        },
    )
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)  # the glossaries' database and the tokens file


def rows(n: int, tag: str, chars: int = 60, target: str = "spa") -> list[dict[str, str]]:
    """``n`` entries of about ``chars`` characters a phrase and a translation, none of them said."""
    pad = "q" * max(0, chars - 20)
    return [
        {"phrase": f"{tag} zed{k:05} {pad}", "translation": f"{tag} zeta{k:05} {pad}", "target_language": target}
        for k in range(n)
    ]


def json_body(gid: str, n: int, chars: int = 60) -> bytes:
    return json.dumps({"id": gid, "display_name": gid, "entries": rows(n, gid, chars)}).encode()


def deep_tbx(size: int) -> bytes:
    """A TBX of ``size`` bytes that only ever opens elements."""
    head = b'<?xml version="1.0" encoding="UTF-8"?><martif type="TBX">'
    return head + b"<text>" * ((size - len(head)) // 6)


async def http_post(
    http: aiohttp.ClientSession, port: int, body: bytes, content_type: str, query: str = ""
) -> tuple[int, str]:
    """A create on ``/v1/glossaries`` as the attacker: its status and its error's message."""
    url = f"http://127.0.0.1:{port}/v1/glossaries{query}"
    headers = {"Authorization": f"Bearer {ATTACKER}", "Content-Type": content_type}
    async with http.post(url, data=body, headers=headers) as r:
        text = await r.text()
        message = ""
        if r.status >= 400 and r.content_type == "application/json":
            message = str(json.loads(text).get("error", {}).get("message", ""))
        return r.status, message


async def create_grpc(address: str, gid: str, n: int, chars: int = 60) -> None:
    entries = [
        pb.GlossaryEntry(phrase=r["phrase"], translation=r["translation"], target_language=r["target_language"])
        for r in rows(n, gid, chars)
    ]
    content = pb.GlossaryContent(entries=pb.GlossaryEntries(entries=entries))
    async with grpc.aio.insecure_channel(address, options=OWN) as ch:
        await pb_grpc.GlossariesStub(ch).CreateGlossary(
            pb.CreateGlossaryRequest(glossary_id=gid, display_name=gid, content=content),
            metadata=metadata(ATTACKER),
            timeout=120,
        )


def text_request(glossaries: Sequence[str]) -> pb.TranslateTextRequest:
    return pb.TranslateTextRequest(
        texts=["the meeting starts at nine"],
        source_language="eng",
        target_languages=["spa"],
        glossaries=list(glossaries),
    )


async def translate_text(address: str, glossaries: Sequence[str]) -> str:
    """One ``TranslateText`` naming ``glossaries``: its status's name."""
    async with grpc.aio.insecure_channel(address, options=OWN) as ch:
        try:
            await pb_grpc.TranslatorStub(ch).TranslateText(
                text_request(glossaries), metadata=metadata(ATTACKER), timeout=120
            )
            return "OK"
        except grpc.aio.AioRpcError as e:
            return code_name(e)


async def texts_until(address: str, glossaries: Sequence[str], stop: asyncio.Event, codes: list[str]) -> None:
    """``TranslateText`` naming ``glossaries`` again and again, each answer's status in ``codes``."""
    async with grpc.aio.insecure_channel(address, options=OWN) as ch:
        stub = pb_grpc.TranslatorStub(ch)
        while not stop.is_set():
            try:
                await stub.TranslateText(text_request(glossaries), metadata=metadata(ATTACKER), timeout=120)
                codes.append("OK")
            except grpc.aio.AioRpcError as e:
                codes.append(code_name(e))
                await asyncio.sleep(0.01)


async def lock_cost(server: ServerProcess, calls: int, call: Callable[[], Awaitable[None]]) -> dict[str, float]:
    """What each of ``calls`` sequential ``call``s costs the server in CPU seconds: ``inside`` its
    own process (under its interpreter lock at worst) and ``outside`` it, in the processes it
    started (the glossaries' parse processes). CPU time, read from /proc: neither the machine's
    load nor, taken as a ratio, its speed moves it, as the seconds a bystander is late would. The
    server does nothing else meanwhile (an idle one takes no measurable CPU)."""
    pid = server.proc.pid
    inside, outside = cpu_s(pid), {k: cpu_s(k) for k in descendants(pid)}
    for _ in range(calls):
        await call()
    spent_in = cpu_s(pid) - inside
    spent_out = sum(cpu_s(k) - outside.get(k, 0.0) for k in descendants(pid))
    return {"inside_s": round(spent_in / calls, 3), "outside_s": round(spent_out / calls, 3)}


async def replacing(port: int, gid: str, stop: asyncio.Event, statuses: list[int], entries: int = 10_000) -> None:
    """Create ``gid``, then replace it with a new ``entries``-entry JSON body without pause."""
    body = json_body(gid, entries, chars=64)
    async with aiohttp.ClientSession() as http:
        statuses.append((await http_post(http, port, body, "application/json"))[0])
        headers = {"Authorization": f"Bearer {ATTACKER}", "Content-Type": "application/json"}
        url = f"http://127.0.0.1:{port}/v1/glossaries/{gid}"
        while not stop.is_set():
            async with http.put(url, data=body, headers=headers) as r:
                await r.read()
                statuses.append(r.status)


async def bystander_under(server: ServerProcess, clients: int) -> dict[str, Any]:
    """Tenant ``b`` streams jfk.flac in real time and checks health every 0.2 s while ``clients``
    replace glossaries without pause: how late its results come, its ``Check``s, the answers."""
    stop = asyncio.Event()
    checks: list[float] = []
    statuses: list[int] = []
    port = server.info.http_port
    assert port is not None
    loops = [asyncio.create_task(check_loop(server.address, stop, checks))]
    loops += [asyncio.create_task(replacing(port, f"j{k}-{clients}", stop, statuses)) for k in range(clients)]
    try:
        late = await realtime_lateness(server.address, VICTIM, speech())
    finally:
        stop.set()
        await asyncio.gather(*loops)
    return {
        "late_s": summary(late),
        "check_s": summary(checks),
        "answers": {s: statuses.count(s) for s in sorted(set(statuses))},
    }


if __name__ == "__main__":  # security finding J4's bystander, measured (docs/security.md)
    ap = argparse.ArgumentParser(description="a bystander's stream while clients replace 10,000-entry glossaries")
    ap.add_argument("--clients", type=int, default=4)
    opts = ap.parse_args()
    slots = {"TRANSLATE_SVC_GLOSSARIES__MAX_IMPORTS": "16", "TRANSLATE_SVC_GLOSSARIES__MAX_IMPORTS_PER_TENANT": "16"}

    async def both(srv: ServerProcess) -> dict[str, Any]:
        return {
            "quiet": await bystander_under(srv, 0),
            f"{opts.clients} clients": await bystander_under(srv, opts.clients),
        }

    with served(slots) as srv:
        print(json.dumps(asyncio.run(both(srv)), indent=1))
