"""A revocation reaches what was let in before it (issue 34's revocation holes), each over a real
server on loopback with a tokens file: a stream whose token is revoked before its config (N4), a
tokens file that fails to read once (N5), and a client secret of a tenant removed from the file
(N11)."""

from __future__ import annotations

import asyncio
import errno
import os
import pathlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client import REGISTRY

from tests.support.live_server import make_settings, serving
from tests.support.realtime import MODEL, openai_client, session_events
from tests.support.tokens import ALL, LANG_ONLY, bearer, reloaded, replace
from tests.support.waiting import eventually
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.client_cli.decode import load_pcm16k

pytestmark = pytest.mark.integration

TENANT_T = "t-stream-token-4d7a1c9e"


async def test_a_token_revoked_before_its_stream_sends_its_config_is_refused(
    test_model_dir: Path, tmp_path: Path, shared_audio: Path
) -> None:
    """N4: the stream was opened (the interceptor let the token in) but its config had not come
    when the token was removed: the config is refused with UNAUTHENTICATED, nothing is served."""
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{ALL}\n{LANG_ONLY} languages\n")
    settings = make_settings(test_model_dir)
    settings.auth.tokens_file = tokens
    speech = load_pcm16k(shared_audio / "jfk.flac")[: 16000 * 4].tobytes()
    go = asyncio.Event()
    async with serving(settings) as live:

        async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
            await go.wait()
            fmt = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000)
            yield pb.StreamingTranslateRequest(config=pb.StreamingConfig(format=fmt, target_languages=["spa"]))
            for at in range(0, len(speech), 32000):
                yield pb.StreamingTranslateRequest(audio=speech[at : at + 32000])

        call = live.stub.StreamingTranslate(requests(), metadata=bearer(ALL), timeout=30)
        await call.initial_metadata()  # the handler runs: the token was let in
        assert live.server.tokens is not None
        before = live.server.tokens.reloads
        replace(tokens, f"{LANG_ONLY} languages\n")  # ALL revoked
        await reloaded(live, before)
        go.set()
        got: list[pb.StreamingTranslateResponse] = []
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for r in call:
                got.append(r)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED and "revoked" in (err.value.details() or "")
    assert got == []  # not started, no segment


async def test_a_tokens_file_that_failed_to_read_once_is_read_again(
    test_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """N5: the file changed (a token removed) but reading it failed (EMFILE); it is read again at
    every check until a read succeeds, though its stat no longer changes: the removal takes effect
    then, and ``translate_svc_tokens_file_ok`` says 0 meanwhile, 1 after."""
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{ALL}\n{LANG_ONLY} languages\n")
    settings = make_settings(test_model_dir)
    settings.auth.tokens_file = tokens
    failing = True
    reads_failed = 0
    real_read_text = pathlib.Path.read_text

    def flaky_read_text(self: pathlib.Path, *args: Any, **kwargs: Any) -> str:
        nonlocal reads_failed
        if failing and self == tokens:
            reads_failed += 1
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
        return real_read_text(self, *args, **kwargs)

    async with serving(settings) as live:
        monkeypatch.setattr(pathlib.Path, "read_text", flaky_read_text)
        replace(tokens, f"{LANG_ONLY} languages\n")  # ALL revoked, but the read fails

        async def gauge_is(value: float) -> bool:
            return REGISTRY.get_sample_value("translate_svc_tokens_file_ok") == value

        await eventually(lambda: gauge_is(0), "the gauge at 0 while the file cannot be read")
        await asyncio.sleep(1.5)  # more checks fail: the same error
        # the last good set is kept meanwhile
        await live.stub.ListLanguages(pb.ListLanguagesRequest(), metadata=bearer(ALL), timeout=5)
        failing = False  # reads work again; the file does not change
        assert reads_failed >= 2  # every check read it again

        async def all_refused() -> bool:
            try:
                await live.stub.ListLanguages(pb.ListLanguagesRequest(), metadata=bearer(ALL), timeout=5)
            except grpc.aio.AioRpcError as e:
                return e.code() == grpc.StatusCode.UNAUTHENTICATED
            return False

        loop = asyncio.get_running_loop()
        fixed_at = loop.time()
        await eventually(all_refused, "the removal applied once the file reads again")
        assert loop.time() - fixed_at < 3.0
        assert await gauge_is(1)
        await live.stub.ListLanguages(pb.ListLanguagesRequest(), metadata=bearer(LANG_ONLY), timeout=5)


async def test_a_client_secret_of_a_removed_tenant_opens_nothing(test_model_dir: Path, tmp_path: Path) -> None:
    """N11: a secret minted by tenant t no longer opens a session once no token of t may stream
    (t's lines removed): the handshake is refused with 401, as for an expired secret."""
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{ALL}\n{TENANT_T} stream tenant=t streams=1\n")
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    settings.auth.tokens_file = tokens
    async with serving(settings) as live:
        minted = await openai_client(live, TENANT_T).realtime.translations.client_secrets.create(
            session={"model": MODEL}, expires_after={"seconds": 300}
        )
        assert await session_events(live, minted.value) == [
            "session.updated",
            "session.closed",
        ]  # it works while t exists
        assert live.server.tokens is not None
        before = live.server.tokens.reloads
        replace(tokens, f"{ALL}\n")  # tenant t removed
        await reloaded(live, before)
        with pytest.raises(Exception, match="401"):
            await session_events(live, minted.value)
        # the tenant's other secrets as well; a secret of a tenant still there works
        minted_all = await openai_client(live, ALL).realtime.translations.client_secrets.create(
            session={"model": MODEL}, expires_after={"seconds": 300}
        )
        assert await session_events(live, minted_all.value) == ["session.updated", "session.closed"]
