"""How a client reaches its servers: its connection arguments (``ConnectionOptions``), the channel
arguments and credentials made from them.

Each is a plain value the client builds once; ``channel_options`` is exposed for callers who build
their own channels (docs/client.md, "Connecting", "Connections").
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypedDict

import grpc

from translate_svc.client._retry import RetryPolicy
from translate_svc.client.types import TlsOptions

#: the server's largest message (``limits.max_message_bytes``); gRPC clients default to 4 MiB
DEFAULT_MAX_MESSAGE_BYTES: Final = 64 * 1024 * 1024
#: keepalive ping interval. The server allows a ping every 10 s even when nothing flows
#: (``transport/server.py`` KEEPALIVE_OPTIONS); a ping more often than the server allows is a strike,
#: and the third closes the connection (GOAWAY ``too_many_pings``). 20 s keeps twice that margin and
#: notices a dead server within about 30 s (docs/client.md, "Keepalive").
DEFAULT_KEEPALIVE_S: Final = 20.0
DEFAULT_KEEPALIVE_TIMEOUT_S: Final = 10.0
_ROUND_ROBIN: Final = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})
#: connections per address that calls are spread over. A server node of several front-end workers
#: shares its port among them, and the kernel balances connections, not the calls on one HTTP/2
#: connection: 16 connections land on every one of 2 workers but for a chance of 2**-15, and give
#: 8 workers about 2 each (docs/client.md, "Connections"). Opened as calls need them.
DEFAULT_CONNECTIONS: Final = 16
#: each stream's HTTP/2 receive window, fixed (gRPC's BDP probing, which grows it to 4 MiB and more,
#: is off): the results the transport takes in ahead of the SDK. A message being read gets its whole
#: size as window on top, so a stream read as it comes is not slowed; one whose caller stops reading
#: stops the server after a few segments instead of ~50 (docs/client.md, "Flow control")
DEFAULT_RECEIVE_WINDOW_BYTES: Final = 64 * 1024


@dataclass(frozen=True)
class ConnectionOptions:
    """How a client reaches its servers: ``AsyncTranslateClient``'s and ``TranslateClient``'s keyword
    arguments as one frozen object (``connection=``), to build once and give to either client.

    ``tls``: server CA, client certificate (mTLS), name override; None: plaintext. ``token``: sent
    as ``authorization: Bearer <token>`` on every call; without TLS only to a loopback address or a
    Unix socket, unless ``allow_plaintext_token`` says the network is trusted (anyone on the path
    can read a plaintext token and replay it). ``timeout_s``: each unary call's deadline, and how
    long a stream waits for the server to accept it. ``retry``: unary retries (and stream opens) on
    RESOURCE_EXHAUSTED / UNAVAILABLE, honouring the server's RetryInfo (None: ``RetryPolicy()``).
    ``max_resumes``: stream failovers in a row without progress before giving up. ``keepalive_s``,
    ``keepalive_timeout_s``: pings while a call is open (``keepalive_s=None``: none).
    ``max_message_bytes``: the send and receive limit of one message. ``options``: extra gRPC
    channel arguments, after the SDK's. ``connections``: connections per address, opened as calls
    need them; each call takes the next one in turn, so the calls of one client spread over a node's
    front-end workers. ``receive_window_bytes``: each call's HTTP/2 receive window, fixed (None:
    gRPC's, grown by BDP probing to MBs): what the transport takes in ahead of a stream you stopped
    reading, so what the server computes for it. docs/client.md, "Connecting", says more of each.
    """

    tls: TlsOptions | None = None
    token: str | None = None
    timeout_s: float = 120.0
    retry: RetryPolicy | None = None
    max_resumes: int = 5
    keepalive_s: float | None = DEFAULT_KEEPALIVE_S
    keepalive_timeout_s: float = DEFAULT_KEEPALIVE_TIMEOUT_S
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    options: Sequence[tuple[str, Any]] = ()
    connections: int = DEFAULT_CONNECTIONS
    allow_plaintext_token: bool = False
    receive_window_bytes: int | None = DEFAULT_RECEIVE_WINDOW_BYTES

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", tuple(self.options))  # frozen all the way down
        if self.connections < 1:
            raise ValueError("connections must be at least 1")
        if self.max_resumes < 0:
            raise ValueError("max_resumes must not be negative")


class ConnectionFields(TypedDict, total=False):
    """``ConnectionOptions``' fields as the clients' keyword arguments (those given win over ``connection=``)."""

    tls: TlsOptions | None
    token: str | None
    timeout_s: float
    retry: RetryPolicy | None
    max_resumes: int
    keepalive_s: float | None
    keepalive_timeout_s: float
    max_message_bytes: int
    options: Sequence[tuple[str, Any]]
    connections: int
    allow_plaintext_token: bool
    receive_window_bytes: int | None


def channel_options(
    *,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    keepalive_s: float | None = DEFAULT_KEEPALIVE_S,
    keepalive_timeout_s: float = DEFAULT_KEEPALIVE_TIMEOUT_S,
    server_name: str | None = None,
    receive_window_bytes: int | None = DEFAULT_RECEIVE_WINDOW_BYTES,
) -> list[tuple[str, Any]]:
    """The SDK's channel arguments (exposed for callers who build their own channels).
    ``receive_window_bytes`` None: gRPC's own window (BDP probing)."""
    opts: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.service_config", _ROUND_ROBIN),
    ]
    if receive_window_bytes is not None:
        if receive_window_bytes < 1:
            raise ValueError("receive_window_bytes must be positive (None: gRPC's own window)")
        opts += [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", receive_window_bytes)]
    if keepalive_s is not None:
        opts += [
            ("grpc.keepalive_time_ms", round(keepalive_s * 1000)),
            ("grpc.keepalive_timeout_ms", round(keepalive_timeout_s * 1000)),
            # no pings without a call: gRPC's default server policy counts those as strikes
            ("grpc.keepalive_permit_without_calls", 0),
        ]
    if server_name is not None:
        opts.append(("grpc.ssl_target_name_override", server_name))
    return opts


def _read(path: Path | str | None) -> bytes | None:
    return None if path is None else Path(path).read_bytes()


def credentials(tls: TlsOptions, token: str | None) -> grpc.ChannelCredentials:
    """The TLS channel's credentials, the token as call credentials (gRPC sends those over TLS only)."""
    creds = grpc.ssl_channel_credentials(
        root_certificates=_read(tls.ca_file),
        private_key=_read(tls.key_file),
        certificate_chain=_read(tls.cert_file),
    )
    if token is not None:
        creds = grpc.composite_channel_credentials(creds, grpc.access_token_call_credentials(token))
    return creds
