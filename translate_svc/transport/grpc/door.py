"""The gRPC door: Translator + standard health + reflection, on the main port (and health alone on
an optional plaintext ``health_port``).

The host (``../host.py``) builds it from the doors' context (``../door.py``: the settings, the
shared token store and revocation) with the services of other doors on this port
(``rpc.PortServices``: Riva's), and drives its lifetime as a ``Door``. Health is NOT_SERVING
until the host says the model is warm, and again when draining or when the model worker dies.

Security (docs/security.md): TLS or mTLS on the main port with certificates re-read when their
files change (``tls.py``), bearer tokens checked by an interceptor (``auth.py``), reflection off
when tokens are required (unless asked for). Health also answers on an optional plaintext
``health_port``, served by a second server that holds only the health service (the same
``HealthServicer`` object, so both ports report the same status): kubelet's gRPC probe speaks
neither TLS nor tokens, and a second port on the main server would expose the Translator there in
plaintext too.

Call slots: the ordinary calls of the main port are counted by us
(``slots.CallSlots``) and refused at ``limits.max_calls`` (each worker's share), below gRPC's own
limit for the process; on top of them come slots for what a caller without a token can hold (on
each port at most ``limits.max_health_watches`` health Watch calls, ``health.HealthDoor``; on the
main port at most ``limits.max_refusal_drains`` refused streams draining) and for health Check
(``limits.max_health_checks``), so neither they nor a flood of ordinary calls keep a probe out.
Messages: the port takes in at most ``limits.max_receive_message_bytes`` per message (gRPC
enforces it as bytes arrive) and sends up to ``limits.max_message_bytes``. Each call's HTTP/2
receive window is fixed (``limits.stream_window_bytes``): a stream whose session stopped reading
holds that much audio in the transport, not the 4 MiB and more BDP probing grew it to.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import grpc
from grpc_health.v1 import health_pb2
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from translate_svc.observability import tracing
from translate_svc.session import SessionManager
from translate_svc.settings import LimitsSettings, Settings
from translate_svc.transport.door import DoorContext, address
from translate_svc.transport.grpc.auth import TokenAuthInterceptor
from translate_svc.transport.grpc.health import HealthDoor as HealthDoor  # re-exported
from translate_svc.transport.grpc.servicer import SERVICE_NAME, TranslatorServicer
from translate_svc.transport.grpc.slots import CallSlots
from translate_svc.transport.grpc.tls import CertificateReloader, TlsFiles
from translate_svc.transport.refusal_log import RefusalLog
from translate_svc.transport.rpc import PortServices, caller_of, token_key
from translate_svc.transport.tokens.store import TokenStore
from translate_svc.types import DubFit


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
    receive: int,
    send: int,
    limits: LimitsSettings,
    *,
    reuse_port: bool = False,
    calls_per_connection: int | None = None,
) -> list[tuple[str, Any]]:
    return [
        # enforced by gRPC core as the bytes arrive: what one call can make the server buffer
        ("grpc.max_receive_message_length", receive),
        ("grpc.max_send_message_length", send),
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


#: the health service name that says whether the cluster store is reached (SERVING) or lost
CLUSTER_HEALTH = "translate_svc.cluster"


def _status(serving: bool) -> health_pb2.HealthCheckResponse.ServingStatus.ValueType:
    return health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING


#: the plaintext health port: probes need a call or two at a time. HEALTH_MAX_CALLS is for Check
#: (and List); Watch calls get ``limits.max_health_watches`` slots of their own on top of it
HEALTH_CALLS_PER_CONNECTION = 8
HEALTH_MAX_CALLS = 64


def _caller_bounds(sessions: SessionManager, tokens: TokenStore | None) -> contextlib.AbstractAsyncContextManager[None]:
    """The unary-call bounds of the caller of the call this task serves (reflection's streams)."""
    caller = caller_of(tokens)
    return sessions.admit_unary(caller.tenant, token_key(caller))


class GrpcDoor:
    """The gRPC server(s) of one process: a ``Door``. Event loop only.

    Raises ``TlsConfigError`` (a one-line message) when the TLS files cannot be used, before
    anything listens. ``ctx.reuse_port``: the front-end workers of one node listen on the same port
    (and health port) together (``SO_REUSEPORT``).
    """

    def __init__(self, ctx: DoorContext, services: Sequence[PortServices] = ()) -> None:
        """``services``: other doors' services served on this port (their handlers, and the
        permission each of their methods needs)."""
        settings, tokens, reuse_port = ctx.settings, ctx.tokens, ctx.reuse_port
        self.settings = settings
        self.tokens = tokens
        self.services = tuple(services)
        method_permissions = {m: p for door in self.services for m, p in door.permissions.items()}
        s = settings.server
        self.health = HealthServicer()
        #: the model serves; the cluster store lets the Translator service be ready (``set_cluster``)
        self._serving = False
        self._cluster_ready = True
        self.tls: CertificateReloader | None = None
        if s.tls_cert_file is not None and s.tls_key_file is not None:
            self.tls = CertificateReloader(TlsFiles(s.tls_cert_file, s.tls_key_file, s.tls_client_ca_file))
        limits = settings.limits
        refusals = RefusalLog()
        # node-wide: a node's workers split it (each takes its share of the connections)
        calls = max(1, limits.max_calls // (s.worker_count() if reuse_port else 1))
        #: the ordinary calls (all but health and token-less refusals), refused by us at ``calls``
        self.slots = CallSlots(calls, refusals, others=lambda: _caller_bounds(ctx.sessions, tokens))
        interceptors: list[Any] = []
        if tokens is not None:
            interceptors.append(
                TokenAuthInterceptor(
                    tokens,
                    error_drain_s=s.error_drain_s,
                    max_drains=settings.limits.max_refusal_drains,
                    permissions=method_permissions,
                )
            )
        interceptors.append(self.slots)  # after the token check: a refused call is not counted
        if tracing.enabled():  # after the token check: a call it refuses makes no span (security finding N17)
            interceptors.append(tracing.grpc_server_interceptor())
        # on top of the ordinary calls, slots of their own (docs/security.md) for what a caller without
        # a token can hold (health Watch calls, refused streams still reading their client's sends)
        # and for health Check, so a probe is answered while every ordinary slot is taken
        token_less = limits.max_health_watches + (limits.max_refusal_drains if tokens is not None else 0)
        self.server = grpc.aio.server(
            interceptors=interceptors,
            options=_server_options(
                limits.max_receive_message_bytes, limits.max_message_bytes, limits, reuse_port=reuse_port
            ),
            maximum_concurrent_rpcs=calls + token_less + limits.max_health_checks,
        )
        self.servicer = TranslatorServicer(
            ctx.sessions,
            error_drain_s=s.error_drain_s,
            tokens=tokens,
            revocation=ctx.revocation(),
            fit_default=DubFit(settings.jobs.fit_slowest, settings.jobs.fit_fastest),
        )
        self.server.add_generic_rpc_handlers((self.servicer.handler(),))
        for door in self.services:
            self.server.add_generic_rpc_handlers(tuple(door.handlers()))
        read_s = limits.request_read_timeout_s
        self.health_door = HealthDoor(
            self.health, limits.max_health_watches, refusals, max_checks=limits.max_health_checks, read_timeout_s=read_s
        )
        self.server.add_generic_rpc_handlers((self.health_door.handler(),))
        self.reflection = reflection_enabled(settings)
        if self.reflection:
            # with the services of other doors on this port (their methods' names: /service/method)
            others = sorted({method.split("/")[1] for method in method_permissions})
            health_name = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
            reflection.enable_server_reflection(
                (SERVICE_NAME, *others, health_name, reflection.SERVICE_NAME), self.server
            )
        #: health only, plaintext, no interceptors: nothing else may ever be added to it
        self.health_server: grpc.aio.Server | None = None
        self.health_port_door: HealthDoor | None = None
        if s.health_port is not None:
            options = _server_options(
                64 * 1024, 64 * 1024, limits, reuse_port=reuse_port, calls_per_connection=HEALTH_CALLS_PER_CONNECTION
            )
            self.health_server = grpc.aio.server(
                options=options, maximum_concurrent_rpcs=HEALTH_MAX_CALLS + limits.max_health_watches
            )
            # the health port's own bounds: its calls take nothing from the main port
            self.health_port_door = HealthDoor(
                self.health, limits.max_health_watches, refusals, max_checks=HEALTH_MAX_CALLS, read_timeout_s=read_s
            )
            self.health_server.add_generic_rpc_handlers((self.health_port_door.handler(),))
        self.port = 0
        self.health_port: int | None = None

    def describe(self) -> list[str]:
        """Where the port listens and how it is protected (TLS, tokens), in parts of the host's one
        line; then the other doors' services on it."""
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
        for door in self.services:
            parts += door.describe()
        return parts

    def ports(self) -> dict[str, int]:
        ports = {"port": self.port}
        if self.health_port is not None:
            ports["health_port"] = self.health_port
        return ports

    async def set_serving(self, serving: bool) -> None:
        """The model serves (or not): the overall status (""), and the Translator service's while
        the cluster store lets it (``set_cluster``)."""
        self._serving = serving
        await self._publish_health()

    async def set_cluster(self, up: bool, *, ready: bool) -> None:
        """The cluster store is ``up`` (``CLUSTER_HEALTH``); ``ready``: the Translator service may
        say SERVING (False while it is lost under ``cluster.on_redis_loss = "refuse"``). The overall
        status ("", the liveness probe's) never follows the store: a lost Redis restarts no pod."""
        self._cluster_ready = ready
        await self.health.set(CLUSTER_HEALTH, _status(up))
        await self._publish_health()

    async def _publish_health(self) -> None:
        await self.health.set("", _status(self._serving))
        await self.health.set(SERVICE_NAME, _status(self._serving and self._cluster_ready))

    async def start(self) -> None:
        """Listen (health NOT_SERVING until ``set_serving``)."""
        s = self.settings.server
        addr = address(s.host, s.port)
        if self.tls is not None:
            self.port = self.server.add_secure_port(addr, self.tls.credentials())
        else:
            self.port = self.server.add_insecure_port(addr)
        if self.health_server is not None and s.health_port is not None:
            self.health_port = self.health_server.add_insecure_port(address(s.host, s.health_port))
        await self.set_serving(False)
        await self.server.start()
        if self.health_server is not None:
            await self.health_server.start()

    async def drain(self) -> None:
        """NOT_SERVING for good (probes see it while the streams drain)."""
        await self.health.enter_graceful_shutdown()

    async def stop(self, grace: float) -> None:
        """The main port: calls still in flight get ``grace`` seconds."""
        await self.server.stop(grace)

    async def close(self) -> None:
        """The health port, last of all."""
        if self.health_server is not None:
            await self.health_server.stop(0)
