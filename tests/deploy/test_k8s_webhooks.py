"""The webhooks' place in k8s (issue 61, docs/deploy.md "Webhooks and usage"): every overlay's
server container has a writable volume at the path ``webhooks.data_dir`` is documented to take
(the base's emptyDir: a server's restart keeps its queue, a pod's deletion does not), and the
overlays that run several pods set ``cluster.redis_url``, so that their queue is in Redis and a
pod's death loses nothing queued. Before, no volume was mounted there (the root filesystem is
read-only: a data dir set by the operator could not be written)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.helpers import (
    GPU_OVERLAYS,
    OVERLAYS,
    env_map,
    render,
    secret_env,
    server_container,
    server_deployment,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow(5)]

DATA_DIR = Path("/var/lib/translate-svc/webhooks")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_webhooks_data_dir_has_a_writable_volume_and_several_pods_queue_in_redis(overlay: str) -> None:
    objs = render(overlay)
    container = server_container(objs)
    volumes = {v["name"]: v for v in server_deployment(objs)["spec"]["template"]["spec"]["volumes"]}
    path = Path(env_map(container).get("TRANSLATE_SVC_WEBHOOKS__DATA_DIR", str(DATA_DIR)))
    mounts = [m for m in container["volumeMounts"] if path.is_relative_to(m["mountPath"])]
    assert mounts, f"{overlay}: nothing is mounted at {path}"
    (mount,) = [max(mounts, key=lambda m: len(m["mountPath"]))]
    assert mount["mountPath"] != "/" and not mount.get("readOnly"), f"{overlay}: {path} is not writable"
    volume = volumes[mount["name"]]
    assert "emptyDir" in volume or "persistentVolumeClaim" in volume, volume
    if overlay in GPU_OVERLAYS:  # several pods (the HPA's minReplicas 2): one queue in Redis
        assert "TRANSLATE_SVC_CLUSTER__REDIS_URL" in {**env_map(container), **secret_env(container)}
