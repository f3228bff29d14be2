"""``tokens.authorization.authorize``: the one token decision every door asks (issue 43), a tenant or a
refusal, with one lookup (the refusals' kinds and words: ``test_refusals.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from translate_svc.session.tenants.tenant import DEFAULT_TENANT
from translate_svc.transport.grpc.auth import WORDING as GRPC_WORDING
from translate_svc.transport.tokens.authorization import Authorized, authorize
from translate_svc.transport.tokens.file import Permission, TokenDigest
from translate_svc.transport.tokens.store import TokenStore

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
