"""The gRPC server: Translator + standard health + reflection, graceful drain on SIGTERM.

It serves an ``Application`` built by ``translate_svc.app.build``; it builds nothing itself.
Health is NOT_SERVING until the model has loaded and run one warm-up batch, SERVING after, and
NOT_SERVING again when draining or when the model worker dies.
"""

from __future__ import annotations

import asyncio
import logging
import signal

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from translate_svc.app import Application
from translate_svc.observability import metrics
from translate_svc.transport.servicer import SERVICE_NAME, TranslatorServicer

logger = logging.getLogger(__name__)


class TranslateServer:
    """Owns the grpc.aio server and the application's lifetime. Event loop only."""

    def __init__(self, app: Application) -> None:
        self.app = app
        self.settings = app.settings
        self.health = HealthServicer()
        limit = self.settings.limits.max_message_bytes
        self.server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                ("grpc.so_reuseport", 0),
            ]
        )
        self.servicer = TranslatorServicer(app.sessions, error_drain_s=self.settings.server.error_drain_s)
        self.server.add_generic_rpc_handlers((self.servicer.handler(),))
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            self.server,
        )
        self.port = 0
        self._stopped = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()  # owned background work (health updates, drain)
        app.failure_listeners.append(self._on_engine_failure)

    async def _set_health(self, status: health_pb2.HealthCheckResponse.ServingStatus.ValueType) -> None:
        for name in ("", SERVICE_NAME):
            await self.health.set(name, status)

    async def start(self, *, warmup: bool = True) -> int:
        """Listen first (health answers NOT_SERVING while loading), then load and warm the model."""
        s = self.settings.server
        self.port = self.server.add_insecure_port(f"{s.host}:{s.port}")
        if s.metrics_port is not None:
            metrics.serve_metrics(s.metrics_port, s.host)
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.server.start()
        logger.info("listening on %s:%d; loading the model", s.host, self.port)
        await self.app.start(warmup=warmup)
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)
        logger.info("serving on port %d", self.port)
        return self.port

    async def stop(self, grace: float | None = None) -> None:
        """Drain: NOT_SERVING at once, in-flight calls get ``grace`` seconds, then the engine stops."""
        grace = self.settings.server.grace_s if grace is None else grace
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        others = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        await self.app.stop()
        self._stopped.set()

    async def serve_until_signal(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        await self._stopped.wait()

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._tasks and any(t.get_name() == "drain" for t in self._tasks):
            return  # already draining
        logger.info("%s: draining for up to %.0f s", sig.name, self.settings.server.grace_s)
        self._own(self.stop(), "drain")

    def _on_engine_failure(self, exc: BaseException) -> None:
        self._own(self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING), "health-not-serving")

    def _own(self, coro, name: str) -> None:  # type: ignore[no-untyped-def]
        """Run ``coro`` as a task this server keeps, and log its failure instead of losing it."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                logger.error("background task %s failed", name, exc_info=t.exception())

        task.add_done_callback(done)
