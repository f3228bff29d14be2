"""Background jobs in k8s (issue 73, docs/deploy.md "Background jobs"): the gpu-jobs overlay sets
``jobs.dir`` on a ReadWriteMany claim mounted writable by every server pod, beside the overlay's
Redis (``cluster.redis_url``, where the jobs' state and leases are): so a pod that dies mid-job
is resumed by another pod, which reads the job's audio from the shared claim. The other overlays
keep jobs off (no ``jobs.dir``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.helpers import OVERLAYS, env_map, one, render, secret_env, server_container, server_deployment

pytestmark = [pytest.mark.integration, pytest.mark.slow(5)]


def test_the_jobs_overlay_keeps_jobs_on_a_claim_every_pod_shares_and_their_state_in_redis() -> None:
    objs = render("gpu-jobs")
    container = server_container(objs)
    env = env_map(container)
    path = Path(env["TRANSLATE_SVC_JOBS__DIR"])
    assert "TRANSLATE_SVC_CLUSTER__REDIS_URL" in {**env, **secret_env(container)}
    (mount,) = [m for m in container["volumeMounts"] if path.is_relative_to(m["mountPath"]) and m["mountPath"] != "/"]
    assert not mount.get("readOnly"), "jobs.dir must be writable"
    volumes = {v["name"]: v for v in server_deployment(objs)["spec"]["template"]["spec"]["volumes"]}
    claim = volumes[mount["name"]]["persistentVolumeClaim"]["claimName"]
    pvc = one(objs, "PersistentVolumeClaim", claim)
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"], "every pod mounts the jobs' files"


@pytest.mark.parametrize("overlay", [o for o in OVERLAYS if o != "gpu-jobs"])
def test_the_other_overlays_keep_jobs_off(overlay: str) -> None:
    assert "TRANSLATE_SVC_JOBS__DIR" not in env_map(server_container(render(overlay)))
