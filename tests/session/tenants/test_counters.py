"""``tenants.counters``: a process's own counts take every cap of a call or none, give back what
they took, and a full counter's refusal names the cap, where it is set and what to do."""

from __future__ import annotations

import pytest

from translate_svc.errors import Overloaded
from translate_svc.session.tenants.counters import LocalCounters, refusal
from translate_svc.session.tenants.tenant import Tenant, TenantCaps

pytestmark = pytest.mark.unit

ACME = Tenant("acme", TenantCaps(streams=2))


def test_a_call_takes_every_cap_or_none_and_gives_them_back() -> None:
    counters = LocalCounters()
    wants = [("streams", 3), ("acme/streams", 2)]
    first, second = counters.take(wants), counters.take(wants)
    assert not isinstance(first, str) and not isinstance(second, str)
    assert counters.take(wants) == "acme/streams"  # the tenant's cap is full
    assert counters.count("streams") == 2  # and nothing was taken for the refused call
    counters.release(first)
    assert counters.count("acme/streams") == 1
    assert counters.take([("streams", 1), ("beta/streams", 9)]) == "streams"  # a node cap of one is full


def test_a_full_counter_is_refused_naming_its_cap_and_where_it_is_set() -> None:
    tenant_cap = refusal("acme/streams", ACME, [("streams", 256), ("acme/streams", 2)])
    assert isinstance(tenant_cap, Overloaded) and tenant_cap.retry_after_ms == 1000
    assert str(tenant_cap.message) == (
        "tenant 'acme' is at its cap of 2 open streams (streams=2 in the tokens file); end one of them or retry shortly"
    )
    setting = refusal("acme/unary", ACME, [("acme/unary", 64)])
    assert "(limits.max_unary_calls_per_tenant)" in setting.message and "64 unary calls in progress" in setting.message
    node = refusal("translate", ACME, [("translate", 4), ("acme/translate", 1 << 62)])
    assert node.message == (
        "this server is at its capacity of 4 concurrent Translate calls (limits.max_translate_calls); retry shortly "
        "or on another server"
    )
