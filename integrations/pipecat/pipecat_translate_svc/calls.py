"""One stream of the service (``Call``: the SDK's ``AsyncStream``, its reader task and its
interruption watermark) and how a stream's failure maps to Pipecat's error categories."""

from __future__ import annotations

import asyncio

import grpc
from pipecat.utils.errors import ErrorCategory

from translate_svc.client import AsyncStream, EndReason, StreamEndedError, TranslateError

#: gRPC status -> pipecat's error category (a permanent one makes the service unusable)
_CATEGORY = {
    grpc.StatusCode.UNAUTHENTICATED: ErrorCategory.AUTHENTICATION,
    grpc.StatusCode.PERMISSION_DENIED: ErrorCategory.AUTHORIZATION,
    grpc.StatusCode.INVALID_ARGUMENT: ErrorCategory.INVALID_REQUEST,
    grpc.StatusCode.NOT_FOUND: ErrorCategory.INVALID_REQUEST,
    grpc.StatusCode.FAILED_PRECONDITION: ErrorCategory.INVALID_REQUEST,
    grpc.StatusCode.UNIMPLEMENTED: ErrorCategory.INVALID_REQUEST,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ErrorCategory.RATE_LIMIT,
    grpc.StatusCode.UNAVAILABLE: ErrorCategory.CONNECTIVITY,
    grpc.StatusCode.DEADLINE_EXCEEDED: ErrorCategory.CONNECTIVITY,
    grpc.StatusCode.INTERNAL: ErrorCategory.SERVER,
    grpc.StatusCode.UNKNOWN: ErrorCategory.SERVER,
    grpc.StatusCode.DATA_LOSS: ErrorCategory.SERVER,
}


def error_category(error: TranslateError) -> ErrorCategory:
    """Pipecat's category of a failed call or stream (a spent quota is QUOTA whatever its status)."""
    if isinstance(error, StreamEndedError) and error.reason is EndReason.QUOTA:
        return ErrorCategory.QUOTA
    return _CATEGORY.get(error.code, ErrorCategory.UNKNOWN)


class Call:
    """One ``AsyncStream`` of the service, its reader, and its interruption watermark."""

    def __init__(self, number: int, stream: AsyncStream, sample_rate: int) -> None:
        self.number = number
        self.stream = stream
        self.sample_rate = sample_rate
        self.samples_sent = 0
        self.reader: asyncio.Task[None] | None = None
        self.usable = True  # takes audio (not half-closed, not ended)
        #: the highest segment id any result (commit or segment) came for
        self.max_seen_id = -1
        #: the latest interruption: the stream position sent by then and the segment watermark
        self.cut_ms = -1
        self.cut_id = -1
        #: (segment id, target) whose TTSStartedFrame went out and whose TTSStoppedFrame did not
        self.open: set[tuple[int, str]] = set()

    @property
    def sent_ms(self) -> int:
        return self.samples_sent * 1000 // self.sample_rate

    def seen(self, segment_id: int) -> None:
        self.max_seen_id = max(self.max_seen_id, segment_id)

    def interrupt(self) -> None:
        self.cut_ms = max(self.cut_ms, self.sent_ms)
        self.cut_id = max(self.cut_id, self.max_seen_id)
        self.open.clear()  # pipecat's interruption ends the speech that was playing

    def interrupted(self, segment_id: int, end_ms: int | None) -> bool:
        """Whether the speech of ``segment_id`` belongs to an interrupted turn: results of it
        came before the latest interruption, or it ended before it (``end_ms``, where known)."""
        if self.cut_ms < 0:
            return False
        return segment_id <= self.cut_id or (end_ms is not None and end_ms <= self.cut_ms)
