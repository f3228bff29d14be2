"""One detection call (gRPC ``DetectSynthetic``, ``POST /v1/audio/detections``, MCP's
``detect_synthetic_speech``), for every door: does a clip carry the watermark this service puts on
the speech it makes (``marking/``), and where.

The door reads and converts its wire message; this owns the rest, as ``ClipDriver`` does for a
clip: admission (``max_translate_calls`` and the tenant's caps, before the clip is read, and one of
the tenant's ``limits.max_clip_reads_per_tenant`` while it is read), the read deadline
(``limits.clip_read_timeout_s``), the size (``limits.max_message_bytes``), and the search itself in
a sandbox process (``SessionManager.detector``: ``limits.detect_processes``, of one tenant
``limits.detect_processes_per_tenant``, each within ``limits.detect_memory_mb`` and a CPU budget),
which decodes the clip (at most ``limits.max_detect_seconds``), runs the detector and reads the
file's C2PA manifest (``marking/clips.py``): neither the clip's decoder nor torch runs in the server's process. The
clip's seconds are drawn from the tenant's audio budget. Accounting: the tenant's call counter and
the access line (method ``detect``); no session events and no usage record (nothing is
translated). Event loop only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from translate_svc.errors import InvalidInput
from translate_svc.marking.credentials import Credentials
from translate_svc.observability.access import CallInfo
from translate_svc.sandbox.named import Named
from translate_svc.sandbox.pool import OverLimit
from translate_svc.session.calls.accounting import accounted
from translate_svc.session.calls.clip import check_clip_bytes, read_within
from translate_svc.session.manager import SessionManager
from translate_svc.session.tenants.tenant import DEFAULT_TENANT, Tenant
from translate_svc.types import AudioFormat

R = TypeVar("R")

#: the detector, run by name in the sandbox process (its module loads torch: never imported here)
DETECT_CLIP = Named("translate_svc.marking.clips", "detect_clip")
#: a clip reads as marked when its probability is over this (``marking/watermarker.py``'s spans'
#: bound: 2 s of unmarked speech measured up to 0.68, marked 0.91 and over; docs/performance.md)
MARKED_ABOVE = 0.75
#: from this many seconds of audio the answer tells marked from unmarked speech; shorter clips of
#: unmarked speech read up to 0.89, so their ``marked`` is not conclusive
CONCLUSIVE_S = 2.0
#: a detection's CPU budget: the process's start (torch and the network, about 3 s) and the
#: decode, then about 0.05-0.15 s a second of audio (docs/performance.md), with room for a busy host
CPU_S = 30.0
CPU_S_PER_AUDIO_S = 0.5


@dataclass(slots=True)
class DetectRequest:
    """A clip as its door read it. ``take_content`` hands the encoded bytes on once (as a clip's)."""

    content: bytes
    fmt: AudioFormat

    def take_content(self) -> bytes:
        content, self.content = self.content, b""
        return content


@dataclass(frozen=True)
class DetectResult:
    """A detection's answer: ``probability`` (0-1, the detector's score), the ``spans`` read as
    marked (start_ms, end_ms, in the clip's time), which ``watermarker`` was looked for, and the
    clip's length; ``marked`` (over ``MARKED_ABOVE``) and ``conclusive`` (the clip is long enough
    for ``marked`` to tell: at least ``CONCLUSIVE_S``)."""

    probability: float
    spans_ms: tuple[tuple[int, int], ...]
    watermarker: str
    audio_duration_ms: int
    #: the file's C2PA manifest, read and checked (None: it carries none)
    credentials: Credentials | None = None

    @property
    def marked(self) -> bool:
        return self.probability > MARKED_ABOVE

    @property
    def conclusive(self) -> bool:
        return self.audio_duration_ms >= CONCLUSIVE_S * 1000

    def credentials_json(self) -> dict[str, Any] | None:
        """The content credentials as the JSON doors answer them (None: the file carries none)."""
        c = self.credentials
        if c is None:
            return None
        return {
            "state": c.state,
            "generated": c.generated,
            "model": c.model,
            "source_sha256": c.source_sha256,
            "created": c.created,
            "issuer": c.issuer,
            "signer": c.signer,
            "failures": list(c.failures),
        }


class DetectDriver:
    """Drives one detection call; create one per call."""

    def __init__(self, manager: SessionManager, *, tenant: Tenant = DEFAULT_TENANT, call: CallInfo | None = None):
        self._m = manager
        self.tenant = tenant
        self.call = call

    async def run(self, read: Callable[[], Awaitable[DetectRequest]], render: Callable[[DetectResult], R]) -> R:
        """Admit the call, ``read`` its clip by the deadline, search it (see the module) and
        return ``render``'s answer. Raises the ServiceError that ends the call."""
        limits = self._m.limits
        with accounted(self.tenant, self.call, "detect", self._m.events) as outcome:
            async with self._m.admit_clip(self.tenant):
                async with self._m.receiving_clip(self.tenant):
                    request = await read_within(read(), limits.clip_read_timeout_s, "DetectSyntheticRequest")
                check_clip_bytes(len(request.content), limits.max_message_bytes)
                outcome.config["audio"] = request.fmt.encoding.value
                cpu_s = CPU_S + CPU_S_PER_AUDIO_S * limits.max_detect_seconds
                try:
                    probability, spans, name, seconds, credentials = await self._m.detector.run(
                        self.tenant.name, cpu_s, DETECT_CLIP, request.take_content(), request.fmt,
                        limits.max_detect_seconds, self._m.trust_anchors_pem,
                    )  # fmt: skip
                except OverLimit as e:
                    raise _refused(e, limits.detect_memory_mb) from None
                outcome.audio_s = seconds
                self._m.charge_audio(self.tenant, seconds)
                spans_ms = tuple((round(a * 1000), round(b * 1000)) for a, b in spans)
                found = DetectResult(round(probability, 4), spans_ms, name, round(seconds * 1000), credentials)
                return render(found)


def _refused(e: OverLimit, memory_mb: int) -> InvalidInput:
    """A sandbox bound the clip reached, in a caller's words."""
    said = {
        "memory": f"needs more than {memory_mb} MB of memory (limits.detect_memory_mb) to decode and search",
        "cpu": f"took more than {e.limit:.0f} s of CPU to decode and search",
    }.get(e.kind, "crashed the decoder that read it")
    return InvalidInput(f"this clip {said}: send it as the application that made it wrote it, or a shorter one")
