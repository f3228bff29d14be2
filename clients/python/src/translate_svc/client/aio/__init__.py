"""The asyncio SDK: ``AsyncTranslateClient``, its resumable ``AsyncStream`` and ``AsyncListener``.

Everything here runs on the one event loop the client was first used on (grpc.aio channels belong
to a loop); nothing is thread-safe. ``translate_svc.client.sync`` wraps it for threaded code.

One module per role, this package the face (import from here, or from ``translate_svc.client``):
``_client`` the client and its unary calls; ``_stream`` a live stream's caller side (send, update,
iterate); ``_calls`` the calls under a stream (open, replay, read, end, resume on another server);
``_listen`` a listen to a room (``AsyncListener``: its calls, continued on another server after a
drain); ``_channels`` the connection arguments (``ConnectionOptions``), the channel arguments and
credentials made from them; ``lasting`` a ``LastingStream``, live audio across as many streams as
the server's limits and refusals make (what the integrations build on).
The SDK logs under this package's name (``translate_svc.client.aio``), its modules' loggers below it.
"""

from translate_svc.client.aio._channels import (
    DEFAULT_CONNECTIONS,
    DEFAULT_KEEPALIVE_S,
    DEFAULT_KEEPALIVE_TIMEOUT_S,
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_RECEIVE_WINDOW_BYTES,
    ConnectionFields,
    ConnectionOptions,
    channel_options,
)
from translate_svc.client.aio._client import DEFAULT_BUFFERED_EVENTS, REQUEST_ID, AsyncTranslateClient
from translate_svc.client.aio._listen import AsyncListener
from translate_svc.client.aio._stream import AsyncStream
from translate_svc.client.aio.lasting import (
    AudioDropped,
    LastingEvent,
    LastingPolicy,
    LastingStream,
    OpenRefused,
    Reopening,
    StreamOpened,
)

__all__ = [
    "DEFAULT_BUFFERED_EVENTS",
    "DEFAULT_CONNECTIONS",
    "DEFAULT_KEEPALIVE_S",
    "DEFAULT_KEEPALIVE_TIMEOUT_S",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_RECEIVE_WINDOW_BYTES",
    "REQUEST_ID",
    "AsyncListener",
    "AsyncStream",
    "AsyncTranslateClient",
    "AudioDropped",
    "ConnectionFields",
    "ConnectionOptions",
    "LastingEvent",
    "LastingPolicy",
    "LastingStream",
    "OpenRefused",
    "Reopening",
    "StreamOpened",
    "channel_options",
]
