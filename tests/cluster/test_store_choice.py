"""Which cluster store the settings pick (translate_svc/cluster/choose.py), and the settings it
refuses at start: each refusal says what to fix and never echoes a password."""

from __future__ import annotations

from pathlib import Path

import pytest

from translate_svc.cluster.choose import ClusterConfigError, open_store
from translate_svc.cluster.hub_client import HubStore
from translate_svc.cluster.memory import MemoryStore
from translate_svc.cluster.redis_store import RedisStore
from translate_svc.settings import ClusterSettings, Settings

pytestmark = pytest.mark.unit


def test_one_process_keeps_it_in_memory_and_a_nodes_worker_asks_the_hub() -> None:
    assert isinstance(open_store(ClusterSettings()), MemoryStore)
    store = open_store(ClusterSettings(), hub=Path("/run/node/cluster.sock"), worker="w1")
    assert isinstance(store, HubStore) and store.path == Path("/run/node/cluster.sock") and store.worker == "w1"


def test_a_redis_url_picks_redis_even_on_a_node(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "redis-password"
    secret.write_text("pa55word\n")
    monkeypatch.setenv("TRANSLATE_SVC_CLUSTER__REDIS_URL", "rediss://redis.example:6380/2")
    monkeypatch.setenv("TRANSLATE_SVC_CLUSTER__REDIS_PASSWORD_FILE", str(secret))
    monkeypatch.setenv("TRANSLATE_SVC_CLUSTER__LEASE_S", "9")
    cluster = Settings().cluster
    store = open_store(cluster, hub=Path("/run/node/cluster.sock"), worker="w0")
    assert isinstance(store, RedisStore)
    assert store.url == "rediss://redis.example:6380/2" and store.lease_s == 9
    kwargs = store._client.connection_pool.connection_kwargs
    assert kwargs["password"] == "pa55word" and kwargs["port"] == 6380 and kwargs["db"] == 2


@pytest.mark.parametrize(
    "url",
    ["http://:hunter2@redis:6379", "redis:///nohost", "hunter2", "unix:///tmp/redis.sock?password=hunter2"],
)
def test_a_url_that_is_not_redis_is_refused_without_echoing_it(url: str) -> None:
    with pytest.raises(ClusterConfigError) as refused:
        open_store(ClusterSettings(redis_url=url))
    assert "hunter2" not in str(refused.value)
    assert "redis://host:6379/0" in str(refused.value)


def test_a_password_file_that_cannot_be_read_or_holds_more_than_a_line_is_refused(tmp_path: Path) -> None:
    url = "redis://redis:6379/0"
    with pytest.raises(ClusterConfigError, match=r"redis_password_file .*No such file"):
        open_store(ClusterSettings(redis_url=url, redis_password_file=tmp_path / "missing"))
    two = tmp_path / "two-lines"
    two.write_text("first\nsecond\n")
    with pytest.raises(ClusterConfigError, match="alone on one line") as refused:
        open_store(ClusterSettings(redis_url=url, redis_password_file=two))
    assert "second" not in str(refused.value)
    with pytest.raises(ClusterConfigError, match="redis_url is not"):
        open_store(ClusterSettings(redis_password_file=two))


def test_the_lease_time_is_bounded() -> None:
    with pytest.raises(ValueError, match="lease_s"):
        ClusterSettings(lease_s=0.5)
    assert ClusterSettings().lease_s == 15
