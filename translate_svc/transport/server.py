"""The gRPC server: Translator + standard health + reflection, graceful drain on SIGTERM.

Health is NOT_SERVING until the model has loaded and run one warm-up batch, SERVING after, and
NOT_SERVING again when draining or when the model worker dies.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc
from translate_svc.engine.engine import BatchStats, TranslationEngine
from translate_svc.model.forced import ForcedLengths
from translate_svc.model.seamless import SeamlessRunner
from translate_svc.observability import metrics
from translate_svc.session import SessionManager
from translate_svc.settings import Settings
from translate_svc.transport.servicer import TranslatorServicer
from translate_svc.vad.segmenter import SegmenterConfig
from translate_svc.vad.silero import SileroVad

logger = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Translator"].full_name


class TranslateServer:
    """Owns the grpc.aio server, the engine and the shared VAD model. Event-loop only."""

    def __init__(
        self,
        settings: Settings,
        *,
        runner_factory: Callable[[], SeamlessRunner] | None = None,
        on_batch: Callable[[BatchStats], None] | None = None,
    ) -> None:
        self.settings = settings
        SegmenterConfig.from_settings(settings.vad)  # fail at start-up on inconsistent VAD defaults
        m = settings.model

        def batch_done(stats: BatchStats) -> None:
            metrics.observe_batch(stats)
            if on_batch is not None:
                on_batch(stats)

        forced = None
        if m.forced_text_tokens_per_s is not None:
            forced = ForcedLengths(m.forced_text_tokens_per_s, m.forced_units_per_s)
        self.engine = TranslationEngine(
            runner_factory
            or (
                lambda: SeamlessRunner(m.path, device=m.device, dtype=m.dtype, forced=forced, cpu_threads=m.cpu_threads)
            ),
            settings.engine,
            on_batch=batch_done,
            on_failure=self._on_engine_failure,
        )
        self.manager = SessionManager(
            self.engine, SileroVad(), settings.vad, settings.limits, on_vad_call=metrics.observe_vad_call
        )
        self.health = HealthServicer()
        limit = settings.limits.max_message_bytes
        self.server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                ("grpc.so_reuseport", 0),
            ]
        )
        pb_grpc.add_TranslatorServicer_to_server(TranslatorServicer(self.manager), self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            self.server,
        )
        self.port = 0
        self._stopped = asyncio.Event()

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
        await self.engine.start(warmup=warmup)
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)
        logger.info("serving on port %d", self.port)
        return self.port

    async def stop(self, grace: float | None = None) -> None:
        """Drain: NOT_SERVING at once, in-flight calls get ``grace`` seconds, then the engine stops."""
        grace = self.settings.server.grace_s if grace is None else grace
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        await self.engine.stop()
        self.manager.close()
        self._stopped.set()

    async def serve_until_signal(self) -> None:
        loop = asyncio.get_running_loop()
        stopping: list[asyncio.Task[None]] = []  # keeps the drain task referenced

        def on_signal(sig: signal.Signals) -> None:
            stopping.append(loop.create_task(self._on_signal(sig)))

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal, sig)
        await self._stopped.wait()

    async def _on_signal(self, sig: signal.Signals) -> None:
        logger.info("%s: draining for up to %.0f s", sig.name, self.settings.server.grace_s)
        await self.stop()

    def _on_engine_failure(self, exc: BaseException) -> None:
        asyncio.get_running_loop().create_task(self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING))
