"""Shapes that repeat (issue 70): a real server on loopback with the warm-up ``buckets`` (every
encoder frame bucket for each batch size, then every t2u and vocoder bucket) takes a stream of real
speech, translated to text and speech, and meets no tensor shape its warm-up did not run: its
``/metrics`` count no cold shape in any stage (``translate_svc_model_cold_shapes_total``)."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.live_server import make_settings, serving
from translate_svc.client import AsyncTranslateClient, Segment, VadOptions
from translate_svc.client_cli.decode import load_pcm16k

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(120)]

STAGES = ("encoder", "decoder", "t2u", "vocoder")
LONGEST_S = 6.0  # the warm-up covers segments up to this; the stream cuts its segments shorter
CUT_MS = 5_000


def cold_shapes(metrics_port: int) -> dict[str, float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    out = dict.fromkeys(STAGES, 0.0)
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            if s.name == "translate_svc_model_cold_shapes_total":
                out[s.labels["stage"]] = s.value
    return out


async def test_a_warmed_server_meets_no_cold_shape_on_real_speech(test_model_dir: Path, shared_audio: Path) -> None:
    settings = make_settings(test_model_dir, max_batch_size=2)
    settings.server.metrics_port = 0
    settings.model.warmup = "buckets"
    settings.model.warmup_longest_s = LONGEST_S
    settings.model.warmup_max_s = None  # the whole plan, however slow the machine
    pcm = load_pcm16k(shared_audio / "jfk.flac")
    async with serving(settings) as live:
        port = live.server.metrics_port
        before = await asyncio.to_thread(cold_shapes, port)
        segments: list[Segment] = []
        async with (
            AsyncTranslateClient(f"127.0.0.1:{live.port}", timeout_s=300) as c,
            c.stream(targets=["spa"], speech=True, transcript=False, vad=VadOptions(max_segment_ms=CUT_MS)) as s,
        ):

            async def send() -> None:
                for at in range(0, len(pcm), 1600):
                    await s.send(pcm[at : at + 1600])
                await s.close()

            sender = asyncio.create_task(send())
            async for ev in s:
                if isinstance(ev, Segment):
                    segments.append(ev)
            await sender
        after = await asyncio.to_thread(cold_shapes, port)
    spoken = [t for seg in segments for t in seg.translations if t.audio is not None and len(t.audio) > 0]
    assert len(segments) >= 3 and len(spoken) == len(segments)  # every stage ran on every segment
    assert {stage: after[stage] - before[stage] for stage in STAGES} == dict.fromkeys(STAGES, 0.0)
