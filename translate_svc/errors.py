"""Transport-neutral errors. ``transport/`` alone maps them to gRPC status codes."""

from __future__ import annotations

from enum import Enum


class ErrorCode(str, Enum):
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    UNAVAILABLE = "UNAVAILABLE"
    INTERNAL = "INTERNAL"


class ServiceError(Exception):
    """Base error: a code, and a message that tells the caller what to fix."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str, *, retry_after_ms: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_ms = retry_after_ms


class InvalidInput(ServiceError):
    code = ErrorCode.INVALID_ARGUMENT


class Overloaded(ServiceError):
    code = ErrorCode.RESOURCE_EXHAUSTED


class NotReady(ServiceError):
    code = ErrorCode.UNAVAILABLE


class ModelNotFound(Exception):
    """Raised at start-up when the model directory is missing or incomplete."""
