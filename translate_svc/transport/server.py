"""The gRPC server: Translator + standard health + reflection, graceful drain on SIGTERM.

It serves an ``Application`` (``frontend.py``: built by ``app.build``, or by a front-end worker of
``serve --workers N``); it builds nothing itself.
Health is NOT_SERVING until the model has loaded and run one warm-up batch, SERVING after, and
NOT_SERVING again when draining or when the model worker dies.

Security (docs/security.md): TLS or mTLS on the main port with certificates re-read when their
files change (``tls.py``), bearer tokens checked by an interceptor (``auth.py``), reflection off
when tokens are required (unless asked for). Health also answers on an optional plaintext
``health_port``, served by a second server that holds only the health service (the same
``HealthServicer`` object, so both ports report the same status): kubelet's gRPC probe speaks
neither TLS nor tokens, and a second port on the main server would expose the Translator there in
plaintext too.

What a caller without a token can hold (issue 34): on each port at most ``limits.max_health_watches``
health Watch calls (``HealthDoor``), and on the main port at most ``limits.max_refusal_drains``
refused streams draining; both have call slots of their own on top of ``limits.max_calls`` (and of
the health port's ``HEALTH_MAX_CALLS``), so they never keep another call, or a probe, out. Each
call's HTTP/2 receive window is fixed (``limits.stream_window_bytes``): a stream whose session stopped
reading holds that much audio in the transport, not the 4 MiB and more BDP probing grew it to.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from translate_svc.frontend import Application
from translate_svc.observability import metrics, tracing
from translate_svc.settings import LimitsSettings, Settings
from translate_svc.transport.auth import RefusalLog, TokenAuthInterceptor, TokenStore
from translate_svc.transport.client_secrets import ClientSecrets
from translate_svc.transport.demo import DemoPage, page_url
from translate_svc.transport.realtime import PATH as REALTIME_PATH
from translate_svc.transport.realtime import RealtimeDoor, tls_context
from translate_svc.transport.servicer import SERVICE_NAME, TranslatorServicer
from translate_svc.transport.tls import CertificateReloader, TlsFiles
from translate_svc.transport.webrtc import WebRtcDoor

logger = logging.getLogger(__name__)


def address(host: str, port: int) -> str:
    """host:port for gRPC, with brackets around an IPv6 address."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def is_loopback(host: str) -> bool:
    if host.strip("[]") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: assume it is reachable


def reflection_enabled(settings: Settings) -> bool:
    mode = settings.server.reflection
    return mode == "on" or (mode == "auto" and settings.auth.tokens_file is None)


#: keepalive policy: clients may ping every 10 s even while nothing flows (so the SDK notices a dead
#: server within about 30 s, not the 5+ minutes gRPC's default policy forces on it), and the server
#: pings idle connections every 60 s so a vanished client's stream is closed and its slot freed
KEEPALIVE_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
]


def _server_options(
    limit: int, limits: LimitsSettings, *, reuse_port: bool = False, calls_per_connection: int | None = None
) -> list[tuple[str, Any]]:
    return [
        ("grpc.max_receive_message_length", limit),
        ("grpc.max_send_message_length", limit),
        ("grpc.so_reuseport", int(reuse_port)),
        ("grpc.max_concurrent_streams", calls_per_connection or limits.max_calls_per_connection),
        ("grpc.max_connection_idle_ms", int(limits.connection_idle_s * 1000)),
        ("grpc.max_connection_age_ms", int(limits.connection_max_age_s * 1000)),
        ("grpc.max_connection_age_grace_ms", int(limits.max_stream_seconds * 1000) + 60_000),
        *KEEPALIVE_OPTIONS,
        # a fixed receive window per call: BDP probing would grow it to 4 MiB or more, audio a
        # stream whose session stopped reading (its results unread) would hold in the transport
        ("grpc.http2.bdp_probe", 0),
        ("grpc.http2.lookahead_bytes", limits.stream_window_bytes),
    ]


#: the plaintext health port: probes need a call or two at a time. HEALTH_MAX_CALLS is for Check
#: (and List); Watch calls get ``limits.max_health_watches`` slots of their own on top of it
HEALTH_CALLS_PER_CONNECTION = 8
HEALTH_MAX_CALLS = 64


class HealthDoor(health_pb2_grpc.HealthServicer):  # type: ignore[misc]
    """One port's door to the shared ``HealthServicer``: Check and List as they are, Watch bounded
    to ``max_watches`` open at once on this port. Event loop only.

    Health needs no token (kubelet's probes and gRPC's client-side health checking carry none), and
    a Watch stays open: unbounded, token-less Watch calls filled the process's
    ``maximum_concurrent_rpcs`` and every other call, a probe's Check included, got
    RESOURCE_EXHAUSTED (issue 34, N1). Beyond the bound a Watch is refused at once, and its server
    gives Watch its own ``max_watches`` slots on top of everyone else's, so no other call ever waits
    for a slot a Watch holds.
    """

    def __init__(self, health: HealthServicer, max_watches: int, refusals: RefusalLog) -> None:
        self._health = health
        self.max_watches = max_watches
        self.watching = 0
        self._refusals = refusals

    async def Check(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        return await self._health.Check(request, context)

    def List(self, request: Any, context: Any) -> Any:
        return self._health.List(request, context)

    async def Watch(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        if self.watching >= self.max_watches:
            self._refusals("health Watch", context.peer(), grpc.StatusCode.RESOURCE_EXHAUSTED)
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{self.max_watches} health Watch calls are open on this port, its limit "
                "(limits.max_health_watches): poll with Check instead, or retry Watch later",
            )
        self.watching += 1
        try:
            await self._health.Watch(request, context)
        finally:
            self.watching -= 1


class TranslateServer:
    """Owns the grpc.aio server(s) and the application's lifetime. Event loop only.

    Raises ``TlsConfigError`` or ``TokenFileError`` (one-line messages) when the TLS files or the
    tokens file cannot be used, before anything listens. ``reuse_port``: the front-end workers of
    one node listen on the same port (and health port) together (``SO_REUSEPORT``).
    """

    def __init__(self, app: Application, *, reuse_port: bool = False) -> None:
        self.app = app
        self.settings = app.settings
        s = self.settings.server
        self.health = HealthServicer()
        self.tls: CertificateReloader | None = None
        if s.tls_cert_file is not None and s.tls_key_file is not None:
            self.tls = CertificateReloader(TlsFiles(s.tls_cert_file, s.tls_key_file, s.tls_client_ca_file))
        self.tokens: TokenStore | None = None
        interceptors = []
        if self.settings.auth.tokens_file is not None:
            self.tokens = TokenStore(self.settings.auth.tokens_file)
            interceptors.append(
                TokenAuthInterceptor(
                    self.tokens, error_drain_s=s.error_drain_s, max_drains=self.settings.limits.max_refusal_drains
                )
            )
        if tracing.enabled():  # after the token check: a call it refuses makes no span (issue 34 N17)
            interceptors.append(tracing.grpc_server_interceptor())
        limits = self.settings.limits
        # node-wide: a node's workers split it (each takes its share of the connections)
        calls = max(1, limits.max_calls // (s.worker_count() if reuse_port else 1))
        # what a caller without a token can hold has slots of its own on top (docs/security.md):
        # health Watch calls, and refused streams still reading their client's sends
        token_less = limits.max_health_watches + (limits.max_refusal_drains if self.tokens is not None else 0)
        self.server = grpc.aio.server(
            interceptors=interceptors,
            options=_server_options(limits.max_message_bytes, limits, reuse_port=reuse_port),
            maximum_concurrent_rpcs=calls + token_less,
        )
        self.servicer = TranslatorServicer(app.sessions, error_drain_s=s.error_drain_s, tokens=self.tokens)
        self.server.add_generic_rpc_handlers((self.servicer.handler(),))
        refusals = RefusalLog()
        self.health_door = HealthDoor(self.health, limits.max_health_watches, refusals)
        health_pb2_grpc.add_HealthServicer_to_server(self.health_door, self.server)
        self.reflection = reflection_enabled(self.settings)
        if self.reflection:
            reflection.enable_server_reflection(
                (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
                self.server,
            )
        #: health only, plaintext, no interceptors: nothing else may ever be added to it
        self.health_server: grpc.aio.Server | None = None
        self.health_port_door: HealthDoor | None = None
        if s.health_port is not None:
            options = _server_options(
                64 * 1024, limits, reuse_port=reuse_port, calls_per_connection=HEALTH_CALLS_PER_CONNECTION
            )
            self.health_server = grpc.aio.server(
                options=options, maximum_concurrent_rpcs=HEALTH_MAX_CALLS + limits.max_health_watches
            )
            # the health port's own Watch bound: Watch calls there take nothing from the main port
            self.health_port_door = HealthDoor(self.health, limits.max_health_watches, refusals)
            health_pb2_grpc.add_HealthServicer_to_server(self.health_port_door, self.health_server)
        #: the OpenAI-compatible door on ``server.http_port`` (off when None)
        self.realtime: RealtimeDoor | None = None
        self.webrtc: WebRtcDoor | None = None  # its browser flow (POST .../calls), on the same port
        if s.http_port is not None:
            auth = self.settings.auth
            secrets = ClientSecrets(auth.client_secret_key, auth.client_secret_ttl_s)
            self.realtime = RealtimeDoor(app.sessions, self.tokens, secrets)
            self.webrtc = WebRtcDoor(app.sessions, self.realtime.app, REALTIME_PATH, self.realtime.authorize)
            if s.demo_page:
                DemoPage(app.sessions, self.realtime.app, secrets)
        self._reuse_port = reuse_port
        self.port = 0
        self.health_port: int | None = None
        #: the port /metrics is served on while the server runs (None: not served)
        self.metrics_port: int | None = None
        self._stopped = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()  # owned background work (health updates, drain)
        app.failure_listeners.append(self._on_engine_failure)

    def describe(self) -> str:
        """One line: where it listens and how it is protected (logged at start, printed by ``serve``)."""
        s = self.settings.server
        parts = [f"listening on {address(s.host, self.port)}"]
        if self.tls is None:
            parts.append("plaintext (no TLS)")
        elif self.tls.mutual:
            parts.append("TLS with client certificates required (mTLS)")
        else:
            parts.append("TLS")
        parts.append(f"tokens required ({len(self.tokens)} known)" if self.tokens is not None else "no token required")
        parts.append("reflection on" if self.reflection else "reflection off")
        if self.health_port is not None:
            parts.append(f"plaintext health on {address(s.host, self.health_port)}")
        if self.realtime is not None:
            scheme = "ws" if self.tls is None else "wss"
            where = f"{scheme}://{address(s.host, self.realtime.port)}{REALTIME_PATH}"
            parts.append(f"OpenAI-compatible realtime door on {where}")
            if s.demo_page:
                page = page_url(s.host, self.realtime.port, tls=self.tls is not None)
                parts.append(f"demo page on {page} (it mints client secrets for anyone who reaches it)")
        line = ", ".join(parts)
        if is_loopback(s.host):
            line += (
                "; loopback only: other machines cannot reach it "
                "(set --host 0.0.0.0 / TRANSLATE_SVC_SERVER__HOST to serve the network)"
            )
        return line

    async def _set_health(self, status: health_pb2.HealthCheckResponse.ServingStatus.ValueType) -> None:
        for name in ("", SERVICE_NAME):
            await self.health.set(name, status)

    async def start(self, *, warmup: bool = True) -> int:
        """Listen first (health answers NOT_SERVING while loading), then load and warm the model."""
        s = self.settings.server
        addr = address(s.host, s.port)
        if self.tls is not None:
            self.port = self.server.add_secure_port(addr, self.tls.credentials())
        else:
            self.port = self.server.add_insecure_port(addr)
        if self.health_server is not None and s.health_port is not None:
            self.health_port = self.health_server.add_insecure_port(address(s.host, s.health_port))
        if s.metrics_port is not None:
            self.metrics_port = metrics.serve_metrics(s.metrics_port, s.host)
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.server.start()
        if self.health_server is not None:
            await self.health_server.start()
        if self.realtime is not None and s.http_port is not None:
            tls = None
            if s.tls_cert_file is not None and s.tls_key_file is not None:
                tls = tls_context(s.tls_cert_file, s.tls_key_file, s.tls_client_ca_file)
            await self.realtime.start(s.host, s.http_port, reuse_port=self._reuse_port, tls=tls)
        logger.info("%s; loading the model", self.describe())
        await self.app.start(warmup=warmup)
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)
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
        await self.health.enter_graceful_shutdown()
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
        await self.server.stop(max(0.0, grace - (loop.time() - started)))
        if self.webrtc is not None:
            await self.webrtc.close()
        if self.realtime is not None:
            await self.realtime.stop()
        if self.metrics_port is not None:
            metrics.stop_metrics(self.metrics_port)
            self.metrics_port = None
        if self.health_server is not None:
            await self.health_server.stop(0)
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
