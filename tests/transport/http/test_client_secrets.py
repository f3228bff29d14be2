"""Client secrets (``transport/http/client_secrets.py``) with plain values and a fake clock: a
secret expires, only its key signs it (another worker with the same key reads it), its life is
capped at the server's TTL and cannot be forged longer, and it carries its minter's tenant."""

from __future__ import annotations

import pytest

from translate_svc.transport.http.client_secrets import ClientSecrets

pytestmark = pytest.mark.unit


def test_client_secrets_expire_and_only_their_key_signs_them() -> None:
    now = [1_000_000.0]
    key = "k" * 64
    secrets = ClientSecrets(key, ttl_s=600, clock=lambda: now[0])
    value, expires = secrets.mint(30)
    assert expires == 1_000_030 and secrets.valid(value)
    assert ClientSecrets(key, 600, clock=lambda: now[0]).valid(value)  # another worker, the same key
    assert not ClientSecrets("x" * 64, 600, clock=lambda: now[0]).valid(value)  # another key
    assert secrets.mint(10_000)[1] == 1_000_600  # capped at the server's TTL
    assert not secrets.valid(value.replace("ek_1000030", "ek_1999999"))  # a longer life cannot be forged
    acme, _ = secrets.mint(30, tenant="acme")  # a secret carries its minter's tenant, signed
    assert secrets.tenant(acme) == "acme" and secrets.tenant(value) == "default"
    assert secrets.tenant(acme.replace("_acme_", "_beta_")) is None
    now[0] += 31
    assert not secrets.valid(value) and not secrets.valid("not-a-secret")
