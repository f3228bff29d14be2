"""Shared fixtures: the test checkpoint, the shared audio, and a real server on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

REPO = Path(__file__).resolve().parents[1]
SHARED_AUDIO = REPO.parent / "shared" / "audio"


@pytest.fixture(scope="session")
def shared_audio() -> Path:
    if not (SHARED_AUDIO / "jfk.flac").is_file():
        pytest.fail(f"the shared test audio is missing: expected {SHARED_AUDIO} (../shared/audio beside the repo)")
    return SHARED_AUDIO


@pytest.fixture(scope="session")
def test_model_dir() -> Path:
    """model_cache/test-model (what `make test` builds), built here if missing."""
    from translate_svc.model.test_checkpoint import build_test_checkpoint

    path = Path(os.environ.get("TRANSLATE_SVC_TEST_MODEL", REPO / "model_cache" / "test-model"))
    if not (path / "config.json").is_file():
        build_test_checkpoint(path)
    return path


@pytest.fixture(scope="session")
def runner(test_model_dir: Path):  # type: ignore[no-untyped-def]
    from translate_svc.model.seamless import SeamlessRunner

    return SeamlessRunner(test_model_dir, device="cpu", dtype="float32")


def make_settings(model_dir: Path, **engine):  # type: ignore[no-untyped-def]
    from translate_svc.settings import EngineSettings, ModelSettings, ServerSettings, Settings

    return Settings(
        model=ModelSettings(path=model_dir, device="cpu", dtype="float32"),
        server=ServerSettings(host="127.0.0.1", port=0, grace_s=5),
        engine=EngineSettings(**engine),
    )


class LiveServer:
    def __init__(self, server, channel: grpc.aio.Channel) -> None:  # type: ignore[no-untyped-def]
        from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

        self.server = server
        self.channel = channel
        self.stub = pb_grpc.TranslatorStub(channel)
        self.batches: list = []  # type: ignore[type-arg]


@contextlib.asynccontextmanager
async def serving(settings, *, warmup: bool = True) -> AsyncIterator[LiveServer]:  # type: ignore[no-untyped-def]
    """A real server for ``settings`` on loopback, a channel to it, and every batch it ran."""
    from translate_svc import client
    from translate_svc.app import build
    from translate_svc.transport.server import TranslateServer

    batches: list = []  # type: ignore[type-arg]
    server = TranslateServer(build(settings, on_batch=batches.append))
    port = await server.start(warmup=warmup)
    ch = client.channel(f"127.0.0.1:{port}")
    live = LiveServer(server, ch)
    live.batches = batches
    try:
        yield live
    finally:
        await ch.close()
        await server.stop(grace=1)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def live(test_model_dir: Path) -> AsyncIterator[LiveServer]:
    """One real server for the whole session: loopback, port 0, the test checkpoint."""
    async with serving(make_settings(test_model_dir)) as server:
        yield server
    await asyncio.sleep(0)
