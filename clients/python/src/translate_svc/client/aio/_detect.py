"""The client's ``detect_synthetic``: a clip searched for the speech watermark by the server
(``DetectSynthetic``), a mixin of ``AsyncTranslateClient``, whose ``_unary`` makes the call (retried
on the next address as every unary call is). Event loop only."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.client import _convert as convert
from translate_svc.client._audio import AudioInput, clip_input
from translate_svc.client.detection import Detection, detection
from translate_svc.client.types import ClipEncoding


class DetectCalls:
    """``detect_synthetic``."""

    if TYPE_CHECKING:  # AsyncTranslateClient's

        async def _unary(
            self,
            method: str,
            request: Any,
            timeout_s: float | None,
            *,
            messages: Callable[[], Iterator[Any]] | None = None,
            service: str = "Translator",
        ) -> Any: ...

    async def detect_synthetic(
        self,
        audio: AudioInput,
        *,
        sample_rate: int | None = None,
        encoding: ClipEncoding | None = None,
        channels: int | None = None,
        timeout_s: float | None = None,
    ) -> Detection:
        """Whether ``audio`` carries the watermark the server adds to the speech it makes, and where:
        file bytes or a path (any container the server reads), raw bytes with ``encoding`` and
        ``sample_rate``, or a numpy array with its ``sample_rate`` (as ``translate`` takes them). The
        clip goes in one message, at most the server's ``limits.max_receive_message_bytes`` (4 MiB
        by default: send FLAC, MP3 or Ogg for long clips) and ``limits.max_detect_seconds`` long."""
        content, enc, rate, ch = await asyncio.to_thread(
            clip_input, audio, encoding=encoding, sample_rate=sample_rate, channels=channels
        )
        fmt = pb.AudioFormat(encoding=convert.encoding_pb(enc), sample_rate_hz=rate, channels=ch)
        request = pb.DetectSyntheticRequest(audio=pb.AudioInput(content=content, format=fmt))
        return detection(await self._unary("DetectSynthetic", request, timeout_s))
