"""A live stream's raw token is not kept, only its digest (as docs/security.md says), and revoking
it still ends the stream: issue 34's low finding N18, the one that needs a live stream.

(N15, the metrics port, is in tests/observability/test_metrics.py; N17, tracing, in
tests/observability/test_tracing.py.)
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import os
import types
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest

from tests.support.fake_runner import FakeRunner
from tests.support.live_server import LiveServer, make_settings, serving
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.transport.http.caller import Caller
from translate_svc.transport.openai.door import PATH as REALTIME_PATH
from translate_svc.transport.tokens.file import TokenDigest
from translate_svc.transport.tokens.revocation import Revocation

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

#: the token the streams are opened with: looked for, by value, in what the server keeps
RAW = "n18-raw-token-5e0c2b7d9a41f3"
OTHER = "n18-other-token-0b6d3f8e2c17"
DEADLINE_S = 15.0


def holders(root: object, secret: str, *, skip: tuple[type, ...]) -> list[str]:
    """Paths from ``root`` to a str or bytes that holds ``secret``: through containers, objects'
    attributes (``__dict__`` and slots) and bound methods' objects, not into ``skip`` (the live
    streams themselves), functions, modules or classes."""
    needle = secret.encode()
    found: list[str] = []
    seen: set[int] = set()
    stack: list[tuple[object, str]] = [(root, type(root).__name__)]
    while stack:
        obj, path = stack.pop()
        if isinstance(obj, str | bytes | bytearray | memoryview):
            pass  # every path to a string is reported
        elif id(obj) in seen:
            continue
        else:
            seen.add(id(obj))
        if isinstance(obj, str):
            found += [path] if secret in obj else []
        elif isinstance(obj, bytes | bytearray | memoryview):
            found += [path] if needle in bytes(obj) else []
        elif isinstance(obj, dict):
            for k, v in obj.items():
                if not isinstance(k, skip):
                    stack.append((k, f"{path} key"))
                stack.append((v, f"{path}[{k!r:.40}]"))
        elif isinstance(obj, list | tuple | set | frozenset):
            stack += [(v, f"{path}[{i}]") for i, v in enumerate(obj)]
        elif isinstance(obj, types.MethodType):
            stack.append((obj.__self__, f"{path}.__self__"))
        elif isinstance(obj, (*skip, type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType)):
            continue
        else:
            for name in getattr(obj, "__dict__", {}):
                stack.append((getattr(obj, name), f"{path}.{name}"))
            for klass in type(obj).__mro__:
                for name in getattr(klass, "__slots__", ()):
                    if hasattr(obj, name):
                        stack.append((getattr(obj, name), f"{path}.{name}"))
    return found


async def until(check: Any, what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE_S
    while not check():
        assert loop.time() < end, f"not within {DEADLINE_S} s: {what}"
        await asyncio.sleep(0.05)


def revocations(live: LiveServer) -> list[Revocation]:
    servicer = live.server.servicer._revocation
    assert servicer is not None and live.server.realtime is not None
    realtime = live.server.realtime.callers.revocation
    assert realtime is not None
    return [servicer, realtime]


async def test_a_live_streams_raw_token_is_not_kept_and_revoking_it_still_ends_the_stream(
    test_model_dir: Path, tmp_path: Path
) -> None:
    """A gRPC stream and a realtime session opened with one token, both live: the revocation
    watchers hold its SHA-256 digest, and nothing reachable from them, the token store or the
    realtime ``Caller`` holds the token itself. Removing it from the file then ends both."""
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{RAW}\n{OTHER} languages\n")
    settings = make_settings(test_model_dir)
    settings.auth.tokens_file = tokens
    settings.server.http_port = 0
    go_on = asyncio.Event()
    async with serving(settings, warmup=False, runner_factory=FakeRunner) as live:
        assert live.server.http is not None and live.server.tokens is not None

        async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
            fmt = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000)
            yield pb.StreamingTranslateRequest(config=pb.StreamingConfig(format=fmt, target_languages=["spa"]))
            await go_on.wait()  # open, sending nothing, until the end of the test

        call = live.stub.StreamingTranslate(requests(), metadata=(("authorization", f"Bearer {RAW}"),), timeout=60)
        first = await call.read()
        assert isinstance(first, pb.StreamingTranslateResponse) and first.HasField("started")

        url = f"ws://127.0.0.1:{live.server.http.port}{REALTIME_PATH}?model=m"
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(url, headers={"Authorization": f"Bearer {RAW}"})
            assert json.loads((await ws.receive()).data)["type"] == "session.created"
            await ws.send_json({"type": "session.update", "session": {"audio": {"output": {"language": "es"}}}})
            assert json.loads((await ws.receive()).data)["type"] == "session.updated"  # its stream started

            watchers = revocations(live)
            await until(lambda: all(len(r._live) == 1 for r in watchers), "both streams watched")
            digest = TokenDigest(hashlib.sha256(RAW.encode()).digest())
            assert [[w.digest for w in r._live.values()] for r in watchers] == [[digest], [digest]]
            callers = [o for o in gc.get_objects() if type(o) is Caller and o.token is not None]
            assert [c.token for c in callers] == [digest]  # the realtime session's
            streams = tuple({type(s) for r in watchers for s in r._live})  # the drivers: not the watchers' own
            for root in [*watchers, live.server.tokens, *callers]:
                assert holders(root, RAW, skip=streams) == [], f"the raw token is kept under {type(root).__name__}"

            # the token removed: both end, with nothing else happening
            tmp = tokens.with_suffix(".new")
            tmp.write_text(f"{OTHER} languages\n")
            os.replace(tmp, tokens)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                async with asyncio.timeout(DEADLINE_S):
                    while await call.read() is not grpc.aio.EOF:
                        pass
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED and "revoked" in (err.value.details() or "")
            events: list[dict[str, Any]] = []
            async with asyncio.timeout(DEADLINE_S):
                while not events or events[-1]["type"] != "session.closed":
                    events.append(json.loads((await ws.receive()).data))
            assert any(e["type"] == "error" and "revoked" in e["error"]["message"] for e in events), events
            await ws.close()
        go_on.set()
