"""Shared fixtures: the test checkpoint, the shared audio, and a real server on loopback; and the
whole suite's Hypothesis profile (``SUITE_PROFILE``: no deadline)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from hypothesis import settings as hypothesis_settings

from tests.support.hypothesis_profile import SUITE_PROFILE
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.paths import SHARED_AUDIO, TEST_MODEL

pytest_plugins = ["tests.support.suite_times"]  # per-test CPU and wall, when asked (TRANSLATE_SVC_TEST_TIMES)

hypothesis_settings.load_profile(SUITE_PROFILE)  # no deadline: tests/support/hypothesis_profile.py

#: The servers the suite starts (in process, and every subprocess: they inherit this) run their
#: media processes at the test's own priority, not 10 below it: against busy loops on the machine a
#: niceness-10 process gets about a tenth of a loop's share (by design: uploads' decoders below live
#: work), so a video test waited minutes for seconds of CPU. Where a test is of that priority
#: (tests/jobs/test_lengthless_uploads.py, tests/sandbox/test_pool.py) it sets it itself; the
#: product's default (10) is tested in tests/settings/test_media_settings.py (docs/decisions.md)
os.environ.setdefault("TRANSLATE_SVC_MEDIA__NICENESS", "0")


@pytest.fixture(scope="session")
def shared_audio() -> Path:
    if not (SHARED_AUDIO / "jfk.flac").is_file():
        pytest.fail(f"the shared test audio is missing: expected {SHARED_AUDIO} (../shared/audio beside the repo)")
    return SHARED_AUDIO


@pytest.fixture(scope="session")
def test_model_dir() -> Path:
    """model_cache/test-model (what `make test` builds), built here if missing."""
    from translate_svc.model.testing.checkpoint import build_test_checkpoint

    path = Path(os.environ.get("TRANSLATE_SVC_TEST_MODEL", TEST_MODEL))
    if not (path / "config.json").is_file():
        build_test_checkpoint(path)
    return path


@pytest.fixture(scope="session")
def runner(test_model_dir: Path):  # type: ignore[no-untyped-def]
    from translate_svc.model.runner import SeamlessRunner
    from translate_svc.model.stages.seamless import SeamlessStages

    return SeamlessRunner(SeamlessStages(test_model_dir, device="cpu", dtype="float32"))


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def live(test_model_dir: Path) -> AsyncIterator[LiveServer]:
    """One real server for the whole session: loopback, port 0, the test checkpoint."""
    async with serving(make_settings(test_model_dir)) as server:
        yield server
    await asyncio.sleep(0)


def _seconds(item: pytest.Item) -> float:
    mark = item.get_closest_marker("slow")
    return float(mark.args[0]) if mark and mark.args else 0.0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest files first (``slow(seconds)``), then the other integration files, the unit files
    last (a stable sort, the same on every xdist worker). make test keeps this order
    (``--no-loadscope-reorder``), so each worker starts on a long file and the short ones fill the
    gaps: no worker is left running a long file alone at the end."""
    items.sort(key=lambda item: (-_seconds(item), item.get_closest_marker("unit") is not None))
