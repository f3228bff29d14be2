"""When to retry a call and how long to wait first (pure; the clock and randomness stay outside).

The server says how long to wait in a ``google.rpc.RetryInfo`` detail of RESOURCE_EXHAUSTED
(``grpc-status-details-bin`` trailing metadata); that wait is honoured as given. Without one, the
wait is an exponential backoff with jitter. Only RESOURCE_EXHAUSTED and UNAVAILABLE are retried:
every other status (INVALID_ARGUMENT above all) says the request itself must change.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

#: statuses worth another attempt (on the next address)
RETRYABLE = frozenset({grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE})
_DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class RetryPolicy:
    """``max_attempts`` counts the first try. Backoff before retry ``n`` (1-based) is
    ``initial_backoff_s * multiplier**(n-1)``, capped at ``max_backoff_s``, times a random factor in
    ``[1 - jitter, 1 + jitter]``. A server hint (RetryInfo) replaces the backoff, capped at
    ``max_retry_delay_s``."""

    max_attempts: int = 4
    initial_backoff_s: float = 0.2
    max_backoff_s: float = 10.0
    multiplier: float = 2.0
    jitter: float = 0.2
    max_retry_delay_s: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be at least 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("RetryPolicy.jitter must be in [0, 1)")

    def backoff_s(self, retry: int, rand: Callable[[], float] = random.random) -> float:
        base = min(self.max_backoff_s, self.initial_backoff_s * self.multiplier ** max(0, retry - 1))
        return base * (1.0 - self.jitter + 2.0 * self.jitter * rand())

    def delay_s(self, retry: int, hint_s: float | None, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number ``retry`` (1 = the first retry)."""
        if hint_s is not None:
            return min(max(0.0, hint_s), self.max_retry_delay_s)
        return self.backoff_s(retry, rand)


def is_retryable(code: grpc.StatusCode) -> bool:
    return code in RETRYABLE


def retry_delay_from_status(status: status_pb2.Status | None) -> float | None:
    """The RetryInfo delay of a rich status, in seconds; None when it carries none."""
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return float(info.retry_delay.seconds + info.retry_delay.nanos / 1e9)
    return None


def retry_delay_from_metadata(metadata: Iterable[tuple[str, str | bytes]] | None) -> float | None:
    """The RetryInfo delay carried in trailing metadata (``grpc-status-details-bin``)."""
    for key, value in metadata or ():
        if key == _DETAILS_KEY and isinstance(value, bytes):
            try:
                return retry_delay_from_status(status_pb2.Status.FromString(value))
            except DecodeError:
                return None
    return None


def retry_delay_of(error: grpc.RpcError) -> float | None:
    """The RetryInfo delay of a failed call (``grpc_status.rpc_status.from_call``)."""
    try:
        return retry_delay_from_status(rpc_status.from_call(error))
    except (ValueError, AttributeError, DecodeError):  # a status proto that disagrees with the call's
        return retry_delay_from_metadata(_trailing(error))


def _trailing(error: grpc.RpcError) -> Iterable[tuple[str, str | bytes]] | None:
    get = getattr(error, "trailing_metadata", None)
    if get is None:
        return None
    md = get()
    return md if md is not None else None
