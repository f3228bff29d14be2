"""Who may start what, before a byte of it is read: the node's limits and the tenants' caps as each
kind of call takes them.

``Gate`` takes a stream's slots (the node's ``max_streams`` and the tenant's cap, at the call's open:
an unconfigured stream counts as much as a running one), a clip's, a clip being received, an HTTP
request held past its head, a background job's, a unary call's (per tenant on the node and per
token in this process) and a live stream's ear (noise suppression or speaker labels); it refuses
with RESOURCE_EXHAUSTED naming the full cap, or the tenant's spent audio budget. The counts are
this process's own (``LocalCounters``: they answer at once, with no coroutine between) or leases in
the cluster store (``tenants/leases.py``). ``Admission`` is one stream's slots, handed from the door
to its session; ``Holding`` one call's counts for an ``async with`` block. Event loop only.
"""

from __future__ import annotations

from translate_svc.errors import Overloaded
from translate_svc.session.stream import ear as ears
from translate_svc.session.tenants import budget as tenants_budget
from translate_svc.session.tenants.budget import QuotaSpent
from translate_svc.session.tenants.counters import UNCAPPED, Counters, Held, LocalCounters, refusal
from translate_svc.session.tenants.tenant import Tenant
from translate_svc.settings import LimitsSettings
from translate_svc.types import TranslationTask


class Gate:
    """The counts every call of one server process takes; event loop only."""

    def __init__(self, counters: Counters, limits: LimitsSettings, ear: ears.EarPools) -> None:
        self.counters = counters
        self.limits = limits
        self.ear = ear
        #: the same counters, when they are this process's own (they answer at once)
        self._local = counters if isinstance(counters, LocalCounters) else None
        #: unary calls in progress in this process, by token digest (``unary``)
        self.token_calls: dict[bytes, int] = {}

    async def stream(self, tenant: Tenant) -> Admission:
        """A stream's slots (the node's ``max_streams`` and the tenant's cap), taken when its call
        or socket opens, before its config is read (docs/security.md). RESOURCE_EXHAUSTED (or the
        tenant's quota) when full. Release it unless it is handed to ``SessionManager.open_stream``."""
        wants = [("streams", self.limits.max_streams), (f"{tenant.name}/streams", _cap(tenant.caps.streams))]
        return Admission(self.counters, await self.take(wants, tenant, budget=True))

    async def ear_for(self, tenant: Tenant, task: TranslationTask) -> Held | None:
        """A live stream with noise suppression or speaker labels (``stream/ear.py``): one of
        ``limits.max_ear_streams`` in this process (the ear's threads are its own) and of its
        tenant's ``ear_streams``; refused (PERMISSION_DENIED) where its tenant may have none, else
        RESOURCE_EXHAUSTED when full. None: the stream asks for neither. Give it back with
        ``ear_given``."""
        if not ears.uses_ear(task.ear):
            return None
        cap = ears.ear_cap(tenant, self.limits)
        if cap == 0:
            raise ears.ear_refused(tenant)
        self.ear.take()
        try:
            return await self.take([(f"{tenant.name}/ear_streams", _cap(cap))], tenant)
        except BaseException as e:
            self.ear.give()
            if isinstance(e, Overloaded):
                e.reason = "ear_streams"  # the cap's name (the OpenAI door's error code)
            raise

    def ear_given(self, held: Held) -> None:
        self.counters.release(held)
        self.ear.give()

    def clip(self, tenant: Tenant) -> Holding:
        """One Translate call of ``tenant`` in the block (``async with``): counted against
        ``max_translate_calls`` and the tenant's caps before its message is read or decoded (else
        RESOURCE_EXHAUSTED)."""
        cap = tenant.caps.translate_calls
        wants = [("translate", self.limits.max_translate_calls), (f"{tenant.name}/translate", _cap(cap))]
        return Holding(self, tenant, wants, budget=True)

    def clip_read(self, tenant: Tenant) -> Holding:
        """An admitted Translate call of ``tenant`` receiving its clip in the block: at most
        ``limits.max_clip_reads_per_tenant`` of them at once on the node (else RESOURCE_EXHAUSTED),
        so a tenant that opens calls and never sends their clip cannot hold every one of
        ``max_translate_calls`` until ``clip_read_timeout_s``."""
        return Holding(self, tenant, [(f"{tenant.name}/clip_reads", self.limits.max_clip_reads_per_tenant)])

    def held_request(self, tenant: Tenant) -> Holding:
        """An HTTP request of ``tenant`` that holds its connection past its head in the block (a
        long poll, an upload's part, a download): at most ``limits.http_max_held_requests_per_tenant``
        at once on the node (else RESOURCE_EXHAUSTED), so one tenant cannot fill the HTTP port's
        connections with them."""
        return Holding(self, tenant, [(f"{tenant.name}/held", self.limits.http_max_held_requests_per_tenant)])

    def job(self, tenant: Tenant) -> Holding:
        """A background job of ``tenant`` running in the block (``jobs/``): one of the tenant's
        ``translate_calls`` while it runs, and refused while its audio budget is spent
        (RESOURCE_EXHAUSTED), as a Translate call is; not the node's ``max_translate_calls``
        (``jobs.max_running`` bounds the jobs of a process)."""
        wants = [(f"{tenant.name}/translate", _cap(tenant.caps.translate_calls))]
        return Holding(self, tenant, wants, budget=True)

    def unary(self, tenant: Tenant, token: bytes | None) -> Holding:
        """One unary call (ListLanguages, TranslateText, the Riva door's) of ``tenant`` and of
        ``token`` (its digest; None: a server without tokens) in the block, counted before its
        request is read: at most ``max_unary_calls_per_tenant`` (or the tenant's ``unary_calls``)
        on the node and ``max_unary_calls_per_token`` in this process (else RESOURCE_EXHAUSTED), so
        calls that never send their request cannot take every call slot of the process."""
        cap = tenant.caps.unary_calls
        wants = [(f"{tenant.name}/unary", cap if cap is not None else self.limits.max_unary_calls_per_tenant)]
        return Holding(self, tenant, wants, token=token)

    def charge_audio(self, tenant: Tenant, seconds: float) -> QuotaSpent | None:
        """Draw ``seconds`` of audio from the tenant's budget (a call in progress: never waits);
        QuotaSpent once it is spent."""
        return tenants_budget.charge(self.counters, tenant, seconds)

    async def take(self, wants: list[tuple[str, int]], tenant: Tenant, *, budget: bool = False) -> Held:
        """``wants`` (RESOURCE_EXHAUSTED naming the full one); ``budget``: a tenant whose audio budget
        is spent is refused too. This process's own counts answer at once, with no coroutine
        between (the single-process path costs no await)."""
        if self._local is not None:
            if budget:
                tenants_budget.check_now(self._local, tenant)
            got = self._local.take(wants)
        else:
            if budget:
                await tenants_budget.check(self.counters, tenant)
            got = await self.counters.acquire(wants)
        if isinstance(got, str):
            raise refusal(got, tenant, wants)
        return got

    def token_taken(self, token: bytes) -> None:
        most = self.limits.max_unary_calls_per_token
        calls = self.token_calls.get(token, 0)
        if calls >= most:
            raise Overloaded(
                f"this token has {most} unary calls in progress on this server process "
                "(limits.max_unary_calls_per_token): send each call's request at once, or retry shortly",
                retry_after_ms=1000,
            )
        self.token_calls[token] = calls + 1

    def token_given(self, token: bytes) -> None:
        left = self.token_calls[token] - 1
        if left:
            self.token_calls[token] = left
        else:
            del self.token_calls[token]


class Admission:
    """Slots taken for one stream (``Gate.stream``): released once, by whoever holds it last (the
    door, the driver, then the session)."""

    def __init__(self, counters: Counters, held: Held) -> None:
        self._counters = counters
        self._held: Held | None = held

    @property
    def held(self) -> bool:
        return self._held is not None

    def take(self) -> Held:
        """The counters' names, for a session that releases them when it closes (once)."""
        if self._held is None:
            raise RuntimeError("this admission was released or handed on already")
        held, self._held = self._held, None
        return held

    def release(self) -> None:
        """Give the slots back (idempotent)."""
        if self._held is not None:
            held, self._held = self._held, None
            self._counters.release(held)


class Holding:
    """One call's counts for the block of an ``async with`` (``Gate.clip``, ``clip_read``,
    ``unary``, ...): taken as it is entered, given back as it is left."""

    __slots__ = ("_budget", "_gate", "_held", "_tenant", "_token", "_wants")

    def __init__(
        self,
        gate: Gate,
        tenant: Tenant,
        wants: list[tuple[str, int]],
        *,
        token: bytes | None = None,
        budget: bool = False,
    ) -> None:
        self._gate = gate
        self._tenant = tenant
        self._wants = wants
        self._token = token
        self._budget = budget
        self._held: Held | None = None

    async def __aenter__(self) -> None:
        if self._token is not None:
            self._gate.token_taken(self._token)
        try:
            self._held = await self._gate.take(self._wants, self._tenant, budget=self._budget)
        except BaseException:
            if self._token is not None:
                self._gate.token_given(self._token)
            raise

    async def __aexit__(self, *exc: object) -> None:
        if self._held is not None:
            self._gate.counters.release(self._held)
            self._held = None
        if self._token is not None:
            self._gate.token_given(self._token)


def _cap(cap: int | None) -> int:
    return cap if cap is not None else UNCAPPED
