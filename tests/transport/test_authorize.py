"""``tokens.authorize``: the one token decision every door asks (issue 43), a tenant or a refusal
(its kind, which each door renders as its own status, and the door's words), with one lookup."""

from __future__ import annotations

from pathlib import Path

import pytest

from translate_svc.errors import Revoked
from translate_svc.session.quota import DEFAULT_TENANT
from translate_svc.transport.grpc.auth import WORDING as GRPC_WORDING
from translate_svc.transport.http.caller import WORDING as HTTP_WORDING
from translate_svc.transport.tokens import (
    Authorized,
    Permission,
    Refusal,
    RefusalKind,
    Revocation,
    TokenDigest,
    TokenStore,
    authorize,
    watching,
)

pytestmark = pytest.mark.unit


def store(tmp_path: Path) -> TokenStore:
    path = tmp_path / "tokens"
    path.write_text("full-token * tenant=acme\nlang-token languages\n")
    return TokenStore(path)


def test_a_known_token_with_the_permission_is_its_tenant_and_digest(tmp_path: Path) -> None:
    got = authorize(store(tmp_path), "full-token", Permission.STREAM, GRPC_WORDING, "StreamingTranslate")
    assert isinstance(got, Authorized)
    assert got.tenant.name == "acme" and got.token == TokenDigest.of("full-token")
    any_valid = authorize(store(tmp_path), "lang-token", None, GRPC_WORDING)  # reflection: any token
    assert isinstance(any_valid, Authorized) and any_valid.tenant == DEFAULT_TENANT


def test_without_a_tokens_file_every_call_is_the_default_tenant() -> None:
    assert authorize(None, None, Permission.STREAM, GRPC_WORDING) == Authorized(DEFAULT_TENANT)


def test_each_refusal_has_its_kind_and_the_doors_words(tmp_path: Path) -> None:
    tokens = store(tmp_path)
    cases = [
        (None, RefusalKind.NO_TOKEN, 'this server requires a token: send metadata "authorization: Bearer <token>"'),
        ("", RefusalKind.MALFORMED, 'malformed authorization metadata: send metadata "authorization: Bearer <token>"'),
        (
            "nope",
            RefusalKind.UNKNOWN_TOKEN,
            "the token is not valid; send a current token of this server (tokens may have been rotated)",
        ),
        (
            "lang-token",
            RefusalKind.NO_PERMISSION,
            'the token lacks the permission "stream" that StreamingTranslate needs; ask for a token with it',
        ),
    ]
    for token, kind, message in cases:
        got = authorize(tokens, token, Permission.STREAM, GRPC_WORDING, "StreamingTranslate")
        assert got == Refusal(kind, message), token
    http = authorize(tokens, "lang-token", Permission.STREAM, HTTP_WORDING, "a realtime session")
    assert http == Refusal(
        RefusalKind.NO_PERMISSION, 'the token lacks the permission "stream" that a realtime session needs'
    )
    missing = authorize(tokens, None, Permission.STREAM, HTTP_WORDING, "a realtime session")
    assert isinstance(missing, Refusal)
    assert missing.message == "this server requires a token: send `Authorization: Bearer <token>` (api_key)"


class Stream:
    """A live stream as ``Revocation`` sees it (``tokens.Endable``)."""

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
