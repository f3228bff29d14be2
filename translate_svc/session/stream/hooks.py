"""What a stream tells its driver (``StreamHooks``: a drain, a stop from outside, each output as
it goes out) and the output hook that also feeds its recording (``tee``). Given once when the
stream opens; event loop only."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from translate_svc.errors import LimitReached
from translate_svc.session.tenants.recording import Recorder
from translate_svc.types import InterimResult, SegmentResult


def _no_drain(deadline: float) -> None:
    """A stream without a driver is told of a drain by its notice alone."""


@dataclass(frozen=True)
class StreamHooks:
    """What a stream tells its driver, given once when it opens (``SessionManager.open_stream``):
    the driver's callbacks, which ``StreamSession.close`` lets go of (they hold the driver)."""

    #: a drain began: the stream ends at this deadline (event-loop time)
    on_drain: Callable[[float], None] = _no_drain
    #: ends the stream from outside (the engine died): the open speech is closed into a segment
    #: and accounted for before the stream ends (None: ``fail``)
    on_stop: Callable[[LimitReached], None] | None = None
    #: every final result and caption as it goes out, in order (a room speaker's listeners)
    on_output: Callable[[SegmentResult | InterimResult], None] | None = None


#: a stream's hooks before it opens, and after it closes
NO_HOOKS = StreamHooks()


def tee(
    on_output: Callable[[SegmentResult | InterimResult], None] | None, recorder: Recorder | None
) -> Callable[[SegmentResult | InterimResult], None] | None:
    """The job tracker's output hook: the driver's (a room speaker's listeners) and the recorder's
    (final results only)."""
    if recorder is None:
        return on_output

    def output(ev: SegmentResult | InterimResult) -> None:
        if on_output is not None:
            on_output(ev)
        if isinstance(ev, SegmentResult):
            recorder.result(ev)

    return output
