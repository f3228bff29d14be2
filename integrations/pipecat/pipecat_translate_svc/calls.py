"""The service's streams' turn state (``Call``: one stream's interruption watermark and open
speech contexts; ``Calls``: those of the streams still read or taking audio, and where an
interruption cuts each one's timeline) and how a failure maps to Pipecat's error categories."""

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


class Calls:
    """The ``Call`` of each stream whose results are read or that takes audio, by its number in
    the lasting stream (``StreamOpened.number``). Event loop only."""

    def __init__(self) -> None:
        self._by_number: dict[int, Call] = {}
        #: an interruption while no stream took audio: (the next stream's number, its cut in ms)
        self._next_cut: tuple[int, int] | None = None

    def get(self, number: int) -> Call:
        """Stream ``number``'s (made on first use)."""
        call = self._by_number.get(number)
        if call is None:
            call = self._by_number[number] = Call(number)
            cut = self._next_cut
            if cut is not None and cut[0] <= number:
                self._next_cut = None
                if cut[0] == number:  # the audio queued at the interruption went to this stream
                    call.cut_ms = cut[1]
        return call

    def done(self, number: int) -> bool:
        """Every result of stream ``number`` was read; False when it was done already."""
        return self._by_number.pop(number, None) is not None

    def clear(self) -> None:
        self._by_number.clear()
        self._next_cut = None

    def cut(self, at: tuple[int, int] | None, next_number: int, queued_ms: int) -> None:
        """An interruption: what was pushed until now is the interrupted turn. ``at``: the stream
        that takes audio now and where the audio pushed so far ends on its timeline (ms); None
        while none does: the ``queued_ms`` pushed then open stream ``next_number``. Every other
        stream takes no more audio: all of it came before the interruption."""
        for call in list(self._by_number.values()):
            if at is None or call.number != at[0]:
                call.interrupt(None)
        if at is not None:
            self.get(at[0]).interrupt(at[1])
        elif queued_ms > 0:
            self._next_cut = (next_number, queued_ms)
