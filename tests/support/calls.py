"""A gRPC call as the tests see it from the client: a channel with a connection of its own, a
call's status and how long it took, and a refusal's retry delay (its ``RetryInfo``)."""

from __future__ import annotations

import time
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


def retry_ms(err: grpc.aio.AioRpcError) -> int:
    """The retry delay a refusal carries (its first detail, a ``RetryInfo``), in ms."""
    status = rpc_status.from_call(err)
    assert status is not None and status.details, "RESOURCE_EXHAUSTED without a RetryInfo detail"
    info = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(info)
    return int(info.retry_delay.ToMilliseconds())


async def timed(call: Any) -> tuple[str, float]:
    """A call's status and how long it took (seconds)."""
    t = time.perf_counter()
    try:
        await call
        code = "OK"
    except grpc.aio.AioRpcError as e:
        code = e.code().name
    return code, time.perf_counter() - t


def own_channel(address: str) -> grpc.aio.Channel:
    """A channel with a connection of its own (gRPC shares one among equal channels otherwise)."""
    return grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
