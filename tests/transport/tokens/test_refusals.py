"""The wording of refusals (``tokens.refusals``): each refusal ``authorize`` makes has its kind,
which each door renders as its own status, and the door's words, which its clients have seen."""

from __future__ import annotations

from pathlib import Path

import pytest

from translate_svc.transport.grpc.auth import WORDING as GRPC_WORDING
from translate_svc.transport.http.caller import WORDING as HTTP_WORDING
from translate_svc.transport.tokens.authorization import authorize
from translate_svc.transport.tokens.file import Permission
from translate_svc.transport.tokens.refusals import Refusal, RefusalKind
from translate_svc.transport.tokens.store import TokenStore

pytestmark = pytest.mark.unit


def store(tmp_path: Path) -> TokenStore:
    path = tmp_path / "tokens"
    path.write_text("full-token * tenant=acme\nlang-token languages\n")
    return TokenStore(path)


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
