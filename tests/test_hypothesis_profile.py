"""A suite that passes under load: Hypothesis's profile for the whole suite, loaded by
``tests/conftest.py`` (``tests/support/hypothesis_profile.py``), has no deadline, and a test's own
``@settings(...)`` inherits it. Before it, ``tests/audio/test_ogg.py`` and
``tests/model/stages/test_terms.py`` (which sets ``max_examples`` only) failed on a loaded machine
with DeadlineExceeded: their first example took over Hypothesis's default 200 ms."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.hypothesis_profile import SUITE_PROFILE

pytestmark = pytest.mark.unit

#: longer than Hypothesis's default deadline (200 ms, and the 250 ms it allows on a rerun): an
#: example as slow as a loaded machine makes one
SLOW_EXAMPLE_S = 0.3


def test_the_suites_profile_is_loaded_and_has_no_deadline() -> None:
    assert settings.get_profile(SUITE_PROFILE).deadline is None
    assert settings.default.deadline is None  # what a test without @settings runs with


@settings(max_examples=2)  # as test_terms.py: settings of its own, the deadline inherited
@given(st.integers(0, 1))
def test_an_example_slower_than_hypothesis_default_deadline_passes(n: int) -> None:
    time.sleep(SLOW_EXAMPLE_S)  # the work of a slow example (no waiting on anything)
