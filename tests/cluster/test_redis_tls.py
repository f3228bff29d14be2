"""``rediss://``: the cluster store over TLS to a real redis-server that speaks TLS only (its
certificate from a trustme CA), and a store that does not trust that CA is refused at start."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import trustme

from tests.support.redis_server import redis_server
from translate_svc.cluster.redis_store import RedisStore
from translate_svc.cluster.store import Lease, StoreUnavailable

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


async def test_rediss_works_with_the_servers_ca_and_is_refused_without_it(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    chain, key, ca_file = tmp_path / "chain.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(chain))
    cert.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    with redis_server(tls=(chain, key)) as server:
        assert server.url.startswith("rediss://")
        store = RedisStore(f"{server.url}?ssl_ca_certs={ca_file}", lease_s=2)
        await store.start()
        lease = await store.acquire([("streams", 1)])
        assert isinstance(lease, Lease)
        assert await store.count("streams") == 1
        await store.close()
        untrusting = RedisStore(server.url, op_timeout_s=2)  # the system's CAs: not this one
        with pytest.raises(StoreUnavailable, match=re.escape(f"cannot reach Redis at {server.url}")):
            await untrusting.start()
        await untrusting.close()
