"""A tenant's audio budget: its ``audio_seconds_per_minute`` (the tokens file), drawn from its
counter ``<tenant>/audio`` (``counters.Counters.spend``/``draw``), and what a spent one does.

A call of a tenant whose budget is spent is refused as it opens (``check``, ``check_now``:
``QuotaRefused``); a stream in progress draws what it sends (``charge``) and is closed, once its
open speech is translated, when the budget is spent (``QuotaSpent``). Both are RESOURCE_EXHAUSTED
with when the budget is back (``retry_after_ms``). Event loop only.
"""

from __future__ import annotations

from translate_svc.errors import LimitReached, Overloaded
from translate_svc.session.tenants.counters import Counters, LocalCounters
from translate_svc.session.tenants.tenant import Tenant


class QuotaRefused(Overloaded):
    """A call of a tenant whose audio seconds per minute are spent is refused as it opens
    (RESOURCE_EXHAUSTED, with when the budget is back)."""

    reason = "quota"

    def __init__(self, tenant: Tenant, retry_after_ms: int) -> None:
        super().__init__(
            f"tenant {tenant.name!r} has used its {tenant.caps.audio_seconds_per_minute or 0:g} audio seconds "
            f"per minute (its cap in the tokens file); retry in {retry_after_ms / 1000:.1f} s",
            retry_after_ms=retry_after_ms,
        )


class QuotaSpent(LimitReached):
    """The tenant's audio seconds per minute are spent: the stream was closed after its open speech
    was translated (RESOURCE_EXHAUSTED, with when the budget is back)."""

    code = Overloaded.code

    def __init__(self, tenant: Tenant, retry_after_ms: int) -> None:
        cap = tenant.caps.audio_seconds_per_minute
        super().__init__(
            f"tenant {tenant.name!r} has used its {cap:g} audio seconds per minute (its cap in the tokens file): "
            f"the stream was closed after its open speech was translated; retry in {retry_after_ms / 1000:.1f} s",
            reason="quota",
        )
        self.retry_after_ms = retry_after_ms


def retry_after_ms(level: float, per_minute: float) -> int:
    """Until a budget at ``level`` is above zero again."""
    return max(100, round(-level / (per_minute / 60.0) * 1000) + 100)


async def check(counters: Counters, tenant: Tenant) -> None:
    """Refuse a new call of ``tenant`` (``QuotaRefused``) when its audio budget is spent (admission:
    the exact level, from where the budget is counted)."""
    per_minute = tenant.caps.audio_seconds_per_minute
    if per_minute is not None:
        _check(tenant, await counters.spend(f"{tenant.name}/audio", 0.0, per_minute), per_minute)


def check_now(counters: LocalCounters, tenant: Tenant) -> None:
    """``check`` from this process's own counts: they answer at once (no coroutine)."""
    per_minute = tenant.caps.audio_seconds_per_minute
    if per_minute is not None:
        _check(tenant, counters.draw(f"{tenant.name}/audio", 0.0, per_minute), per_minute)


def charge(counters: Counters, tenant: Tenant, seconds: float) -> QuotaSpent | None:
    """Draw ``seconds`` of audio from the tenant's budget (a call in progress: never waits);
    QuotaSpent once it is spent."""
    per_minute = tenant.caps.audio_seconds_per_minute
    if per_minute is None:
        return None
    left = counters.draw(f"{tenant.name}/audio", seconds, per_minute)
    return None if left > 0 else QuotaSpent(tenant, retry_after_ms(left, per_minute))


def affords_optional(counters: Counters, tenant: Tenant, seconds: float) -> bool:
    """Whether the tenant's audio budget can pay ``seconds`` of optional work (a room speaker's
    speech made again at its listeners' rates) and keep at least half its minute: optional work
    uses only what the tenant's streams leave, never the budget whose end would close one. A
    tenant without a budget: always (its cost is still counted: ``charge_optional``). Reads this
    process's view of the level (``Counters.draw`` of nothing: never waits)."""
    per_minute = tenant.caps.audio_seconds_per_minute
    if per_minute is None:
        return True
    return counters.draw(f"{tenant.name}/audio", 0.0, per_minute) - seconds >= per_minute / 2


def charge_optional(counters: Counters, tenant: Tenant, seconds: float) -> None:
    """Draw ``seconds`` of optional work made (``affords_optional`` said it could be paid) from the
    tenant's audio budget; never ends a call (a stream's own draw does that, ``charge``)."""
    per_minute = tenant.caps.audio_seconds_per_minute
    if per_minute is not None:
        counters.draw(f"{tenant.name}/audio", seconds, per_minute)


def _check(tenant: Tenant, left: float, per_minute: float) -> None:
    if left <= 0:
        raise QuotaRefused(tenant, retry_after_ms(left, per_minute))
