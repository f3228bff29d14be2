"""The Kubernetes manifests: every overlay renders, validates against the Kubernetes schemas, and
keeps the invariants the server depends on (docs/deploy.md).

Rendering needs `kubectl kustomize`; without kubectl on PATH these tests skip and say so.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.deploy.helpers import (
    ENV_PREFIX,
    GPU_OVERLAYS,
    NAMESPACE,
    OVERLAYS,
    REDIS,
    REPO,
    SERVER_LABELS,
    Obj,
    all_containers,
    cpu_cores,
    env_map,
    image_reference_problem,
    objects,
    one,
    parse_dockerfile,
    pod_specs,
    port_number,
    render,
    secret_env,
    selects,
    server_container,
    server_deployment,
)
from tests.support.signals import default_signals
from translate_svc.cli import ready_file as ready

pytestmark = [pytest.mark.integration, pytest.mark.slow(20)]  # seconds, for the schedule (conftest.py)

#: Kubernetes versions the rendered objects are validated against: the oldest we support and the
#: newest kubernetes-validate knows.
K8S_VERSIONS = ("1.30.0", "latest")

#: Custom resources, not in the Kubernetes schemas: skipped by kind in the schema check, and that
#: skipped set must be exactly this (a CRD appearing or vanishing is a deliberate change).
CRD_KINDS = {
    "gpu": {"PodMonitor"},
    "gpu-external-redis": {"PodMonitor"},
    "gpu-recordings": {"PodMonitor"},
    "gpu-jobs": {"PodMonitor"},
    "cpu-dev": set(),
}

#: Objects the manifests reference but do not create: the operator creates them (docs/deploy.md
#: gives the commands). Secrets with keys never go into git, and a placeholder Secret would
#: overwrite the real one on every `kubectl apply`.
CLIENT_SECRET_KEY = ("Secret", "translate-svc-client-secret-key")
OPERATOR_CREATED = {
    "gpu": {("Secret", "translate-svc-tls"), ("Secret", "translate-svc-tokens"), CLIENT_SECRET_KEY, ("Secret", REDIS)},
    "gpu-external-redis": {
        ("Secret", "translate-svc-tls"),
        ("Secret", "translate-svc-tokens"),
        CLIENT_SECRET_KEY,
        ("Secret", REDIS),
    },
    "gpu-recordings": {
        ("Secret", "translate-svc-tls"),
        ("Secret", "translate-svc-tokens"),
        CLIENT_SECRET_KEY,
        ("Secret", REDIS),
        ("Secret", "translate-svc-recording-keys"),
    },
    "gpu-jobs": {
        ("Secret", "translate-svc-tls"),
        ("Secret", "translate-svc-tokens"),
        CLIENT_SECRET_KEY,
        ("Secret", REDIS),
    },
    "cpu-dev": {CLIENT_SECRET_KEY},
}

#: Settings that arrive with the TLS/auth work: allowed in the gpu overlay's tls-auth.yaml patch only.
FUTURE_SETTINGS = {
    "TRANSLATE_SVC_SERVER__TLS_CERT_FILE",
    "TRANSLATE_SVC_SERVER__TLS_KEY_FILE",
    "TRANSLATE_SVC_SERVER__TLS_CLIENT_CA_FILE",
    "TRANSLATE_SVC_SERVER__HEALTH_PORT",
    "TRANSLATE_SVC_AUTH__TOKENS_FILE",
}
#: The cluster seam's settings (issue 59: ``cluster.redis_url``, ``cluster.redis_password_file``),
#: built beside the manifests that set them: allowed in the gpu overlays until they exist.
CLUSTER_SETTINGS = {"TRANSLATE_SVC_CLUSTER__REDIS_URL", "TRANSLATE_SVC_CLUSTER__REDIS_PASSWORD_FILE"}

#: The NetworkPolicies beside the server's own (k8s/base/networkpolicy.yaml): the gpu overlay's
#: Redis's, and the server pods' egress to Redis (k8s/overlays/gpu/redis.yaml).
OTHER_POLICIES = {
    "gpu": {REDIS, "translate-svc-to-redis"},
    "gpu-external-redis": {"translate-svc-to-redis"},
    "gpu-recordings": {REDIS, "translate-svc-to-redis"},
    "gpu-jobs": {REDIS, "translate-svc-to-redis"},
    "cpu-dev": set(),
}

#: Loading SeamlessM4T v2 large and its warm-up batch on a GPU node takes minutes (reading ~10 GB of
#: weights from a network volume dominates; not measured here): the startup probe allows 10.
STARTUP_BUDGET_S = 600

#: After the gRPC grace period, the model thread still finishes the batch it is running. Budget:
#: one longest segment (vad.max_segment_ms) processed at real time (factor 1.0); a server slower
#: than real time cannot serve live streams at all, so this bounds a healthy server's last batch.
SEGMENT_REAL_TIME_FACTOR = 1.0

MIN_PRESTOP_S = 5  # time for endpoint removal to reach kube-proxy and client-side DNS resolvers


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return request.param


def _server_env(objs: list[Obj]) -> dict[str, str]:
    return env_map(server_container(objs))


def _health_port(objs: list[Obj]) -> int:
    """The port the server's grpc.health.v1 listens on, from the settings the container gets."""
    from translate_svc.settings import ServerSettings

    env = _server_env(objs)
    if "TRANSLATE_SVC_SERVER__HEALTH_PORT" in env:  # the TLS/auth work's plaintext health port
        return int(env["TRANSLATE_SVC_SERVER__HEALTH_PORT"])
    # today: health, Translator and reflection share the one gRPC port
    return int(env.get("TRANSLATE_SVC_SERVER__PORT", ServerSettings().port))


def _effective_min_replicas(objs: list[Obj]) -> int:
    dep = server_deployment(objs)
    hpas = [
        h
        for h in objects(objs, "HorizontalPodAutoscaler")
        if h["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "translate-svc"}
    ]
    if hpas:
        assert "replicas" not in dep["spec"], "with an HPA, spec.replicas would fight it on every apply"
        return int(hpas[0]["spec"].get("minReplicas", 1))
    return int(dep["spec"].get("replicas", 1))


def _pod_labels(objs: list[Obj]) -> dict[str, str]:
    return server_deployment(objs)["spec"]["template"]["metadata"]["labels"]


# ------------------------------------------------------------------------------------ render, schema


def test_overlays_render(overlay: str) -> None:
    objs = render(overlay)
    kinds = {o["kind"] for o in objs}
    assert {"Namespace", "Deployment", "Service", "NetworkPolicy", "ServiceAccount"} <= kinds
    for o in objs:
        assert o.get("apiVersion") and o["metadata"].get("name"), f"incomplete object: {o}"
        if o["kind"] != "Namespace":
            assert o["metadata"].get("namespace") == NAMESPACE, f"{o['kind']}/{o['metadata']['name']}: namespace"
    ns = one(objs, "Namespace", NAMESPACE)
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_base_renders() -> None:
    assert server_deployment(render("base"))


def test_objects_validate_against_kubernetes_schemas(overlay: str) -> None:
    import kubernetes_validate

    objs = render(overlay)
    skipped: set[str] = set()
    for version in K8S_VERSIONS:
        v = kubernetes_validate.latest_version() if version == "latest" else version
        for o in objs:
            if o["kind"] in CRD_KINDS[overlay]:
                skipped.add(o["kind"])
                continue
            try:
                kubernetes_validate.validate(o, v, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                pytest.fail(f"{overlay}: {o['kind']}/{o['metadata']['name']} invalid for {v}: {path}: {e.message}")
            except kubernetes_validate.SchemaNotFoundError as e:
                pytest.fail(f"{overlay}: no schema, and not a listed CRD: {e.message}")
    assert skipped == CRD_KINDS[overlay], f"{overlay}: skipped CRD kinds {skipped}, expected {CRD_KINDS[overlay]}"


def test_podmonitor_shape() -> None:
    """The one CRD the schema check skips: its fields checked by hand."""
    objs = render("gpu")
    pm = one(objs, "PodMonitor", "translate-svc")
    assert pm["apiVersion"] == "monitoring.coreos.com/v1"
    assert selects(pm["spec"]["selector"], _pod_labels(objs))
    (endpoint,) = pm["spec"]["podMetricsEndpoints"]
    assert endpoint.get("path", "/metrics") == "/metrics"
    metrics_port = int(_server_env(objs)["TRANSLATE_SVC_SERVER__METRICS_PORT"])
    assert port_number(server_container(objs), endpoint["port"]) == metrics_port, "scrapes a port /metrics is not on"


# ------------------------------------------------------------------------------------------ policy


def test_probes_are_grpc_on_the_health_port(overlay: str) -> None:
    from translate_svc.transport.grpc.servicer import SERVICE_NAME

    objs = render(overlay)
    container = server_container(objs)
    health = _health_port(objs)
    declared = {int(p["containerPort"]) for p in container["ports"]}
    assert health in declared, f"{overlay}: the health port {health} is not a container port"
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = container.get(kind)
        assert probe, f"{overlay}: no {kind}"
        assert set(probe) & {"exec", "httpGet", "tcpSocket", "grpc"} == {"grpc"}, f"{overlay}: {kind} is not gRPC"
        assert probe["grpc"]["port"] == health, f"{overlay}: {kind} probes {probe['grpc']['port']}, health is {health}"
        service = probe["grpc"].get("service", "")
        assert service in ("", SERVICE_NAME), f"{overlay}: {kind} asks about unknown service {service!r}"
        if kind != "livenessProbe":  # ready means the Translator itself serves
            assert service == SERVICE_NAME, f"{overlay}: {kind} should ask about {SERVICE_NAME}"
    startup = container["startupProbe"]
    budget = startup.get("initialDelaySeconds", 0) + startup.get("periodSeconds", 10) * startup.get(
        "failureThreshold", 3
    )
    assert budget >= STARTUP_BUDGET_S, f"{overlay}: the startup probe allows {budget} s < {STARTUP_BUDGET_S} s"


def test_termination_grace_covers_prestop_drain_and_last_segment(overlay: str) -> None:
    from translate_svc.session.rooms.registry import CLOSE_S as ROOMS_CLOSE_S
    from translate_svc.settings import ServerSettings
    from translate_svc.vad.segmenter import SegmenterConfig

    objs = render(overlay)
    spec = server_deployment(objs)["spec"]["template"]["spec"]
    container = server_container(objs)
    env = _server_env(objs)
    grace_s = float(env.get("TRANSLATE_SVC_SERVER__GRACE_S", ServerSettings().grace_s))
    segment_ms = int(env.get("TRANSLATE_SVC_VAD__MAX_SEGMENT_MS", SegmenterConfig().max_segment_ms))
    segment_s = segment_ms / 1000 * SEGMENT_REAL_TIME_FACTOR
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep" and len(command) == 2, f"{overlay}: preStop is not a plain sleep: {command}"
    prestop_s = float(command[1])
    assert prestop_s >= MIN_PRESTOP_S, f"{overlay}: preStop sleeps {prestop_s} s, too short for endpoint removal"
    tgps = spec["terminationGracePeriodSeconds"]
    needed = prestop_s + grace_s + segment_s + ROOMS_CLOSE_S  # then the rooms' owed store calls
    assert tgps > needed, (
        f"{overlay}: terminationGracePeriodSeconds {tgps} <= preStop + grace + segment + rooms' close = {needed}"
    )


def test_rolling_update_fits_a_full_gpu_pool(overlay: str) -> None:
    strategy = server_deployment(render(overlay))["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    ru = strategy["rollingUpdate"]
    assert ru["maxSurge"] in (0, "0%"), f"{overlay}: maxSurge {ru['maxSurge']}: a surge pod waits for a free GPU"
    assert ru["maxUnavailable"] == 1, f"{overlay}: maxUnavailable {ru['maxUnavailable']}"


def test_pdb_fits_the_replicas(overlay: str) -> None:
    objs = render(overlay)
    replicas = _effective_min_replicas(objs)
    pdbs = objects(objs, "PodDisruptionBudget")
    if overlay in GPU_OVERLAYS:
        assert replicas >= 2, f"{overlay}: fewer than 2 replicas; a drain or rollout would leave no serving pod"
        assert pdbs, f"{overlay}: no PodDisruptionBudget"
    if overlay == "cpu-dev":
        assert replicas == 1 and not pdbs, "cpu-dev: one replica and no PDB (it would block drains or do nothing)"
    for pdb in pdbs:
        spec = pdb["spec"]
        assert selects(spec["selector"], _pod_labels(objs)), f"{overlay}: the PDB does not select the server pods"
        assert ("maxUnavailable" in spec) != ("minAvailable" in spec)
        if "maxUnavailable" in spec:
            mu = spec["maxUnavailable"]
            assert isinstance(mu, int), f"{overlay}: use a pod count, not {mu!r}"
            assert mu >= 1, f"{overlay}: maxUnavailable {mu} blocks every drain"
            assert replicas - mu >= 1, f"{overlay}: {replicas} replicas - maxUnavailable {mu} leaves none serving"
        else:
            ma = spec["minAvailable"]
            assert isinstance(ma, int) and 1 <= ma < replicas, f"{overlay}: minAvailable {ma} vs {replicas} replicas"


def _server_services(objs: list[Obj]) -> list[Obj]:
    """The server's Services (labelled with its name; the gpu overlay's Redis has its own)."""
    return [s for s in objects(objs, "Service") if s["metadata"]["labels"]["app.kubernetes.io/name"] == "translate-svc"]


def test_headless_and_regular_service_select_the_server(overlay: str) -> None:
    objs = render(overlay)
    labels = _pod_labels(objs)
    container = server_container(objs)
    grpc_port = int(_server_env(objs).get("TRANSLATE_SVC_SERVER__PORT", 50051))
    services = _server_services(objs)
    assert {s["metadata"]["name"] for s in services} == {"translate-svc", "translate-svc-headless"}
    headless = [s for s in services if s["spec"].get("clusterIP") == "None"]
    regular = [s for s in services if s["spec"].get("clusterIP") != "None"]
    assert [s["metadata"]["name"] for s in headless] == ["translate-svc-headless"], f"{overlay}: headless Service"
    assert regular, f"{overlay}: no regular Service"
    for svc in services:
        name = svc["metadata"]["name"]
        assert selects(svc["spec"]["selector"], labels), f"{overlay}: Service {name} does not select the server pods"
        ports = svc["spec"]["ports"]
        grpc = [p for p in ports if p["name"] == "grpc"]
        assert len(grpc) == 1, f"{overlay}: Service {name} has no grpc port"
        assert port_number(container, grpc[0].get("targetPort", grpc[0]["port"])) == grpc_port
        assert grpc[0]["port"] == grpc_port  # dns:///translate-svc-headless.translate-svc.svc:50051
    assert headless[0]["spec"].get("publishNotReadyAddresses", False) is False


def test_hpa_scales_on_a_metric_the_server_exports() -> None:
    from prometheus_client import Gauge

    from translate_svc.observability import metrics

    gauges = {m.name for obj in vars(metrics).values() if isinstance(obj, Gauge) for m in obj.describe()}
    assert gauges, "translate_svc.observability.metrics exports no gauges"
    objs = render("gpu")
    hpa = one(objs, "HorizontalPodAutoscaler", "translate-svc")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "translate-svc"}
    assert hpa["spec"]["minReplicas"] >= 2
    assert hpa["spec"]["maxReplicas"] >= hpa["spec"]["minReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods", "per-pod custom metric through prometheus-adapter"
    name = metric["pods"]["metric"]["name"]
    assert name in gauges, f"the HPA scales on {name!r}; the server's gauges are {sorted(gauges)}"
    assert metric["pods"]["target"]["type"] == "AverageValue"
    assert float(metric["pods"]["target"]["averageValue"]) > 0
    assert not objects(render("cpu-dev"), "HorizontalPodAutoscaler")


def test_security_context_is_restricted(overlay: str) -> None:
    objs = render(overlay)
    specs = list(pod_specs(objs))
    assert specs
    for owner, _, spec in specs:
        where = f"{overlay}: {owner['kind']}/{owner['metadata']['name']}"
        pod_sc = spec.get("securityContext", {})
        assert pod_sc.get("runAsNonRoot") is True, f"{where}: runAsNonRoot"
        assert pod_sc.get("runAsUser", 0) != 0, f"{where}: runAsUser must be a non-root UID"
        assert spec.get("automountServiceAccountToken") is False, f"{where}: mounts an API token"
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(key), f"{where}: {key}"
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for v in volumes.values():
            assert "hostPath" not in v, f"{where}: hostPath volume {v['name']}"
        for c in all_containers(spec):
            csc = c.get("securityContext", {})
            cw = f"{where} container {c['name']}"
            assert csc.get("allowPrivilegeEscalation") is False, f"{cw}: allowPrivilegeEscalation"
            assert csc.get("readOnlyRootFilesystem") is True, f"{cw}: readOnlyRootFilesystem"
            assert not csc.get("privileged"), f"{cw}: privileged"
            assert "ALL" in csc.get("capabilities", {}).get("drop", []), f"{cw}: capabilities not dropped"
            assert not csc.get("capabilities", {}).get("add"), f"{cw}: adds capabilities"
            assert csc.get("runAsUser", 1) != 0 and csc.get("runAsNonRoot", True) is True, f"{cw}: root"
            seccomp = csc.get("seccompProfile", pod_sc.get("seccompProfile", {}))
            assert seccomp.get("type") == "RuntimeDefault", f"{cw}: seccomp"
            tmp = [m for m in c.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
            assert tmp and "emptyDir" in volumes[tmp[0]["name"]], f"{cw}: /tmp is not an emptyDir"


def test_images_are_tagged_and_not_latest(overlay: str) -> None:
    for owner, _, spec in pod_specs(render(overlay)):
        for c in all_containers(spec):
            problem = image_reference_problem(c["image"])
            assert problem is None, f"{overlay}: {owner['kind']} container {c['name']}: {c['image']} {problem}"


def test_every_referenced_secret_and_claim_is_defined_or_documented(overlay: str) -> None:
    objs = render(overlay)
    referenced: set[tuple[str, str]] = set()
    for _, _, spec in pod_specs(objs):
        for v in spec.get("volumes", []):
            if "secret" in v:
                referenced.add(("Secret", v["secret"]["secretName"]))
            if "persistentVolumeClaim" in v:
                referenced.add(("PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"]))
            for src in v.get("projected", {}).get("sources", []):
                if "secret" in src:
                    referenced.add(("Secret", src["secret"]["name"]))
        referenced |= {("Secret", s["name"]) for s in spec.get("imagePullSecrets", [])}
        for c in all_containers(spec):
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    referenced.add(("Secret", ref["name"]))
            referenced |= {("Secret", s["secretRef"]["name"]) for s in c.get("envFrom", []) if "secretRef" in s}
    defined = {(o["kind"], o["metadata"]["name"]) for o in objs if o["kind"] in ("Secret", "PersistentVolumeClaim")}
    missing = referenced - defined
    assert missing == OPERATOR_CREATED[overlay], f"{overlay}: referenced but not defined: {sorted(missing)}"
    guide = (REPO / "docs" / "deploy.md").read_text()
    for kind, name in missing:
        assert kind == "Secret"
        creates = [ln for ln in guide.splitlines() if "create secret" in ln and name in ln]
        assert creates, f"docs/deploy.md gives no `kubectl create secret ... {name}` command"
    for kind, name in defined - referenced:
        pytest.fail(f"{overlay}: {kind}/{name} is defined but nothing uses it")


def test_gpu_scheduling() -> None:
    objs = render("gpu")
    spec = server_deployment(objs)["spec"]["template"]["spec"]
    container = server_container(objs)
    assert str(container["resources"]["limits"]["nvidia.com/gpu"]) == "1"
    assert any(
        t["key"] == "nvidia.com/gpu" and t["effect"] == "NoSchedule" and t.get("operator") in ("Exists", "Equal")
        for t in spec.get("tolerations", [])
    ), "no toleration for the nvidia.com/gpu NoSchedule taint"
    selector_keys = set(spec.get("nodeSelector", {}))
    for term in (
        spec.get("affinity", {})
        .get("nodeAffinity", {})
        .get("requiredDuringSchedulingIgnoredDuringExecution", {})
        .get("nodeSelectorTerms", [])
    ):
        selector_keys |= {e["key"] for e in term.get("matchExpressions", [])}
    assert any(k.startswith("nvidia.com/") for k in selector_keys), "no GPU node selector or node affinity"
    assert _server_env(objs)["TRANSLATE_SVC_MODEL__DEVICE"] == "cuda"


def test_cpu_dev_has_no_gpu() -> None:
    objs = render("cpu-dev")
    for _, _, spec in pod_specs(objs):
        assert not any(t.get("key") == "nvidia.com/gpu" for t in spec.get("tolerations", []))
        for c in all_containers(spec):
            for section in ("limits", "requests"):
                assert "nvidia.com/gpu" not in c.get("resources", {}).get(section, {})
    assert _server_env(objs)["TRANSLATE_SVC_MODEL__DEVICE"] == "cpu"


def test_model_threads_leave_a_core_for_the_event_loop(overlay: str) -> None:
    objs = render(overlay)
    container = server_container(objs)
    threads = int(_server_env(objs)["TRANSLATE_SVC_MODEL__CPU_THREADS"])
    cores = cpu_cores(container["resources"]["requests"]["cpu"])
    assert threads <= cores - 1, f"{overlay}: {threads} model threads on {cores} requested cores"


def test_the_gpu_pod_runs_its_front_end_workers_on_its_cpu_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """workers = the CPU request less the engine process's two cores, from the downward API."""
    from translate_svc.settings import Settings

    objs = render("gpu")
    env = _server_env(objs)
    cores = cpu_cores(server_container(objs)["resources"]["requests"]["cpu"])
    assert env["TRANSLATE_SVC_SERVER__WORKERS"] == "auto" and int(env["TRANSLATE_SVC_SERVER__CPUS"]) == cores
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert Settings().server.worker_count() == cores - 2 >= 2


def _parse_cli(argv: list[str]) -> dict:
    """Parse a container command against the real CLI (translate_svc/cli/) without running it."""
    import typer.main

    from translate_svc.cli import app

    assert argv[0] == "translate-svc", f"not the project's console script: {argv}"
    group = typer.main.get_command(app)
    command = group.commands.get(argv[1])  # type: ignore[attr-defined]
    assert command is not None, f"translate-svc has no command {argv[1]!r}"
    return command.make_context(argv[1], list(argv[2:])).params


def test_model_volume_is_read_only_and_filled_by_the_cli(overlay: str) -> None:
    objs = render(overlay)
    container = server_container(objs)
    spec = server_deployment(objs)["spec"]["template"]["spec"]
    assert "command" not in container and "args" not in container, "the image's ENTRYPOINT `translate-svc serve` runs"
    model_path = Path(_server_env(objs)["TRANSLATE_SVC_MODEL__PATH"])
    mounts = [m for m in container["volumeMounts"] if model_path.is_relative_to(m["mountPath"])]
    assert len(mounts) == 1, f"{overlay}: {model_path} is not on exactly one mounted volume"
    mount = mounts[0]
    assert mount.get("readOnly") is True, f"{overlay}: the server mounts the weights read-write"
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])

    if overlay in GPU_OVERLAYS:
        claim = volume["persistentVolumeClaim"]
        assert claim.get("readOnly") is True
        pvc = one(objs, "PersistentVolumeClaim", claim["claimName"])
        assert "ReadOnlyMany" in pvc["spec"]["accessModes"]
        # the download Job: the real CLI command, writing where the server reads
        job = one(objs, "Job", "translate-svc-model-download")
        jspec = job["spec"]["template"]["spec"]
        (jc,) = jspec["containers"]
        params = _parse_cli(jc["command"] + jc.get("args", []))
        assert jc["command"][1] == "download-model"
        jvol = next(
            v for v in jspec["volumes"] if v.get("persistentVolumeClaim", {}).get("claimName") == claim["claimName"]
        )
        jmount = next(m for m in jc["volumeMounts"] if m["name"] == jvol["name"])
        assert not jmount.get("readOnly") and not jvol["persistentVolumeClaim"].get("readOnly"), "the Job must write"
        written = Path(params["directory"])
        assert written.is_relative_to(jmount["mountPath"])
        assert written.relative_to(jmount["mountPath"]) == model_path.relative_to(mount["mountPath"]), (
            f"the Job writes {written}, the server reads {model_path}"
        )
        # the language identifier (issue 57): fetched by the same Job where the server looks for it
        lid_path = Path(_server_env(objs)["TRANSLATE_SVC_MODEL__LID_PATH"])
        assert params["lid_dir"] is not None, "the Job does not fetch the language identifier"
        lid_written = Path(params["lid_dir"])
        assert lid_written.relative_to(jmount["mountPath"]) == lid_path.relative_to(mount["mountPath"]), (
            f"the Job writes the language identifier to {lid_written}, the server reads {lid_path}"
        )
        assert not selects(server_deployment(objs)["spec"]["selector"], job["spec"]["template"]["metadata"]["labels"])
    else:
        # cpu-dev: the test checkpoint, built by an init container into the pod's emptyDir
        assert "emptyDir" in volume
        (init,) = spec["initContainers"]
        params = _parse_cli(init["command"] + init.get("args", []))
        assert init["command"][1] == "make-test-model"
        imount = next(m for m in init["volumeMounts"] if m["name"] == mount["name"])
        assert not imount.get("readOnly")
        assert Path(params["directory"]) == model_path


def test_only_the_server_pods_are_selected(overlay: str) -> None:
    """Services, PDB, NetworkPolicies and PodMonitor select the server pods, never the download
    Job's; those of the gpu overlay's Redis select its pod alone."""
    objs = render(overlay)
    server = _pod_labels(objs)
    assert server == SERVER_LABELS
    workloads = {
        f"{owner['kind']}/{owner['metadata']['name']}": meta.get("labels", {}) for owner, meta, _ in pod_specs(objs)
    }
    selectors = [(f"Service/{s['metadata']['name']}", s["spec"]["selector"]) for s in objects(objs, "Service")]
    selectors += [(f"PDB/{p['metadata']['name']}", p["spec"]["selector"]) for p in objects(objs, "PodDisruptionBudget")]
    selectors += [
        (f"NetworkPolicy/{n['metadata']['name']}", n["spec"]["podSelector"]) for n in objects(objs, "NetworkPolicy")
    ]
    selectors += [(f"PodMonitor/{m['metadata']['name']}", m["spec"]["selector"]) for m in objects(objs, "PodMonitor")]
    redis_objects = {f"Service/{REDIS}", f"NetworkPolicy/{REDIS}"}
    for name, sel in selectors:
        chosen = sorted(w for w, labels in workloads.items() if selects(sel, labels))
        wanted = [f"Deployment/{REDIS}"] if name in redis_objects else ["Deployment/translate-svc"]
        assert chosen == wanted, f"{overlay}: {name} selects {chosen}, not {wanted}"


def test_network_policy_admits_only_clients_and_monitoring(overlay: str) -> None:
    objs = render(overlay)
    container = server_container(objs)
    env = _server_env(objs)
    grpc_port = int(env["TRANSLATE_SVC_SERVER__PORT"])
    http_port = int(env["TRANSLATE_SVC_SERVER__HTTP_PORT"])
    metrics_port = int(env["TRANSLATE_SVC_SERVER__METRICS_PORT"])
    policy = one(objs, "NetworkPolicy", "translate-svc")
    assert "Ingress" in policy["spec"]["policyTypes"]
    # no egress of its own: the server calls nothing, and its media parsers must not be able to
    # (the gpu overlays add one policy for their Redis: test_the_server_pods_may_call_dns_and_redis_only)
    assert "Egress" in policy["spec"]["policyTypes"] and policy["spec"].get("egress") in ([], None)
    others = {n["metadata"]["name"] for n in objects(objs, "NetworkPolicy")} - {"translate-svc"}
    assert others == OTHER_POLICIES[overlay], f"{overlay}: NetworkPolicies {others}"
    admitted: dict[tuple[tuple[str, str], ...], set[int]] = {}
    for rule in policy["spec"]["ingress"]:
        assert rule.get("from") and rule.get("ports"), f"{overlay}: a rule admits every source or every port"
        ports = {port_number(container, p["port"]) for p in rule["ports"]}
        for peer in rule["from"]:
            assert set(peer) == {"namespaceSelector"}, f"{overlay}: unexpected peer {peer}"
            key = tuple(sorted(peer["namespaceSelector"]["matchLabels"].items()))
            admitted.setdefault(key, set()).update(ports)
    assert admitted == {
        (("translate-svc/client", "true"),): {grpc_port, http_port},
        (("kubernetes.io/metadata.name", "monitoring"),): {metrics_port},
    }, f"{overlay}: {admitted}"


def test_env_names_real_settings(overlay: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every TRANSLATE_SVC_* variable is a setting that exists (or is listed as arriving with the
    TLS/auth work or the cluster seam, gpu overlays only), and the values parse into the intended
    Settings (those from a Secret are not known here: their names are checked)."""
    from pydantic import BaseModel

    from translate_svc.settings import Settings

    objs = render(overlay)
    for _, _, spec in pod_specs(objs):
        for c in all_containers(spec):
            env: dict[str, str | None] = {k: v for k, v in env_map(c).items() if k.startswith(ENV_PREFIX)}
            env |= {k: None for k in secret_env(c) if k.startswith(ENV_PREFIX)}
            known: dict[str, str] = {}
            for name, value in env.items():
                section, sep, fld = name[len(ENV_PREFIX) :].lower().partition("__")
                top = Settings.model_fields.get(section)
                if sep and top is not None and isinstance(top.annotation, type):
                    exists = issubclass(top.annotation, BaseModel) and fld in top.annotation.model_fields
                else:
                    exists = not sep and top is not None
                if exists:
                    if value is not None:
                        known[name] = value
                else:
                    assert name in FUTURE_SETTINGS | CLUSTER_SETTINGS, (
                        f"{overlay}: {c['name']}: {name} is not a setting"
                    )
                    assert overlay in GPU_OVERLAYS, f"{overlay}: {name} belongs to the gpu overlays"
            for k in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
                monkeypatch.delenv(k)
            for k, v in known.items():
                monkeypatch.setenv(k, v)
            settings = Settings()  # raises if a value does not validate
            for name, value in known.items():
                section, _, fld = name[len(ENV_PREFIX) :].lower().partition("__")
                got = getattr(getattr(settings, section), fld) if fld else getattr(settings, section)
                assert got == type(got)(value), f"{overlay}: {name}={value} parsed as {got!r}"


def test_tls_and_tokens_mount_read_only_files() -> None:
    objs = render("gpu")
    container = server_container(objs)
    env = _server_env(objs)
    spec = server_deployment(objs)["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    for name in FUTURE_SETTINGS - {"TRANSLATE_SVC_SERVER__HEALTH_PORT"}:
        path = Path(env[name])
        (mount,) = [m for m in container["volumeMounts"] if path.is_relative_to(m["mountPath"])]
        assert mount.get("readOnly") is True, f"{name}: {mount['mountPath']} is writable"
        assert "secret" in volumes[mount["name"]], f"{name}: {path} is not on a Secret volume"
    tls = volumes[next(m["name"] for m in container["volumeMounts"] if m["mountPath"] == "/etc/translate-svc/tls")]
    assert tls["secret"]["secretName"] == "translate-svc-tls"
    # the TLS patch moves the probes to a plaintext port that is not the TLS port
    assert _health_port(objs) != int(env["TRANSLATE_SVC_SERVER__PORT"])


# ------------------------------------------------------------------------ several pods (issue 59)


def test_every_service_and_the_server_container_expose_the_http_port(overlay: str) -> None:
    """The HTTP port (the OpenAI-compatible door, phone calls, rooms' WebSocket and page, REST audio)
    is a named container port and a port of every server Service, the headless one included."""
    objs = render(overlay)
    container = server_container(objs)
    http_port = int(_server_env(objs)["TRANSLATE_SVC_SERVER__HTTP_PORT"])
    assert port_number(container, "http") == http_port, f"{overlay}: the container port `http` is not the HTTP port"
    services = _server_services(objs)
    assert any(s["spec"].get("clusterIP") == "None" for s in services)
    for svc in services:
        name = svc["metadata"]["name"]
        http = [p for p in svc["spec"]["ports"] if p["name"] == "http"]
        assert len(http) == 1, f"{overlay}: Service {name} has no http port"
        assert port_number(container, http[0].get("targetPort", http[0]["port"])) == http_port, name
        assert http[0]["port"] == http_port and http[0].get("protocol", "TCP") == "TCP", name


def test_every_server_pod_gets_the_client_secret_key_from_one_secret(overlay: str) -> None:
    """``auth.client_secret_key`` from the same Secret on every server pod (every overlay), so a
    client secret minted on one pod is taken by another (test_client_secret_key_across_pods.py)."""
    from translate_svc.settings import AuthSettings

    assert "client_secret_key" in AuthSettings.model_fields
    objs = render(overlay)
    from_secrets = secret_env(server_container(objs))
    assert from_secrets.get("TRANSLATE_SVC_AUTH__CLIENT_SECRET_KEY") == (CLIENT_SECRET_KEY[1], "client_secret_key"), (
        f"{overlay}: {from_secrets}"
    )
    guide = (REPO / "docs" / "deploy.md").read_text()
    creates = [ln for ln in guide.splitlines() if "create secret" in ln and CLIENT_SECRET_KEY[1] in ln]
    assert creates and all("--from-literal=client_secret_key=" in ln for ln in creates), creates


def _secret_file(objs: list[Obj], path: str) -> tuple[str, str]:
    """The (Secret, key) a file of the server container comes from: a read-only Secret mount."""
    container = server_container(objs)
    spec = server_deployment(objs)["spec"]["template"]["spec"]
    (mount,) = [m for m in container["volumeMounts"] if Path(path).is_relative_to(m["mountPath"])]
    assert mount.get("readOnly") is True, f"{path}: {mount['mountPath']} is writable"
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    assert "secret" in volume, f"{path} is not on a Secret volume"
    relative = str(Path(path).relative_to(mount["mountPath"]))
    items = {i["path"]: i["key"] for i in volume["secret"].get("items", [])}
    return volume["secret"]["secretName"], items.get(relative, relative)


def _byte_size(quantity: str) -> int:
    """A Kubernetes memory quantity (Mi, Gi) or a Redis one (mb, gb: Redis's 1024-based units)."""
    units = {"Mi": 2**20, "Gi": 2**30, "mb": 2**20, "gb": 2**30}
    number, unit = re.fullmatch(r"(\d+)([A-Za-z]+)", quantity).groups()  # type: ignore[union-attr]
    return int(number) * units[unit]


def test_the_gpu_overlay_runs_a_small_redis_that_only_the_server_pods_reach() -> None:
    objs = render("gpu")
    deployment = one(objs, "Deployment", REDIS)
    assert deployment["spec"].get("replicas", 1) == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate", "two Redis pods at once would split the state"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    (redis,) = deployment["spec"]["template"]["spec"]["containers"]
    assert re.fullmatch(r"redis:7(\.\d+)*(@sha256:[0-9a-f]{64})?", redis["image"]), redis["image"]
    argv = [*redis["command"], *redis["args"]]
    assert argv[0] == "redis-server" and len(argv) % 2 == 1
    options = dict(zip(argv[1::2], argv[2::2], strict=True))
    assert options["--save"] == "" and options["--appendonly"] == "no", "no persistence: no RDB, no AOF"
    assert options["--maxmemory-policy"] == "noeviction", "a lease evicted silently would loosen a cap"
    resources = redis["resources"]
    assert resources["requests"]["cpu"] and resources["requests"]["memory"]
    assert _byte_size(options["--maxmemory"]) < _byte_size(resources["limits"]["memory"])
    assert options["--requirepass"] == "$(REDIS_PASSWORD)" and secret_env(redis)["REDIS_PASSWORD"] == (
        REDIS,
        "password",
    )
    redis_port = int(options["--port"])
    assert port_number(redis, "redis") == redis_port
    # its Service
    service = one(objs, "Service", REDIS)
    assert selects(service["spec"]["selector"], labels)
    (port,) = service["spec"]["ports"]
    assert port_number(redis, port["targetPort"]) == redis_port
    # its NetworkPolicy: in, only the server pods to the Redis port; out, nothing
    policy = one(objs, "NetworkPolicy", REDIS)
    assert selects(policy["spec"]["podSelector"], labels)
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"} and policy["spec"].get("egress") in ([], None)
    (rule,) = policy["spec"]["ingress"]
    (peer,) = rule["from"]
    assert set(peer) == {"podSelector"}, f"a peer beyond this namespace's pods: {peer}"
    assert selects(peer["podSelector"], _pod_labels(objs)) and not selects(peer["podSelector"], labels)
    assert {port_number(redis, p["port"]) for p in rule["ports"]} == {redis_port}
    # the server pods use it: TRANSLATE_SVC_CLUSTER__REDIS_URL names the Service, the password is a file
    env = _server_env(objs)
    url = urlsplit(env["TRANSLATE_SVC_CLUSTER__REDIS_URL"])
    assert (url.scheme, url.hostname, url.port) == ("redis", REDIS, port["port"]), url
    assert url.password is None, "the password is in a file, not in the manifest"
    assert _secret_file(objs, env["TRANSLATE_SVC_CLUSTER__REDIS_PASSWORD_FILE"]) == (REDIS, "password")


@pytest.mark.parametrize("overlay", GPU_OVERLAYS)
def test_the_server_pods_may_call_the_cluster_dns_and_redis_only(overlay: str) -> None:
    objs = render(overlay)
    policy = one(objs, "NetworkPolicy", "translate-svc-to-redis")
    assert selects(policy["spec"]["podSelector"], _pod_labels(objs))
    assert policy["spec"]["policyTypes"] == ["Egress"], "it adds egress only; ingress stays the base policy's"
    dns, redis = policy["spec"]["egress"]
    assert dns["to"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ]
    assert {(p["port"], p["protocol"]) for p in dns["ports"]} == {(53, "UDP"), (53, "TCP")}
    if overlay in ("gpu", "gpu-recordings", "gpu-jobs"):
        redis_labels = one(objs, "Deployment", REDIS)["spec"]["template"]["metadata"]["labels"]
        (peer,) = redis["to"]
        assert set(peer) == {"podSelector"} and selects(peer["podSelector"], redis_labels)
        assert {(p["port"], p["protocol"]) for p in redis["ports"]} == {(6379, "TCP")}
    else:  # an external Redis: its ports at any address, until the operator narrows it
        assert {(p["port"], p["protocol"]) for p in redis["ports"]} == {(6379, "TCP"), (6380, "TCP")}


def test_the_external_redis_overlay_takes_its_url_and_password_from_a_secret() -> None:
    objs = render("gpu-external-redis")
    assert not [o for o in objs if o["metadata"]["name"] == REDIS], "the overlay's own Redis is still there"
    container = server_container(objs)
    assert secret_env(container)["TRANSLATE_SVC_CLUSTER__REDIS_URL"] == (REDIS, "url")
    assert "TRANSLATE_SVC_CLUSTER__REDIS_URL" not in env_map(container)
    env = _server_env(objs)
    assert _secret_file(objs, env["TRANSLATE_SVC_CLUSTER__REDIS_PASSWORD_FILE"]) == (REDIS, "password")
    # the rest is the gpu overlay's server, unchanged
    gpu = server_deployment(render("gpu"))
    ours = server_deployment(objs)
    for d in (gpu, ours):
        (server,) = d["spec"]["template"]["spec"]["containers"]
        server["env"] = [e for e in server["env"] if e["name"] != "TRANSLATE_SVC_CLUSTER__REDIS_URL"]
    assert ours == gpu


# -------------------------------------------------------------------- the manifests, run for real


def _health(port: int, service: str) -> str:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        try:
            resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
        except grpc.RpcError as e:
            return f"error: {e.code().name}"
        return health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)


def test_cpu_dev_container_serves_its_probes_and_metrics(test_model_dir: Path, tmp_path: Path) -> None:
    """Run `translate-svc serve` with the cpu-dev server container's environment (ports moved to ones
    the server picks itself and names in its ready file, the model path to the local test
    checkpoint): the probes as written get SERVING on the health port, /metrics on the metrics port
    has the HPA's metric, and SIGTERM exits in the grace."""
    objs = render("cpu-dev")
    container = server_container(objs)
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    manifest_env = _server_env(objs)
    env.update(manifest_env)
    env.update(  # port 0: the server binds a free one itself (a port chosen here could be taken first)
        TRANSLATE_SVC_SERVER__HOST="127.0.0.1",
        TRANSLATE_SVC_SERVER__PORT="0",
        TRANSLATE_SVC_SERVER__HTTP_PORT="0",
        TRANSLATE_SVC_SERVER__METRICS_PORT="0",
        TRANSLATE_SVC_MODEL__PATH=str(test_model_dir),
        HOME=str(tmp_path),
    )
    hpa_metric = one(render("gpu"), "HorizontalPodAutoscaler")["spec"]["metrics"][0]["pods"]["metric"]["name"]
    # the image's ENTRYPOINT (`translate-svc serve`), run from this environment
    entry = parse_dockerfile(REPO / "Dockerfile.cpu")[-1].all("ENTRYPOINT")[-1].exec_form()
    assert entry is not None and entry[0] == "translate-svc"
    ready_file = tmp_path / "ready.json"  # where the server names the ports it bound
    argv = [sys.executable, "-m", "translate_svc.cli", *entry[1:], "--ready-file", str(ready_file)]
    log = tmp_path / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(default_signals(argv), env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        try:
            info = ready.wait(ready_file, proc, 300)
        except ready.NotReady as e:
            raise AssertionError(f"{e}:\n{log.read_text()}") from None
        ports = {
            int(manifest_env["TRANSLATE_SVC_SERVER__PORT"]): info.port,
            int(manifest_env["TRANSLATE_SVC_SERVER__HTTP_PORT"]): info.http_port,
            int(manifest_env["TRANSLATE_SVC_SERVER__METRICS_PORT"]): info.metrics_port,
        }
        startup = container["startupProbe"]["grpc"]
        port = ports[startup["port"]]
        deadline = time.monotonic() + 120
        while _health(port, startup.get("service", "")) != "SERVING":
            assert proc.poll() is None, f"the server exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"not SERVING after 120 s:\n{log.read_text()}"
            time.sleep(0.5)
        for kind in ("readinessProbe", "livenessProbe"):
            probe = container[kind]["grpc"]
            assert _health(ports[probe["port"]], probe.get("service", "")) == "SERVING", kind
        metrics_port = ports[port_number(container, "metrics")]
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
        assert re.search(rf"^{re.escape(hpa_metric)} ", text, re.M), f"/metrics lacks {hpa_metric}"
        # the HTTP port the Services expose serves (here: a client secret minted, no tokens on cpu-dev)
        http_port = ports[port_number(container, "http")]
        mint = urllib.request.Request(
            f"http://127.0.0.1:{http_port}/v1/realtime/translations/client_secrets", data=b"{}", method="POST"
        )
        minted = json.loads(urllib.request.urlopen(mint, timeout=5).read())
        assert minted["value"].startswith("ek_"), minted
        proc.send_signal(signal.SIGTERM)
        grace = server_deployment(objs)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert proc.wait(timeout=grace) == 0, f"exit status {proc.returncode}:\n{log.read_text()}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
