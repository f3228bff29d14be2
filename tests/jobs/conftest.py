"""Fixtures of the jobs' tests that start real server processes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.server_process import ServerProcess


@pytest.fixture
def servers() -> Iterator[list[ServerProcess]]:
    """The server processes a test starts (it appends each): any still running killed at its end."""
    started: list[ServerProcess] = []
    yield started
    for s in started:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()
