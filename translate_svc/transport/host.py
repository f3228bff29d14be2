"""The door-neutral host: the configured doors of one process around one application, their token
store, and the process's lifetime (start, health, drain on SIGTERM).

It serves an ``Application`` (``frontend.py``: built by ``app.build``, or by a front-end worker of
``serve --workers N``); it builds nothing of the service itself. Two ports, each with a home, and
one package per door:

- the gRPC port (``grpc/``: ``GrpcDoor``, the Translator service and health; ``riva/``: NVIDIA
  Riva's translation and streaming recognition services on that port when ``server.riva`` is on,
  hosted by the gRPC door as ``rpc.PortServices``);
- the HTTP port (``server.http_port``; ``http/``: ``HttpDoor``, hosting route sets):
  ``openai/`` (the OpenAI-compatible realtime sessions over WebSocket and WebRTC, transcription,
  the audio endpoints, the demo page), ``rooms/`` (room listeners and the listen page), the
  carriers' WebSockets of ``phone/`` (``phone.websocket``) and ``mcp/`` (agents' tools at ``/mcp``,
  ``mcp.enabled``); the route sets that take browsers share
  the port's one caller check (``http.caller.Authorizer``: its client secrets and ``Revocation``);
- ``phone/``'s AudioSocket port (``phone.audiosocket_port``), a door of its own.

Each door converts its wire format to the session cores (``session.StreamDriver``,
``session.clip.ClipDriver``, ``session.text.TextDriver``, ``session.listen.ListenDriver``) and
nothing else; they share one token store (``tokens/store.py``), built here, each with its
``Revocation``. Every door takes one context (``door.py``: ``DoorContext``) and is a ``Door``: once
built, the host only iterates them (start, describe, ports, health, drain, stop).
Health is NOT_SERVING until the model has loaded and run its warm-up (engine/warmup.py), SERVING after, and
NOT_SERVING again when draining or when the model worker dies. The cluster store's state has a
health name of its own (``translate_svc.cluster``), and takes the Translator service (readiness)
to NOT_SERVING while the store is lost under ``cluster.on_redis_loss = "refuse"`` (``_set_cluster``).
The HTTP port answers the same states at ``/healthz`` and ``/readyz`` (``http/health.py``).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from typing import TypeVar

import grpc

from translate_svc.cluster.store import StoreState
from translate_svc.frontend import Application
from translate_svc.jobs.desk import JobDesk
from translate_svc.observability import metrics
from translate_svc.session.tenants.tenant import Tenant
from translate_svc.transport.accept_log import AcceptErrorLog
from translate_svc.transport.door import Door, DoorContext, is_loopback
from translate_svc.transport.glossaries.grpc_door import GlossariesDoor
from translate_svc.transport.glossaries.routes import GlossaryRoutes
from translate_svc.transport.grpc.door import HEALTH_CALLS_PER_CONNECTION as HEALTH_CALLS_PER_CONNECTION
from translate_svc.transport.grpc.door import HEALTH_MAX_CALLS as HEALTH_MAX_CALLS
from translate_svc.transport.grpc.door import KEEPALIVE_OPTIONS as KEEPALIVE_OPTIONS  # re-exported
from translate_svc.transport.grpc.door import GrpcDoor
from translate_svc.transport.grpc.servicer import TranslatorServicer
from translate_svc.transport.grpc.tls import CertificateReloader
from translate_svc.transport.http.caller import Authorizer
from translate_svc.transport.http.door import HttpDoor, RouteSet
from translate_svc.transport.http.health import HealthRoutes
from translate_svc.transport.jobs.grpc_door import JobsDoor
from translate_svc.transport.jobs.routes import JobRoutes
from translate_svc.transport.openai.door import OpenAIRoutes
from translate_svc.transport.openai.webrtc import WebRtcDoor
from translate_svc.transport.phone.door import PhoneDoor
from translate_svc.transport.recordings.routes import RecordingRoutes
from translate_svc.transport.rooms.door import RoomRoutes
from translate_svc.transport.rpc import PortServices
from translate_svc.transport.sip.door import SipDoor
from translate_svc.transport.tokens.revocation import Revocation
from translate_svc.transport.tokens.store import TokenStore

logger = logging.getLogger(__name__)

D = TypeVar("D")


class DoorSetupError(Exception):
    """A configured door cannot be set up (a package it needs is missing); one line saying what to do."""


def build_doors(ctx: DoorContext) -> list[Door]:
    """The doors the settings ask for: the gRPC port always (with Riva's services on it when
    ``server.riva`` is on); the HTTP port when ``server.http_port`` is set, with OpenAI's and the
    rooms' route sets, and the phone's when ``phone.websocket`` is on; the phone door when
    ``phone.websocket`` or ``phone.audiosocket_port`` is (its AudioSocket port, and what its calls
    share)."""
    s = ctx.settings.server
    services: list[PortServices] = []
    if s.riva:  # imported only when asked for: its protos come from the nvidia-riva-client package
        try:
            from translate_svc.transport.riva.door import RivaDoor
        except ModuleNotFoundError as e:
            if not (e.name or "").startswith("riva"):
                raise
            raise DoorSetupError(
                "--riva needs Riva's protos from the nvidia-riva-client package: pip install --no-deps "
                "nvidia-riva-client==2.27.0 (make install does; docs/riva-compat.md)"
            ) from e
        services.append(RivaDoor(ctx))
    services.append(GlossariesDoor(ctx))  # FAILED_PRECONDITION saying how, when none are kept
    jobs = JobDesk(ctx.sessions, ctx.jobs)  # one for both ports
    services.append(JobsDoor(ctx, jobs))  # INVALID_ARGUMENT saying how, when jobs.dir is unset
    doors: list[Door] = [GrpcDoor(ctx, services)]
    phone = ctx.settings.phone
    if phone.websocket and s.http_port is None:
        raise DoorSetupError("--phone serves the carriers' WebSockets on the HTTP port: set --http-port too")
    calls = PhoneDoor(ctx) if phone.websocket or phone.audiosocket_port is not None else None
    if s.http_port is not None:
        callers = Authorizer(ctx)  # the port's one caller check, with its client secrets
        route_sets: list[RouteSet] = [
            OpenAIRoutes(ctx, callers),
            RoomRoutes(ctx, callers),
            HealthRoutes(ctx.settings.cluster.on_redis_loss),
        ]
        if calls is not None and calls.routes is not None:
            route_sets.append(calls.routes)  # the carriers' WebSockets share the HTTP port and its bounds
        if ctx.recordings is not None:
            route_sets.append(RecordingRoutes(ctx, ctx.recordings))
        route_sets.append(GlossaryRoutes(ctx))  # 400 saying how, when none are kept
        route_sets.append(JobRoutes(ctx, jobs))  # 400 saying how, when jobs.dir is unset
        if ctx.settings.mcp.enabled:
            route_sets.append(_mcp_routes(ctx, callers, doors[0]))
        doors.append(HttpDoor(ctx, route_sets))
    if calls is not None:
        doors.append(calls)
    if ctx.settings.sip.port is not None:
        doors.append(SipDoor(ctx))  # SIP over UDP and TCP on a port of its own
    if ctx.settings.mcp.enabled and s.http_port is None:
        raise DoorSetupError("--mcp serves MCP at /mcp on the HTTP port: set --http-port too")
    return doors


def _mcp_routes(ctx: DoorContext, callers: Authorizer, grpc: Door) -> RouteSet:
    """The MCP route set (``mcp/``), imported only when asked for: the ``mcp`` SDK imports
    starlette and opentelemetry-api, which a server without ``--mcp`` never loads."""
    from translate_svc.transport.mcp.door import McpRoutes

    return McpRoutes(ctx, callers, lambda: grpc.ports()["port"])


def _retention_of(tokens: TokenStore) -> Callable[[str], float | None]:
    """A tenant's retention as the tokens file states it now (None: no line states one)."""

    def retention(tenant: str) -> float | None:
        stated = tokens.tenant(tenant)
        return stated.record.retention_days if stated is not None else None

    return retention


def _tenant_of(tokens: TokenStore) -> Callable[[str], Tenant]:
    """A job's tenant as the tokens file states it now (its profanity default, its caps)."""
    return lambda name: tokens.tenant(name) or Tenant(name)


def _retention_s_of(tokens: TokenStore) -> Callable[[str], float | None]:
    """A tenant's retention in seconds (its line's ``retention_days=``; None: none stated)."""
    days = _retention_of(tokens)

    def retention(tenant: str) -> float | None:
        stated = days(tenant)
        return stated * 86400 if stated is not None else None

    return retention


class TranslateServer:
    """Owns the doors and the application's lifetime. Event loop only.

    Raises ``TlsConfigError`` or ``TokenFileError`` (one-line messages) when the TLS files or the
    tokens file cannot be used, before anything listens. ``reuse_port``: the front-end workers of
    one node listen on the same ports together (``SO_REUSEPORT``).
    """

    def __init__(self, app: Application, *, reuse_port: bool = False) -> None:
        self.app = app
        self.settings = app.settings
        #: one token store for every door; each door's live streams are watched by a
        #: ``Revocation`` over it (the same mechanism, ``tokens/revocation.py``): a token removed from the
        #: file ends the streams and sessions it opened, whichever door they came through
        self.tokens: TokenStore | None = None
        if self.settings.auth.tokens_file is not None:
            self.tokens = TokenStore(self.settings.auth.tokens_file)
        if app.recordings is not None and self.tokens is not None:
            app.recordings.retention_of = _retention_of(self.tokens)
        elif self.tokens is not None and (asking := self.tokens.recording_tenants()):
            logger.warning(
                "tenants %s ask for recordings (record= in the tokens file) but recordings.dir is unset: "
                "nothing of their sessions is kept",
                ", ".join(asking[:8]),
            )
        if app.jobs is not None and self.tokens is not None:
            app.jobs.tenant_of = _tenant_of(self.tokens)
            app.jobs.retention_of = _retention_s_of(self.tokens)
        ctx = DoorContext(
            app.sessions,
            self.settings,
            self.tokens,
            self._revocation,
            app.cluster,
            reuse_port,
            app.recordings,
            app.jobs,
        )
        self.doors = build_doors(ctx)
        #: the gRPC port (``--port 0``: the one picked) and its plaintext health port, once started
        self.port = 0
        self.health_port: int | None = None
        #: the port /metrics is served on while the server runs (None: not served)
        self.metrics_port: int | None = None
        self._stopped = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()  # owned background work (health updates, drain)
        #: the loop's report of accepts that failed for want of a descriptor, at a bounded rate
        self.accept_log = AcceptErrorLog()
        app.failure_listeners.append(self._on_engine_failure)
        app.cluster.on_state(self._on_store_state)

    def _revocation(self) -> Revocation | None:
        return Revocation(self.tokens) if self.tokens is not None else None

    # -- a door's parts, for tests and tools ---------------------------------------------------

    def door(self, kind: type[D]) -> D | None:
        """The door of that kind, when it is configured."""
        return next((d for d in self.doors if isinstance(d, kind)), None)

    @property
    def http(self) -> HttpDoor | None:
        """The HTTP port's door (``server.http_port``; None: off)."""
        return self.door(HttpDoor)

    def route_set(self, kind: type[D]) -> D | None:
        """The HTTP port's route set of that kind, when it is configured."""
        http = self.http
        return next((r for r in http.route_sets if isinstance(r, kind)), None) if http is not None else None

    @property
    def realtime(self) -> OpenAIRoutes | None:
        """The OpenAI-compatible route set of the HTTP port (None: off)."""
        return self.route_set(OpenAIRoutes)

    @property
    def phone(self) -> PhoneDoor | None:
        """The phone door (``phone.websocket`` or ``phone.audiosocket_port``; None: off)."""
        return self.door(PhoneDoor)

    @property
    def webrtc(self) -> WebRtcDoor | None:
        return self.realtime.webrtc if self.realtime is not None else None

    @property
    def _grpc(self) -> GrpcDoor:
        door = self.door(GrpcDoor)
        assert door is not None  # always built
        return door

    @property
    def server(self) -> grpc.aio.Server:
        """The grpc.aio server of the main port (stopping it alone is a crash: no drain)."""
        return self._grpc.server

    @property
    def servicer(self) -> TranslatorServicer:
        return self._grpc.servicer

    @property
    def tls(self) -> CertificateReloader | None:
        return self._grpc.tls

    # -- the lifetime ----------------------------------------------------------------------------

    def ports(self) -> dict[str, int]:
        """The ports the doors listen on, by their key in the ready file (``port``,
        ``health_port``, ``http_port``)."""
        return {key: port for door in self.doors for key, port in door.ports().items()}

    def describe(self) -> str:
        """One line: where it listens and how it is protected (logged at start, printed by ``serve``)."""
        line = ", ".join(part for door in self.doors for part in door.describe())
        if is_loopback(self.settings.server.host):
            line += (
                "; loopback only: other machines cannot reach it "
                "(set --host 0.0.0.0 / TRANSLATE_SVC_SERVER__HOST to serve the network)"
            )
        return line

    async def start(self, *, warmup: bool = True) -> int:
        """Listen first (health answers NOT_SERVING while loading), then load and warm the model."""
        s = self.settings.server
        self.accept_log.install(asyncio.get_running_loop())  # a port out of descriptors: a bounded log
        if s.metrics_port is not None:
            self.metrics_port = metrics.serve_metrics(s.metrics_port, s.host)
        for door in self.doors:
            await door.start()
        ports = self.ports()
        self.port, self.health_port = ports["port"], ports.get("health_port")
        logger.info("%s; loading the model", self.describe())
        await self.app.start(warmup=warmup)
        await self._set_cluster(self.app.cluster.state)
        await self._set_serving(True)
        if self.tokens is not None:
            self._own(self._watch_tokens(self.tokens), "tokens")
        logger.info("serving on port %d", self.port)
        return self.port

    async def _set_serving(self, serving: bool) -> None:
        for door in self.doors:
            await door.set_serving(serving)
        if (health := self.route_set(HealthRoutes)) is not None:
            health.serving = serving

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
        UNAVAILABLE); other in-flight calls get what is left of ``grace`` seconds (the jobs' probes
        and dubbed videos in progress are ended at once: ``jobs/media.py``); then the engine
        stops. The health port closes last, so probes see NOT_SERVING while the main port drains.
        """
        grace = self.settings.server.grace_s if grace is None else grace
        for door in self.doors:
            await door.drain()
        if self.app.jobs is not None:  # probes and remuxes end now: a stop never waits for them
            self.app.jobs.stop_media_calls()
        if (health := self.route_set(HealthRoutes)) is not None:
            health.draining = True
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
        for door in self.doors:
            await door.stop(max(0.0, grace - (loop.time() - started)))
        if self.metrics_port is not None:
            metrics.stop_metrics(self.metrics_port)
            self.metrics_port = None
        for door in self.doors:  # the health port last: probes see NOT_SERVING to the end
            await door.close()
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
        self._own(self._set_serving(False), "health-not-serving")

    def _on_store_state(self, state: StoreState) -> None:
        self._own(self._set_cluster(state), "health-cluster")

    async def _set_cluster(self, state: StoreState) -> None:
        """Health of the cluster store (docs/deploy.md, "Several pods"): ``translate_svc.cluster``
        says whether it is reached; under ``cluster.on_redis_loss = "refuse"`` the Translator
        service (the readiness probe's) is NOT_SERVING while it is lost; under "node" it stays
        SERVING (degraded: the store's own status and ``/metrics`` say so)."""
        up = state is StoreState.UP
        await self._grpc.set_cluster(up, ready=up or self.settings.cluster.on_redis_loss == "node")
        if (health := self.route_set(HealthRoutes)) is not None:  # the HTTP port's /healthz and /readyz
            health.store_up = up

    def _own(self, coro, name: str) -> None:  # type: ignore[no-untyped-def]
        """Run ``coro`` as a task this server keeps, and log its failure instead of losing it."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                logger.error("background task %s failed", name, exc_info=t.exception())

        task.add_done_callback(done)
