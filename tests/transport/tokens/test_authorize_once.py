"""One token decision per call (issue 43): the gRPC port's interceptor looks the token up once and
the handler takes the caller it let in (``rpc.caller_of``), instead of a second lookup
(``tenant_of``, before); the OpenAI door looks it up once at the handshake. Over a real server on
loopback with a tokens file, counting ``TokenStore.lookup``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import grpc
import pytest

from tests.support.fake_runner import FakeRunner
from tests.support.live_server import make_settings, serving
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.transport.openai.door import PATH
from translate_svc.transport.tokens.file import Grant, TokenDigest
from translate_svc.transport.tokens.store import TokenStore

pytestmark = pytest.mark.integration

ALL = "once-all-token-6e1f3a"
LANG_ONLY = "once-lang-token-2b8c4d"


async def test_each_call_looks_its_token_up_once(
    test_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{ALL} * tenant=acme\n{LANG_ONLY} languages\n")
    settings = make_settings(test_model_dir)
    settings.auth.tokens_file = tokens
    settings.server.http_port = 0
    looked: list[str] = []
    real_lookup = TokenStore.lookup

    def counting(self: TokenStore, token: str | TokenDigest) -> Grant | None:
        looked.append("digest" if isinstance(token, TokenDigest) else "token")
        return real_lookup(self, token)

    monkeypatch.setattr(TokenStore, "lookup", counting)
    async with serving(settings, warmup=False, runner_factory=FakeRunner) as live:
        await live.stub.ListLanguages(pb.ListLanguagesRequest(), metadata=(("authorization", f"Bearer {ALL}"),))
        assert looked == ["token"]

        async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
            fmt = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000)
            yield pb.StreamingTranslateRequest(config=pb.StreamingConfig(format=fmt, target_languages=["spa"]))
            yield pb.StreamingTranslateRequest(audio=b"\x00\x00" * 1600)

        looked.clear()
        call = live.stub.StreamingTranslate(requests(), metadata=(("authorization", f"Bearer {ALL}"),), timeout=30)
        got = [r async for r in call]
        assert got[0].HasField("started") and got[-1].HasField("ended")
        assert looked == ["token"]  # the servicer took the interceptor's caller (tenant acme, its digest)

        looked.clear()
        refused = live.stub.StreamingTranslate(requests(), metadata=(("authorization", f"Bearer {LANG_ONLY}"),))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in refused:
                pass
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert err.value.details() == (
            'the token lacks the permission "stream" that StreamingTranslate needs; ask for a token with it'
        )
        assert looked == ["token"]

        looked.clear()
        assert live.server.http is not None
        url = f"ws://127.0.0.1:{live.server.http.port}{PATH}?model=m"
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(url, headers={"Authorization": f"Bearer {ALL}"}) as ws:
                assert json.loads((await ws.receive()).data)["type"] == "session.created"
                await ws.send_json({"type": "session.close"})
            assert looked == ["token"]
            looked.clear()
            async with http.get(url, headers={"Authorization": f"Bearer {LANG_ONLY}"}) as r:
                body = await r.json()
            assert r.status == 403 and body["error"]["code"] == "insufficient_permissions"
            assert body["error"]["message"] == 'the token lacks the permission "stream" that a realtime session needs'
            assert looked == ["token"]
