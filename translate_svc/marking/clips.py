"""A clip searched for the speech watermark where it is decoded: the function a detection call
(``session/calls/detect.py``) runs in a sandbox process, by name (``sandbox/named.py``), so that
the clip's decoder and torch run there, never in the server's process. Its answer is plain values
(``sandbox/answers.py`` loads nothing else)."""

from __future__ import annotations

from translate_svc.audio.codec import decode_audio
from translate_svc.errors import InvalidInput, NotInstalled
from translate_svc.marking.credentials import Credentials, read_any
from translate_svc.types import AudioFormat

#: what ``audio/limits.py``'s ``too_long`` says of a clip over the limit (worded for Translate)
TOO_LONG = "Translate takes at most"

#: (probability, spans as (start_s, end_s), watermarker, the clip's seconds, its content credentials)
ClipDetection = tuple[float, tuple[tuple[float, float], ...], str, float, Credentials | None]


def detect_clip(
    content: bytes, fmt: AudioFormat, max_seconds: float, trust_anchors_pem: str | None = None
) -> ClipDetection:
    """``content`` in ``fmt`` decoded (at most ``max_seconds``: ``InvalidInput`` past it, or for
    what cannot be decoded) and searched for the mark (``watermarker.Watermarker.detect``); its
    C2PA manifest read and checked (``credentials.read_any``: ``Trusted`` under
    ``trust_anchors_pem``). Raises only the server's own errors: a marking module's exception class
    would have the server's process import torch to load it."""
    from translate_svc.marking import perth, watermarker  # torch: in the sandbox process only

    try:
        samples, rate = decode_audio(content, fmt, max_seconds=max_seconds)
    except InvalidInput as e:
        if TOO_LONG not in e.message:
            raise
        length = e.message.split(";", 1)[0]  # "the clip is 31.0 s long" (audio/limits.py's too_long)
        raise InvalidInput(
            f"{length}; a detection reads at most {max_seconds:g} s (limits.max_detect_seconds): send an excerpt"
        ) from None
    credentials = read_any(content, trust_anchors_pem)
    del content
    try:
        found = watermarker.shared().detect(samples, rate)
    except watermarker.MarkingInputError as e:
        raise InvalidInput(f"this clip cannot be searched for the mark: {e}") from None
    except perth.PerthMissing as e:
        raise NotInstalled(f"this server cannot detect the speech watermark: {e}") from None
    return found.probability, found.spans, found.watermarker, len(samples) / rate, credentials
