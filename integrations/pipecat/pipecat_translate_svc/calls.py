"""One stream of the service (``Call``: its number in the lasting stream, its interruption
watermark and open speech contexts) and how a failure maps to Pipecat's error categories."""

from __future__ import annotations

import grpc
from pipecat.utils.errors import ErrorCategory

from translate_svc.client import EndReason, StreamEndedError, TranslateError

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


#: a cut past every position: a stream that takes no more audio was cut after all of it
ALL_MS = 1 << 62


class Call:
    """One stream of the service's lasting stream (``number``: the ``StreamOpened``'s), and its
    interruption watermark and open speech contexts."""

    def __init__(self, number: int) -> None:
        self.number = number
        #: the highest segment id any result (commit or segment) came for
        self.max_seen_id = -1
        #: the latest interruption: the stream position pushed by then (ms) and the segment watermark
        self.cut_ms = -1
        self.cut_id = -1
        #: (segment id, target) whose TTSStartedFrame went out and whose TTSStoppedFrame did not
        self.open: set[tuple[int, str]] = set()

    def seen(self, segment_id: int) -> None:
        self.max_seen_id = max(self.max_seen_id, segment_id)

    def interrupt(self, position_ms: int | None) -> None:
        """An interruption when the audio pushed so far ends at ``position_ms`` of this stream's
        timeline (None: the stream takes no more audio, all of it came before)."""
        self.cut_ms = max(self.cut_ms, ALL_MS if position_ms is None else position_ms)
        self.cut_id = max(self.cut_id, self.max_seen_id)
        self.open.clear()  # pipecat's interruption ends the speech that was playing

    def interrupted(self, segment_id: int, end_ms: int | None) -> bool:
        """Whether the speech of ``segment_id`` belongs to an interrupted turn: results of it
        came before the latest interruption, or it ended before it (``end_ms``, where known)."""
        if self.cut_ms < 0:
            return False
        return segment_id <= self.cut_id or (end_ms is not None and end_ms <= self.cut_ms)
