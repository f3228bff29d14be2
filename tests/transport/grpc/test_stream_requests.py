"""The gRPC door's request reading (``servicer._requests``): a message it cannot serve becomes an
``Invalid`` carrying the status, and reading goes on, so the driver can read and drop what a
refused client still sends (``server.error_drain_s``) and the client gets the status rather than a
failed write (INTERNAL, grpc/grpc#36066). Before, a config refused for a library this server lacks
(noise suppression without pyrnnoise: FAILED_PRECONDITION) raised out of the reading and ended it:
the call ended at once, and a client still writing saw INTERNAL under load. Plain values."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.support.raw import stream_config
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.errors import InvalidInput, NotInstalled
from translate_svc.session.events import AudioIn, Invalid
from translate_svc.session.task import checks as task_checks
from translate_svc.settings import LimitsSettings
from translate_svc.transport.grpc.servicer import _requests
from translate_svc.vad.segmenter import SegmenterConfig

pytestmark = pytest.mark.unit

FMT = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000, channels=1)


def read(messages: list[bytes]) -> list[object]:
    async def raw() -> AsyncIterator[bytes]:
        for m in messages:
            yield m

    async def all_of() -> list[object]:
        return [r async for r in _requests(raw(), SegmenterConfig(), LimitsSettings())]

    return asyncio.run(all_of())


def test_a_config_refused_for_a_missing_library_is_passed_on_and_reading_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(task_checks, "denoise_installed", lambda: False)
    audio = pb.StreamingTranslateRequest(audio=bytes(3200)).SerializeToString()
    config = stream_config(FMT, noise_suppression=pb.NOISE_SUPPRESSION_RNNOISE).SerializeToString()
    got = read([config, audio, b"\xff\xff", audio])
    assert [type(r) for r in got] == [Invalid, AudioIn, Invalid, AudioIn]
    refused, unparsable = got[0], got[2]
    assert isinstance(refused, Invalid) and isinstance(refused.error, NotInstalled)
    assert "pyrnnoise" in refused.error.message
    assert isinstance(unparsable, Invalid) and isinstance(unparsable.error, InvalidInput)
