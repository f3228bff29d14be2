"""A holder of the cluster store in a process of its own (``python -m tests.support.cluster_holder
<kind> <address> <lease_s> <leases>``), so that a test can stop it (SIGSTOP: it stops renewing) or
kill it (SIGKILL) and see what it held go. It takes ``<leases>`` leases on cap ``streams`` (limit
100) and joins group ``room/t/r/listeners`` as member ``far``, writes one JSON line to stdout (its
ready signal), then waits to be stopped."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from translate_svc.cluster.hub_client import HubStore
from translate_svc.cluster.redis_store import RedisStore
from translate_svc.cluster.store import ClusterStore, Lease

CAP = "streams"
GROUP = "room/t/r/listeners"


async def main(kind: str, address: str, lease_s: float, leases: int) -> None:
    store: ClusterStore
    if kind == "hub":
        store = HubStore(Path(address), "far-worker")
    elif kind == "redis":
        store = RedisStore(address, lease_s=lease_s)
    else:
        raise SystemExit(f"no holder of kind {kind!r}")
    await store.start()
    for _ in range(leases):
        assert isinstance(await store.acquire([(CAP, 100)]), Lease)
    await store.join(GROUP, "far", b"spa")
    sys.stdout.write(json.dumps({"ready": True, "count": await store.count(CAP)}) + "\n")
    sys.stdout.flush()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])))
