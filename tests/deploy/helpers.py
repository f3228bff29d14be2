"""Shared parsing for the deployment checks: kustomize renders, pod specs, Dockerfiles, .dockerignore."""

from __future__ import annotations

import functools
import json
import math
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
OVERLAYS = ("gpu", "gpu-external-redis", "gpu-recordings", "gpu-jobs", "cpu-dev")
#: the overlays that serve on GPU nodes: the gpu overlay, the same with a Redis of one's own, and
#: the same with recordings kept on a shared claim (issue 61), and with jobs on a shared claim (issue 73)
GPU_OVERLAYS = ("gpu", "gpu-external-redis", "gpu-recordings", "gpu-jobs")
NAMESPACE = "translate-svc"
SERVER_LABELS = {"app.kubernetes.io/name": "translate-svc", "app.kubernetes.io/component": "server"}
#: the gpu overlay's Redis (k8s/overlays/gpu/redis.yaml)
REDIS = "translate-svc-redis"
ENV_PREFIX = "TRANSLATE_SVC_"

Obj = dict[str, Any]


# --------------------------------------------------------------------------------------- kustomize


@functools.cache
def _kustomize(target: str) -> tuple[Obj, ...]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not on PATH: cannot render the kustomize overlays (`kubectl kustomize`)")
    path = K8S / "base" if target == "base" else K8S / "overlays" / target
    proc = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        pytest.fail(f"kubectl kustomize {path.relative_to(REPO)} failed:\n{proc.stderr}")
    return tuple(d for d in yaml.safe_load_all(proc.stdout) if d)


def render(target: str) -> list[Obj]:
    """``kubectl kustomize`` of k8s/base or k8s/overlays/<target>, parsed; a fresh copy per call."""
    return json.loads(json.dumps(_kustomize(target)))


def objects(objs: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objs if o["kind"] == kind]


def one(objs: list[Obj], kind: str, name: str | None = None) -> Obj:
    found = [o for o in objects(objs, kind) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected exactly one {kind}{' ' + name if name else ''}, found {len(found)}"
    return found[0]


def server_deployment(objs: list[Obj]) -> Obj:
    return one(objs, "Deployment", "translate-svc")


def server_container(objs: list[Obj]) -> Obj:
    containers = server_deployment(objs)["spec"]["template"]["spec"]["containers"]
    found = [c for c in containers if c["name"] == "server"]
    assert len(found) == 1, "the Deployment has no container named 'server'"
    return found[0]


def env_map(container: Obj) -> dict[str, str]:
    """The container's environment as the kubelet sets it: literal values, and the container's own
    CPU request through the downward API (``resourceFieldRef``, rounded up to whole cores). What
    comes from a Secret is not here: ``secret_env``."""
    out: dict[str, str] = {}
    from_secrets = secret_env(container)
    for e in container.get("env", []):
        assert e["name"] not in out, f"env {e['name']} set twice"
        if e["name"] in from_secrets:
            continue
        ref = e.get("valueFrom", {}).get("resourceFieldRef")
        if ref is not None:
            assert ref == {"resource": "requests.cpu", "divisor": "1"}, f"env {e['name']}: {ref}"
            out[e["name"]] = str(math.ceil(cpu_cores(container["resources"]["requests"]["cpu"])))
            continue
        assert "value" in e, f"env {e['name']}: literal values or the CPU request only"
        out[e["name"]] = str(e["value"])
    return out


def secret_env(container: Obj) -> dict[str, tuple[str, str]]:
    """The container's variables that come from a Secret (``secretKeyRef``): name -> (Secret, key)."""
    out: dict[str, tuple[str, str]] = {}
    for e in container.get("env", []):
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        if ref is not None:
            assert "value" not in e, f"env {e['name']}: a value and a Secret"
            assert not ref.get("optional"), f"env {e['name']}: an optional Secret (a pod would start without it)"
            out[e["name"]] = (ref["name"], ref["key"])
    return out


def pod_specs(objs: list[Obj]) -> Iterator[tuple[Obj, Obj, Obj]]:
    """(owner object, pod template metadata, pod spec) for every workload."""
    for o in objs:
        kind = o["kind"]
        if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
            tpl = o["spec"]["template"]
        elif kind == "CronJob":
            tpl = o["spec"]["jobTemplate"]["spec"]["template"]
        elif kind == "Pod":
            tpl = o
        else:
            continue
        yield o, tpl.get("metadata", {}), tpl["spec"]


def all_containers(spec: Obj) -> list[Obj]:
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def port_number(container: Obj, port: int | str) -> int:
    """A port as a number: a named port resolves against the container's ports."""
    if isinstance(port, int):
        return port
    if port.isdigit():
        return int(port)
    named = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    assert named, f"port {port!r} is not a named port of container {container['name']}"
    return int(named[0])


def selects(selector: Obj | None, labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics: a plain map (Service) or matchLabels/matchExpressions."""
    if not selector:
        return False  # an empty/missing selector is not used in these manifests; treat as "selects nothing"
    if "matchLabels" not in selector and "matchExpressions" not in selector:
        return all(labels.get(k) == v for k, v in selector.items())
    if not all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def cpu_cores(quantity: str | int | float) -> float:
    q = str(quantity)
    return int(q[:-1]) / 1000 if q.endswith("m") else float(q)


def image_reference_problem(image: str) -> str | None:
    """Why an image reference is not pinned (no tag, or `latest`); None when it is fine."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" not in last:
        return None if digest else "has no tag"
    tag = last.split(":", 1)[1]
    if tag == "latest":
        return "uses the `latest` tag"
    return None


# --------------------------------------------------------------------------------------- Dockerfile


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON (exec) form's list, or None for the shell form."""
        if self.args.startswith("["):
            value = json.loads(self.args)
            assert isinstance(value, list) and all(isinstance(v, str) for v in value)
            return value
        return None

    def flags(self) -> dict[str, str]:
        """Leading --flag=value options (COPY --from=..., FROM --platform=...)."""
        out: dict[str, str] = {}
        for tok in shlex.split(self.args):
            if not tok.startswith("--"):
                break
            key, _, value = tok[2:].partition("=")
            out[key] = value
        return out

    def positional(self) -> list[str]:
        return [t for t in shlex.split(self.args) if not t.startswith("--")]


@dataclass
class Stage:
    image: str
    name: str | None
    line: int
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for ins in self.all("ENV"):
            tokens = shlex.split(ins.args)
            if tokens and "=" not in tokens[0]:  # legacy `ENV KEY value`
                out[tokens[0]] = " ".join(tokens[1:])
                continue
            for tok in tokens:
                key, _, value = tok.partition("=")
                out[key] = value
        return out


def parse_dockerfile(path: Path) -> list[Stage]:
    """Stages with their instructions; comments dropped, `\\` continuations joined (Docker's rules)."""
    stages: list[Stage] = []
    logical: list[tuple[int, str]] = []
    buf: list[str] = []
    start = 0
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not buf):
            continue  # comments (also inside continuations) and blank lines
        if not buf:
            start = n
        if stripped.endswith("\\"):
            buf.append(stripped[:-1].strip())
            continue
        buf.append(stripped)
        logical.append((start, " ".join(b for b in buf if b)))
        buf = []
    assert not buf, f"{path.name}: the last instruction ends with a line continuation"
    for n, text in logical:
        keyword, _, args = text.partition(" ")
        ins = Instruction(keyword.upper(), args.strip(), n)
        if ins.keyword == "FROM":
            pos = ins.positional()
            assert len(pos) in (1, 3), f"{path.name}:{n}: cannot parse FROM {ins.args!r}"
            assert len(pos) == 1 or pos[1].upper() == "AS", f"{path.name}:{n}: cannot parse FROM {ins.args!r}"
            stages.append(Stage(image=pos[0], name=pos[2] if len(pos) == 3 else None, line=n))
        else:
            assert stages, f"{path.name}:{n}: {ins.keyword} before the first FROM"
            stages[-1].instructions.append(ins)
    return stages


_PIP_OPTIONS_WITH_VALUE = {
    "-i",
    "--index-url",
    "--extra-index-url",
    "-f",
    "--find-links",
    "-c",
    "--constraint",
    "-r",
    "--requirement",
    "--wheel-dir",
    "-w",
    "--target",
    "-t",
    "--prefix",
    "--root",
    "--platform",
    "--python-version",
}


@dataclass(frozen=True)
class PipCall:
    verb: str  # install | wheel
    requirements: tuple[str, ...]
    options: dict[str, str]
    line: int


def pip_calls(stage: Stage) -> list[PipCall]:
    """Every `pip install` / `pip wheel` in a stage's RUN commands, with its requirement arguments."""
    calls: list[PipCall] = []
    for ins in stage.all("RUN"):
        for command in re.split(r"&&|;|\|\|", ins.args):
            tokens = shlex.split(command)
            if "pip" not in tokens:
                continue
            at = tokens.index("pip")
            if at + 1 >= len(tokens) or tokens[at + 1] not in ("install", "wheel"):
                continue
            verb, rest = tokens[at + 1], tokens[at + 2 :]
            reqs: list[str] = []
            options: dict[str, str] = {}
            it = iter(rest)
            for tok in it:
                if tok.startswith("-"):
                    key, eq, value = tok.partition("=")
                    if key in _PIP_OPTIONS_WITH_VALUE:
                        options[key] = value if eq else next(it)
                    else:
                        options[key] = ""
                else:
                    reqs.append(tok)
            calls.append(PipCall(verb, tuple(reqs), options, ins.line))
    return calls


# ----------------------------------------------------------------------------------- .dockerignore


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            if i < len(pattern) and pattern[i] == "/":
                out = out[:-2] + "(?:.*/)?"
                i += 1
            continue
        out += {"*": "[^/]*", "?": "[^/]"}.get(c, re.escape(c))
        i += 1
    return re.compile(out + r"\Z")


def dockerignore_excludes(rules: list[str], path: str) -> bool:
    """Whether Docker leaves ``path`` (relative, with /) out of the build context.

    Like moby's pattern matcher: rules are applied in order, the last one that matches the path or
    one of its parent directories decides, and ``!`` re-includes.
    """
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for rule in rules:
        negate = rule.startswith("!")
        pattern = rule[1:] if negate else rule
        pattern = pattern.strip().strip("/")
        if pattern.startswith("./"):
            pattern = pattern[2:]
        rx = _ignore_regex(pattern)
        if any(rx.match(p) for p in prefixes):
            excluded = not negate
    return excluded


def dockerignore_rules(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.strip().startswith("#")]
