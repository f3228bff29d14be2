"""The server's settings (``Settings.server``: its ports, TLS, drain, the doors it serves, its
workers) and the tokens' (``Settings.auth``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, model_validator


class ServerSettings(BaseModel):
    #: loopback by default: a server is reachable from other machines only when asked to be
    #: (``0.0.0.0`` / ``::`` serves the network; the container images and k8s/ set it). ``/metrics``
    #: and the health port bind to this host too.
    host: str = "127.0.0.1"
    port: int = Field(50051, ge=0, le=65535)
    #: seconds in-flight calls get to finish on SIGTERM
    grace_s: float = Field(30.0, ge=0)
    #: on SIGTERM, live streams are translated this much longer (never past ``grace_s``), then end
    #: with "resume elsewhere"; the rest of the grace period finishes their last segments
    drain_s: float = Field(20.0, ge=0)
    #: after a stream fails, read and discard what the client still sends for up to this long
    #: before ending the call, so the status reaches a client that is still writing intact (grpc-
    #: python's asyncio client reports INTERNAL if one of its writes fails after the status came)
    error_drain_s: float = Field(2.0, ge=0, le=60)
    metrics_port: int | None = Field(None, ge=0, le=65535)
    #: TLS on the gRPC port: PEM certificate (chain) and unencrypted PEM key, both or neither.
    #: Re-read when the files change (cert-manager rotation), at most once per second.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    #: PEM CA certificate(s): clients must present a certificate signed by one of them (mTLS)
    tls_client_ca_file: Path | None = None
    #: serve grpc.health.v1 (and nothing else) in plaintext on this port too, for probes that
    #: cannot speak TLS or send a token (kubelet's gRPC probe); None: health on the main port only
    health_port: int | None = Field(None, ge=0, le=65535)
    #: the OpenAI-compatible realtime translation door (WebSocket at /v1/realtime/translations,
    #: docs/openai-compat.md) on this HTTP port; None: off. Same host, tokens, limits and drain.
    http_port: int | None = Field(None, ge=0, le=65535)
    #: the browser demo page at /demo on ``http_port`` (docs/openai-compat.md): it mints its own
    #: short-lived client secrets, so anyone who reaches the HTTP port can open sessions. For
    #: trying the service out; off by default.
    demo_page: bool = False
    #: the Riva-compatible door (docs/riva-compat.md): NVIDIA Riva's RivaTranslation and
    #: RivaSpeechRecognition.StreamingRecognize on the gRPC port, for Riva's clients; off by default
    riva: bool = False
    #: server reflection; auto: on without token auth, off with it
    reflection: Literal["auto", "on", "off"] = "auto"
    #: front-end worker processes: 1 runs everything in one process; N >= 2 runs one engine
    #: process (the model) and N workers (gRPC, decoding, VAD, sessions) sharing the port
    #: (``serving/``); auto: one per CPU (``cpus``), less two for the engine process
    workers: Annotated[int, Field(ge=1, le=256)] | Literal["auto"] = 1
    #: the CPUs this server may use, for ``workers: auto``: in Kubernetes the pod's CPU request
    #: (the downward API; a container sees every core of its node); None: the CPUs this process
    #: may run on (its affinity mask)
    cpus: int | None = Field(None, ge=1, le=1024)
    #: the VAD thread of each process scores the windows its streams completed within this many
    #: ms together, in one batched model call (``vad/worker.py``): about a third of a live
    #: stream's CPU at 30 streams, for at most this much more before speech is detected; 0: each
    #: as soon as the thread is free
    vad_gather_ms: int = Field(20, ge=0, le=200)

    @model_validator(mode="after")
    def _check_tls(self) -> ServerSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("server.tls_cert_file and server.tls_key_file go together: set both or neither")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("server.tls_client_ca_file (mTLS) needs server.tls_cert_file and server.tls_key_file")
        if self.demo_page and self.http_port is None:
            raise ValueError("server.demo_page is served on the HTTP port: set server.http_port (--http-port) too")
        if self.health_port is not None and self.health_port != 0 and self.health_port == self.port:
            raise ValueError("server.health_port must differ from server.port")
        return self

    def worker_count(self) -> int:
        """``workers`` as a number (``auto``: ``cpus`` less two, at least one)."""
        if self.workers != "auto":
            return self.workers
        return max(1, (self.cpus or len(os.sched_getaffinity(0))) - 2)


class AuthSettings(BaseModel):
    #: bearer tokens, one per line: ``<token> [<permission>,...]`` (docs/security.md); None: no
    #: token needed. Re-read when the file changes, at most once per second.
    tokens_file: Path | None = None
    #: lifetime of the client secrets the OpenAI-compatible door mints for browsers (permission
    #: ``stream`` only); a client may ask for less, never more
    client_secret_ttl_s: int = Field(600, ge=10, le=7200)
    #: the key that signs client secrets: every process of a node must share it (``serve
    #: --workers`` passes one to its workers); None: a random key per process
    client_secret_key: str | None = Field(None, min_length=32)
