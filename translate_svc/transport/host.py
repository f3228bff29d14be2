"""The door-neutral host: the configured doors of one process around one application, their token
store, and the process's lifetime (start, health, drain on SIGTERM).

It serves an ``Application`` (``frontend.py``: built by ``app.build``, or by a front-end worker of
``serve --workers N``); it builds nothing of the service itself. The doors are packages of their
own (``grpc/``: the Translator service and health on the main port; ``riva/``: NVIDIA Riva's
translation and streaming recognition services on that port, when ``server.riva`` is on; ``openai/``: the
OpenAI-compatible WebSocket, WebRTC and the demo page on ``server.http_port``), each converting its
wire format to the stream core (``session.StreamDriver``, ``session.clip.ClipDriver``) and nothing
else; they share one token store (``tokens.py``), built here, each with its ``Revocation``.
Health is NOT_SERVING until the model has loaded and run one warm-up batch, SERVING after, and
NOT_SERVING again when draining or when the model worker dies.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
from typing import TYPE_CHECKING

from translate_svc.frontend import Application
from translate_svc.observability import metrics
from translate_svc.transport.grpc.door import HEALTH_CALLS_PER_CONNECTION as HEALTH_CALLS_PER_CONNECTION
from translate_svc.transport.grpc.door import HEALTH_MAX_CALLS as HEALTH_MAX_CALLS
from translate_svc.transport.grpc.door import KEEPALIVE_OPTIONS as KEEPALIVE_OPTIONS  # re-exported
from translate_svc.transport.grpc.door import GrpcDoor, address
from translate_svc.transport.openai.door import OpenAIDoor
from translate_svc.transport.tokens import Permission, Revocation, TokenStore

if TYPE_CHECKING:
    from translate_svc.transport.riva.door import RivaDoor

logger = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    if host.strip("[]") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: assume it is reachable


class DoorSetupError(Exception):
    """A configured door cannot be set up (a package it needs is missing); one line saying what to do."""


class TranslateServer:
    """Owns the doors and the application's lifetime. Event loop only.

    Raises ``TlsConfigError`` or ``TokenFileError`` (one-line messages) when the TLS files or the
    tokens file cannot be used, before anything listens. ``reuse_port``: the front-end workers of
    one node listen on the same ports together (``SO_REUSEPORT``).
    """

    def __init__(self, app: Application, *, reuse_port: bool = False) -> None:
        self.app = app
        self.settings = app.settings
        s = self.settings.server
        #: one token store for every door; each door's live streams are watched by a
        #: ``Revocation`` over it (the same mechanism, ``tokens.py``): a token removed from the
        #: file ends the streams and sessions it opened, whichever door they came through
        self.tokens: TokenStore | None = None
        if self.settings.auth.tokens_file is not None:
            self.tokens = TokenStore(self.settings.auth.tokens_file)
        riva_permissions: dict[str, Permission] | None = None
        if s.riva:  # imported only when asked for: its protos come from the nvidia-riva-client package
            try:
                from translate_svc.transport.riva import door as riva_door
            except ModuleNotFoundError as e:
                if not (e.name or "").startswith("riva"):
                    raise
                raise DoorSetupError(
                    "--riva needs Riva's protos from the nvidia-riva-client package: pip install --no-deps "
                    "nvidia-riva-client==2.27.0 (make install does; docs/riva-compat.md)"
                ) from e
            riva_permissions = riva_door.METHOD_PERMISSIONS
        self.grpc = GrpcDoor(
            app.sessions,
            self.settings,
            self.tokens,
            self._revocation(),
            reuse_port=reuse_port,
            method_permissions=riva_permissions,
        )
        #: the Riva-compatible door (``server.riva``): Riva's services on the gRPC port's server
        self.riva: RivaDoor | None = None
        if s.riva:
            from translate_svc.transport.riva.door import RivaDoor

            self.riva = RivaDoor(app.sessions, self.settings, self.tokens, self._revocation())
            self.riva.attach(self.grpc.server)
        self.servicer = self.grpc.servicer
        self.tls = self.grpc.tls
        #: the grpc.aio server of the main port (stopping it alone is a crash: no drain)
        self.server = self.grpc.server
        #: the OpenAI-compatible door on ``server.http_port`` (off when None), with its WebRTC flow
        self.openai: OpenAIDoor | None = None
        if s.http_port is not None:
            self.openai = OpenAIDoor(app.sessions, self.settings, self.tokens, self._revocation())
        self.realtime = self.openai
        self.webrtc = self.openai.webrtc if self.openai is not None else None
        self._reuse_port = reuse_port
        self.port = 0
        self.health_port: int | None = None
        #: the port /metrics is served on while the server runs (None: not served)
        self.metrics_port: int | None = None
        self._stopped = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()  # owned background work (health updates, drain)
        app.failure_listeners.append(self._on_engine_failure)

    def _revocation(self) -> Revocation | None:
        return Revocation(self.tokens) if self.tokens is not None else None

    def describe(self) -> str:
        """One line: where it listens and how it is protected (logged at start, printed by ``serve``)."""
        s = self.settings.server
        parts = self.grpc.describe()
        parts.append(f"tokens required ({len(self.tokens)} known)" if self.tokens is not None else "no token required")
        parts += self.grpc.describe_after()
        if self.riva is not None:
            parts += self.riva.describe()
        if self.openai is not None:
            parts += self.openai.describe(address(s.host, self.openai.port))
        line = ", ".join(parts)
        if is_loopback(s.host):
            line += (
                "; loopback only: other machines cannot reach it "
                "(set --host 0.0.0.0 / TRANSLATE_SVC_SERVER__HOST to serve the network)"
            )
        return line

    async def start(self, *, warmup: bool = True) -> int:
        """Listen first (health answers NOT_SERVING while loading), then load and warm the model."""
        s = self.settings.server
        if s.metrics_port is not None:
            self.metrics_port = metrics.serve_metrics(s.metrics_port, s.host)
        self.port = await self.grpc.start()
        self.health_port = self.grpc.health_port
        if self.openai is not None:
            await self.openai.start(reuse_port=self._reuse_port)
        logger.info("%s; loading the model", self.describe())
        await self.app.start(warmup=warmup)
        await self.grpc.set_serving(True)
        if self.tokens is not None:
            self._own(self._watch_tokens(self.tokens), "tokens")
        logger.info("serving on port %d", self.port)
        return self.port

    async def _watch_tokens(self, tokens: TokenStore) -> None:
        """Look at the tokens file every second, calls or not, so a token removed from it ends its
        open streams within seconds (``TokenStore.on_reload``), not at the next call."""
        while True:
            await asyncio.sleep(1.0)
            tokens.maybe_reload()

    async def stop(self, grace: float | None = None) -> None:
        """Drain: NOT_SERVING at once; new streams are refused (UNAVAILABLE); every live stream gets
        a ``draining`` notice, is translated for ``server.drain_s`` more, then ends with its open
        speech translated, every result sent and "resume elsewhere" (StreamEnd DRAINING,
        UNAVAILABLE); other in-flight calls get what is left of ``grace`` seconds; then the engine
        stops. The health port closes last, so probes see NOT_SERVING while the main port drains.
        """
        grace = self.settings.server.grace_s if grace is None else grace
        await self.grpc.enter_graceful_shutdown()
        loop = asyncio.get_running_loop()
        started = loop.time()
        sessions = self.app.sessions
        live = len(sessions.live)
        # a stream that ended on the drain waits for its client to stop sending until the grace ends
        sessions.drain(min(self.settings.server.drain_s, grace), grace_s=max(0.0, grace - 0.5))
        if live:
            logger.info("draining %d live streams for %.1f s", live, min(self.settings.server.drain_s, grace))
            try:
                async with asyncio.timeout(grace):
                    await sessions.wait_no_live()
            except TimeoutError:
                logger.warning("%d streams still open after the %.0f s grace period", len(sessions.live), grace)
        await self.grpc.stop(max(0.0, grace - (loop.time() - started)))
        if self.openai is not None:
            await self.openai.stop()
        if self.metrics_port is not None:
            metrics.stop_metrics(self.metrics_port)
            self.metrics_port = None
        await self.grpc.stop_health()
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
        self._own(self.grpc.set_serving(False), "health-not-serving")

    def _own(self, coro, name: str) -> None:  # type: ignore[no-untyped-def]
        """Run ``coro`` as a task this server keeps, and log its failure instead of losing it."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                logger.error("background task %s failed", name, exc_info=t.exception())

        task.add_done_callback(done)
