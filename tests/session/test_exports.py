"""Issue 71 (a loose end): the session package exports what a door drives (the drivers, the
manager, the events it speaks), not a stream's own session: ``StreamSession`` is the manager's and
its driver's (the doors' contracts forbid ``session.stream``; a re-export let a door reach it)."""

from __future__ import annotations

import pytest

import translate_svc.session as session

pytestmark = pytest.mark.unit


def test_the_session_package_exports_no_stream_session() -> None:
    assert "StreamSession" not in session.__all__
    assert not hasattr(session, "StreamSession")
    assert [name for name in session.__all__ if not hasattr(session, name)] == []
