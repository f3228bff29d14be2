"""The ear-voice lag as a fake carrier saw it, to hold the server's own figure to (issue 57).

The server's ear-voice lag of a segment (docs/telephony.md; ``translate_svc_phone_ear_voice_lag_
seconds``, the access line's ``ear_voice_lag_p50_ms`` and ``_max_ms``) runs from when the caller's
audio reached the end of the segment's speech to when the carrier said the translation before
the segment's mark had played. The carrier knows both ends on its own clock: when it sent the
frame that reached that point of the call (``CarrierLog.sent``), and when it sent the mark back
(``CarrierLog.echoed``; Twilio's mark semantics, which its cousins share: a mark comes back once
the audio sent before it has played). Where a segment's speech ended is the server's VAD's
choice, not the carrier's: it is asked for with a ``Translate`` of the same audio on the same
server (``segment_ends``), whose spans are exactly those of the call (the segmenter is
chunking-invariant and offline is the streaming path fed once, docs/design.md), marks coming
back in segment order (one per segment that had speech: every one, on the stable translator).
"""

from __future__ import annotations

from collections.abc import Sequence

from tests.support.phone_carriers import CarrierLog
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

#: how far the server's lag of one mark may be from the carrier's. Both are differences of two
#: times of one clock (the machine's monotonic clock), each end taken a message delivery apart:
#: the carrier's time is when it sent a frame or a mark, the server's when its loop read that
#: message. So they differ only by the two deliveries' difference: under a millisecond measured on
#: 2 shared cores under load (in one process and across two), more only where a loop stalls at
#: that moment. A wrong figure is off by much more: counted from the segment's start (its speech,
#: 0.5 s or more), to the mark's sending rather than its echo (the translation's playing time, at
#: least a word of the stable translator: 200 ms), or from when the segment closed (the
#: ``CLOSE_SILENCE_MS`` the test servers wait, then the model's turn).
LAG_TOLERANCE_S = 0.1
#: the silence after which the test servers close a segment (``vad.min_silence_ms``, 100 by
#: default): what a lag counted from the segment's result rather than its speech's end is off by, at
#: least; four times the tolerance
CLOSE_SILENCE_MS = 400


async def segment_ends(
    stub: pb_grpc.TranslatorStub, audio: bytes, encoding: int, rate: int, source: str, target: str
) -> list[int]:
    """The end (timeline ms) of each segment the server makes of ``audio``, in order."""
    request = pb.TranslateRequest(
        audio=pb.AudioInput(content=audio, format=pb.AudioFormat(encoding=encoding, sample_rate_hz=rate, channels=1)),
        source_language=source,
        target_languages=[target],
        output=pb.OutputOptions(text=True, speech=False),
    )
    response = await stub.Translate(request)
    return [int(s.end_ms) for s in response.segments]


def carrier_lags(log: CarrierLog, ends_ms: Sequence[int]) -> list[float]:
    """Each mark's ear-voice lag as the carrier saw it (seconds, in mark order): from when it sent
    the frame that reached the end of the mark's segment (``ends_ms``, in segment order) to when
    it sent the mark back."""
    assert len(log.marks) == len(ends_ms), f"{len(log.marks)} marks for {len(ends_ms)} segments"
    return [log.echoed[mark][1] - log.sent_at(end) for mark, end in zip(log.marks, ends_ms, strict=True)]


def p50_and_max_ms(lags: Sequence[float]) -> tuple[int, int]:
    """The median (the upper one of an even count) and the largest lag, in whole ms."""
    ordered = sorted(lags)
    return round(1000 * ordered[len(ordered) // 2]), round(1000 * ordered[-1])
