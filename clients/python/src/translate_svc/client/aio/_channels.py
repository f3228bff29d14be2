"""How the async client reaches its servers: the channel arguments and credentials.

Each is a plain value the client builds once; ``channel_options`` is exposed for callers who build
their own channels (docs/client.md, "Connections").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

import grpc

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
