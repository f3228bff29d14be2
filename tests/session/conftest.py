"""Fixtures of the session tests."""

from __future__ import annotations

import pytest

from tests.support.lockstep import WatchedVad
from translate_svc.vad.silero import SileroVad


@pytest.fixture(scope="module")
def vad_worker() -> WatchedVad:
    """The real VAD (silero on its worker thread), watched so a test can keep in step with it
    (``lockstep.settle``); one per module."""
    return WatchedVad(SileroVad())
