"""``tenants.budget``: a tenant's audio seconds per minute, checked as a call opens (``QuotaRefused``)
and drawn while it runs (``QuotaSpent``), with when the budget is back; a tenant without the cap is
never counted."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from translate_svc.session.tenants import budget
from translate_svc.session.tenants.budget import QuotaRefused, QuotaSpent
from translate_svc.session.tenants.counters import Held, LocalCounters
from translate_svc.session.tenants.tenant import Tenant, TenantCaps

pytestmark = pytest.mark.unit

METERED = Tenant("metered", TenantCaps(audio_seconds_per_minute=60.0))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Untouchable:
    """Counters that fail the test if a budget is asked of them."""

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def acquire(self, wants: Sequence[tuple[str, int]]) -> Held | str:
        raise AssertionError("acquire")

    def release(self, held: Held) -> None:
        raise AssertionError("release")

    async def spend(self, name: str, amount: float, per_minute: float) -> float:
        raise AssertionError(f"spend {name}")

    def draw(self, name: str, amount: float, per_minute: float) -> float:
        raise AssertionError(f"draw {name}")


async def test_a_spent_budget_ends_the_stream_refuses_the_next_call_and_comes_back() -> None:
    clock = Clock()
    counters = LocalCounters(clock)
    budget.check_now(counters, METERED)  # a full minute banked
    assert budget.charge(counters, METERED, 59.0) is None
    spent = budget.charge(counters, METERED, 2.0)  # one second over
    assert isinstance(spent, QuotaSpent) and spent.retry_after_ms == 1100
    with pytest.raises(QuotaRefused) as refused:
        budget.check_now(counters, METERED)
    assert refused.value.retry_after_ms == 1100 and "'metered' has used its 60 audio seconds" in refused.value.message
    with pytest.raises(QuotaRefused):
        await budget.check(counters, METERED)  # the same level, asked as a shared store is
    clock.now += 1.5  # a second and a half at a second a second
    budget.check_now(counters, METERED)
    await budget.check(counters, METERED)


async def test_a_tenant_without_the_cap_is_never_counted() -> None:
    free = Tenant("free")
    budget.check_now(LocalCounters(), free)
    await budget.check(Untouchable(), free)
    assert budget.charge(Untouchable(), free, 3600.0) is None
