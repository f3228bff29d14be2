"""One whole-clip call (``Translate``), for every door: the unary counterpart of ``StreamDriver``.

The door reads and converts its wire message; this owns the rest, once for every door: admission
(``max_translate_calls`` and the tenant's caps, taken before the clip is read), the clip's read
deadline (``limits.clip_read_timeout_s``), the translation itself (``SessionManager.translate_clip``:
the same ``StreamSession`` as a stream, fed at once), and the accounting: the tenant's audio and
calls, each segment's metrics and span, and the call's access line. Event loop only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from translate_svc.errors import LimitReached
from translate_svc.observability import access, metrics, tracing
from translate_svc.observability.access import CallInfo
from translate_svc.session.accounting import accounted
from translate_svc.session.events import ClipResult
from translate_svc.session.manager import SessionManager
from translate_svc.session.quota import DEFAULT_TENANT, Tenant
from translate_svc.types import AudioFormat, TranslationTask
from translate_svc.vad.segmenter import SegmenterConfig

R = TypeVar("R")


@dataclass(slots=True)
class ClipRequest:
    """A clip as its door parsed it. ``take_content`` hands the encoded bytes on once, so that
    from then on only the decoder holds them (a clip may be up to ``limits.max_message_bytes``)."""

    content: bytes
    fmt: AudioFormat
    task: TranslationTask
    vad: SegmenterConfig

    def take_content(self) -> bytes:
        content, self.content = self.content, b""
        return content


class ClipDriver:
    """Drives one clip call; create one per call."""

    def __init__(self, manager: SessionManager, *, tenant: Tenant = DEFAULT_TENANT, call: CallInfo | None = None):
        self._m = manager
        self.tenant = tenant
        self.call = call

    async def run(self, read: Callable[[], Awaitable[ClipRequest]], render: Callable[[ClipResult], R]) -> R:
        """Admit the call, ``read`` its clip by the deadline, translate it, and return ``render``'s
        answer (a door's check of its own answer, e.g. its size, counts as the call's outcome).
        Raises the ServiceError that ends the call."""
        with accounted(self.tenant, self.call, "translate") as outcome, self._m.admit_clip(self.tenant):
            limit_s = self._m.limits.clip_read_timeout_s
            request = await _within(read(), limit_s)
            outcome.config.update(access.config_brief(request.fmt, request.task))
            clip = await self._m.translate_clip(
                request.take_content(), request.fmt, request.task, request.vad, self.tenant
            )
            outcome.results.extend(clip.segments)
            outcome.audio_s = clip.audio_duration_ms / 1000
            metrics.tenant_audio(self.tenant.name, clip.audio_duration_ms / 1000)
            for r in clip.segments:
                metrics.observe_segment(r, self.tenant.name)
                tracing.segment_span(r, request.task.target_languages)
            return render(clip)


async def _within(read: Awaitable[R], limit_s: float) -> R:
    """The clip's read, within ``limit_s`` of the call's admission: the call holds one of the
    node's ``max_translate_calls`` while it waits, so a client that never sends its clip is ended
    (OUT_OF_RANGE) instead of locking the others out. Cancelling the read is safe: the call is
    unary for its client, which has nothing more to write."""
    try:
        return await asyncio.wait_for(read, limit_s)
    except TimeoutError:
        raise LimitReached(
            f"the clip did not arrive within {limit_s:g} s of the call's start (ServerLimits.clip_read_timeout_ms): "
            "send the TranslateRequest at once, or a shorter clip over a slow link",
            reason="clip_read_timeout",
        ) from None
