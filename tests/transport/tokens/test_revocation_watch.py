"""``tokens.revocation``: a watched stream is ended when its token goes, even when the token went
between the call's check and the start of its watch (over a real server: ``test_revocation.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from translate_svc.errors import Revoked
from translate_svc.transport.grpc.auth import WORDING as GRPC_WORDING
from translate_svc.transport.tokens.authorization import Authorized, authorize
from translate_svc.transport.tokens.file import Permission
from translate_svc.transport.tokens.revocation import Revocation, watching
from translate_svc.transport.tokens.store import TokenStore

pytestmark = pytest.mark.unit


class Stream:
    """A live stream as ``Revocation`` sees it (``tokens.revocation.Endable``)."""

    def __init__(self) -> None:
        self.ended: list[object] = []

    def end(self, limit: object) -> None:
        self.ended.append(limit)


def test_a_token_removed_between_the_check_and_the_watch_ends_the_stream(tmp_path: Path) -> None:
    """The one lookup is at the call's check; a door awaits before its stream is watched, and a
    reload in between (the token removed) is caught as the watch starts, by the file's generation."""
    path = tmp_path / "tokens"
    path.write_text("full-token * tenant=acme\n")
    tokens = TokenStore(path, check_interval_s=0.0)
    revocation = Revocation(tokens)
    kept = authorize(tokens, "full-token", Permission.STREAM, GRPC_WORDING)
    assert isinstance(kept, Authorized)
    calm = Stream()
    with watching(revocation, calm, kept):  # nothing changed: not looked up again, not ended
        assert calm.ended == []
    path.write_text("other-token-now *\n")
    tokens.maybe_reload()  # the token is gone before the stream is watched
    assert tokens.reloads == kept.generation + 1
    late = Stream()
    with watching(revocation, late, kept):
        assert [type(e) for e in late.ended] == [Revoked]
    assert watching(None, Stream(), kept).__enter__() is None  # no tokens: nothing watched
