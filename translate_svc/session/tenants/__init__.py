"""Tenants, one name: who is calling, what they may hold, and the counters that hold them
to it.

A **tenant** is a name from the tokens file (``transport/tokens/``) with its caps, its room rights
and its recording policy; the node's own limits (``max_streams``, ``max_translate_calls``) are
counters of the same kind as a tenant's caps. The modules, one job each, from the top floor down
(a contract in pyproject.toml keeps the floors, and another keeps this package free of drivers,
rooms and doors):

- ``leases.py``: ``StoreCounters``, the counters as leases in the cluster store (a node's workers,
  several pods), and what a lost cluster store costs;
- ``budget.py``: a tenant's audio seconds per minute: the check as a call opens (``QuotaRefused``)
  and the charge while it runs (``QuotaSpent``);
- ``counters.py``: the ``Counters`` Protocol, ``LocalCounters`` (one process), ``Held``, and the
  refusal of a full counter;
- ``tenant.py``: ``Tenant``, ``TenantCaps``, ``RoomRights`` and the defaults (pure values).

The package exports the tenant's types; the counters are imported from their modules.
"""

from translate_svc.session.tenants.tenant import (
    ALL_ROOMS,
    DEFAULT_TENANT,
    NO_ROOMS,
    TENANT_NAME,
    RoomRights,
    Tenant,
    TenantCaps,
)

__all__ = ["ALL_ROOMS", "DEFAULT_TENANT", "NO_ROOMS", "TENANT_NAME", "RoomRights", "Tenant", "TenantCaps"]
