"""Hypothesis's profile for every test of the suite (``SUITE_PROFILE``), registered here and loaded by
``tests/conftest.py`` (pytest reads it before it imports a test module, so a test's own
``@settings(...)`` inherits the profile): no deadline. Hypothesis fails an example slower than
200 ms by default, and a machine loaded by the suite's other workers and servers runs a first
example (imports, caches) slower than that: two property tests failed so under a load average of
10-20, neither slow on a quiet machine. A test that must be fast says so with a bound of its own."""

from __future__ import annotations

from hypothesis import settings

SUITE_PROFILE = "translate-svc-suite"
settings.register_profile(SUITE_PROFILE, deadline=None)
