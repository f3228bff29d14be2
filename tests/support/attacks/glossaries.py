"""Issue 87's attacks on stored glossaries (J3, J4): a ``translate-svc serve`` with glossaries on
(SQLite) and two tenants, a glossary's bodies (JSON, TBX) and the calls that spend them (creates
over the HTTP port, ``TranslateText`` naming glossaries over gRPC), each client on a connection of
its own. The bystander (``bystander.py``) is tenant ``b``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import aiohttp
import grpc

from tests.support.attacks.client import OWN, code_name, metadata
from tests.support.paths import TEST_MODEL
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
