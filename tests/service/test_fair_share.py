"""Fair share on a real server, under both cores: whole batches (the exact runner) and the steps
core (the fast runner), where the flood's segments wait in the queue while the decode is full
(tests/support/flood.py says what is held; tests/gpu/test_fair_share_cuda.py runs it on CUDA)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.flood import flood_beside_real_time
from tests.support.live_server import make_settings

#: latency compared between two runs in one test: alone on the machine (make test's serial part)
pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.serial]


@pytest.mark.parametrize("core", ["batch", "steps"])
async def test_a_flood_at_20x_takes_nothing_from_8_real_time_streams_and_the_stream_past_capacity_is_refused(
    test_model_dir: Path, shared_audio: Path, core: str
) -> None:
    settings = make_settings(test_model_dir, max_batch_size=16, max_wait_ms=10, core=core)
    settings.model.runner = "fast" if core == "steps" else "exact"
    await flood_beside_real_time(settings, shared_audio)
