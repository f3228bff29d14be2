"""A real server in this process, on loopback (port 0), with a channel to it and every batch it
ran: the settings the tests serve with (the test checkpoint on CPU), and ``serving`` them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import grpc


def make_settings(model_dir: Path, *, watermark: str = "off", **engine):  # type: ignore[no-untyped-def]
    """A server's settings on the test checkpoint. ``watermark``: off unless a test asks for it
    (the product's default is on): the suite compares the server's speech with ``generate``'s to
    1e-4, and the mark changes it on purpose (docs/decisions.md)."""
    from translate_svc.settings import EngineSettings, ModelSettings, ServerSettings, Settings

    return Settings(
        model=ModelSettings(path=model_dir, device="cpu", dtype="float32", watermark=watermark),
        server=ServerSettings(host="127.0.0.1", port=0, grace_s=5),
        engine=EngineSettings(**engine),
    )


class LiveServer:
    def __init__(self, server, port: int, channel: grpc.aio.Channel) -> None:  # type: ignore[no-untyped-def]
        from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

        self.server = server
        self.port = port
        self.channel = channel
        self.stub = pb_grpc.TranslatorStub(channel)
        self.batches: list = []  # type: ignore[type-arg]


@contextlib.asynccontextmanager
async def serving(settings, *, warmup: bool = True, runner_factory=None, cluster=None) -> AsyncIterator[LiveServer]:  # type: ignore[no-untyped-def]
    """A real server for ``settings`` on loopback, a channel to it, and every batch it ran.
    ``runner_factory`` replaces the model (e.g. ``lambda: FakeRunner()``, tests/support/fake_runner.py);
    ``cluster`` the cluster store the settings pick (e.g. one a test takes down)."""
    from tests.support.raw import channel
    from translate_svc.app import build
    from translate_svc.transport.host import TranslateServer

    batches: list = []  # type: ignore[type-arg]
    server = TranslateServer(build(settings, runner_factory=runner_factory, on_batch=batches.append, cluster=cluster))
    port = await server.start(warmup=warmup)
    ch = channel(f"127.0.0.1:{port}")
    live = LiveServer(server, port, ch)
    live.batches = batches
    try:
        yield live
    finally:
        await ch.close()
        await server.stop(grace=1)
