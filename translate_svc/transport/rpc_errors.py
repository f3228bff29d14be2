"""A ``ServiceError`` as the gRPC status the translate_svc API answers with (google.rpc.Status with
a RetryInfo detail when retrying helps): shared by every door on the gRPC port that speaks this API
(the gRPC door, the glossaries' service), so none imports another for it.

The gRPC port's shared home, like rpc.py: it imports no door.
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from translate_svc.errors import ErrorCode, ServiceError

RPC_CODES = {
    ErrorCode.INVALID_ARGUMENT: code_pb2.INVALID_ARGUMENT,
    ErrorCode.NOT_FOUND: code_pb2.NOT_FOUND,
    ErrorCode.ALREADY_EXISTS: code_pb2.ALREADY_EXISTS,
    ErrorCode.ABORTED: code_pb2.ABORTED,
    ErrorCode.UNAUTHENTICATED: code_pb2.UNAUTHENTICATED,
    ErrorCode.PERMISSION_DENIED: code_pb2.PERMISSION_DENIED,
    ErrorCode.FAILED_PRECONDITION: code_pb2.FAILED_PRECONDITION,
    ErrorCode.RESOURCE_EXHAUSTED: code_pb2.RESOURCE_EXHAUSTED,
    ErrorCode.OUT_OF_RANGE: code_pb2.OUT_OF_RANGE,
    ErrorCode.DEADLINE_EXCEEDED: code_pb2.DEADLINE_EXCEEDED,
    ErrorCode.UNAVAILABLE: code_pb2.UNAVAILABLE,
    ErrorCode.INTERNAL: code_pb2.INTERNAL,
}


def error_status(err: ServiceError) -> status_pb2.Status:
    """A ServiceError as google.rpc.Status, with a RetryInfo detail when retrying helps."""
    details = []
    if err.retry_after_ms is not None:
        delay = duration_pb2.Duration()
        delay.FromMilliseconds(err.retry_after_ms)
        packed = any_pb2.Any()
        packed.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
        details.append(packed)
    return status_pb2.Status(code=RPC_CODES[err.code], message=err.message, details=details)


def status_for(err: ServiceError) -> grpc.Status:
    """The error as the ``grpc.Status`` a servicer aborts with (its details in the trailers)."""
    return rpc_status.to_status(error_status(err))
