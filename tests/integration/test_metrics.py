"""Prometheus metrics move with real traffic."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from tests.conftest import LiveServer
from translate_svc.client.raw import translate_file

pytestmark = pytest.mark.asyncio(loop_scope="session")


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_segments_batches_and_latency_are_counted(live: LiveServer, shared_audio: Path) -> None:
    ok, batches, lat, vad = (
        value("translate_svc_segments_total", status="OK"),
        value("translate_svc_batch_size_count"),
        value("translate_svc_segment_latency_ms_count"),
        value("translate_svc_vad_streams_per_call_count"),
    )
    await translate_file(live.stub, shared_audio / "jfk.flac", ["spa"], speech=False)
    assert value("translate_svc_segments_total", status="OK") == ok + 4
    assert value("translate_svc_segment_latency_ms_count") == lat + 4
    assert value("translate_svc_batch_size_count") > batches
    assert value("translate_svc_vad_streams_per_call_count") > vad  # the clip went through the VAD worker
    assert value("translate_svc_streams_active") == 0
