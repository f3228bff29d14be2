"""The flood test (tests/support/flood.py; tests/service/test_fair_share.py on CPU) on CUDA, with
CUDA's defaults: the fast runner, the steps core, its step as CUDA graphs and the finish stage on a
thread and stream of its own (issue 70 item 2: every stream keeps its fair share in the running
decode). The test checkpoint in float32; latency compared between two runs in one test, as on CPU."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.flood import flood_beside_real_time
from tests.support.live_server import make_settings

pytestmark = [pytest.mark.integration, pytest.mark.gpu, pytest.mark.serial, pytest.mark.asyncio(loop_scope="session")]


async def test_a_flood_takes_no_more_than_one_segments_time_from_real_time_streams_on_cuda(
    test_model_dir: Path, shared_audio: Path
) -> None:
    settings = make_settings(test_model_dir, max_batch_size=16, max_wait_ms=10)
    settings.model.device = "cuda"
    assert settings.model.runner == "auto" and settings.engine.core == "auto"  # CUDA's defaults: fast, steps
    settings.engine.core = "steps"  # said outright: the bound the test holds it to is the steps core's
    await flood_beside_real_time(settings, shared_audio)
