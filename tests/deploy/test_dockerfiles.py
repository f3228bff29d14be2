"""Static checks of the two Dockerfiles and .dockerignore.

Base images cannot be pulled where these tests run, so the images are never built here: the
Dockerfiles are parsed and their instructions checked (docs/deploy.md says so too).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.deploy.helpers import (
    REPO,
    Stage,
    dockerignore_excludes,
    dockerignore_rules,
    parse_dockerfile,
    pip_calls,
)

pytestmark = pytest.mark.unit

#: file -> the PyTorch wheel index its torch must come from ("cu" + CUDA major.minor for the CUDA image)
DOCKERFILES = {"Dockerfile": "cuda", "Dockerfile.cpu": "cpu"}
TORCH_INDEX = re.compile(r"https://download\.pytorch\.org/whl/(cpu|cu\d{3})")
VENV = "/opt/venv"
WHEEL_DIR = "/wheels"


@pytest.fixture(params=sorted(DOCKERFILES), ids=lambda p: p)
def dockerfile(request: pytest.FixtureRequest) -> tuple[str, list[Stage]]:
    path = REPO / request.param
    assert path.is_file(), f"{request.param} is missing"
    return request.param, parse_dockerfile(path)


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _torch_pin() -> str:
    pins = [d for d in _pyproject()["project"]["dependencies"] if re.match(r"torch\s*==", d)]
    assert len(pins) == 1, "pyproject.toml should pin torch exactly (torch==X.Y.Z)"
    return pins[0].split("==", 1)[1].strip()


def _base_manifest(name: str) -> dict:
    return yaml.safe_load((REPO / "k8s" / "base" / name).read_text())


def _stage_names(stages: list[Stage]) -> set[str]:
    return {s.name for s in stages if s.name}


def test_multi_stage_and_the_runtime_copies_only_from_stages(dockerfile: tuple[str, list[Stage]]) -> None:
    name, stages = dockerfile
    assert len(stages) >= 2, f"{name} is not multi-stage"
    runtime = stages[-1]
    copies = runtime.all("COPY") + runtime.all("ADD")
    assert copies, f"{name}: the runtime stage copies nothing from the build stages"
    earlier = _stage_names(stages[:-1])
    for ins in copies:
        src = ins.flags().get("from")
        # nothing from the build context (weights, tests, .venv) can reach the runtime image
        assert src in earlier, f"{name}:{ins.line}: the runtime stage copies from the build context: {ins.args}"


def test_base_images_pinned_to_exact_versions(dockerfile: tuple[str, list[Stage]]) -> None:
    name, stages = dockerfile
    seen: set[str] = set()
    for stage in stages:
        if stage.image in seen:  # FROM an earlier stage
            continue
        image = stage.image
        assert "$" not in image, f"{name}:{stage.line}: FROM uses a build argument ({image}); pin it literally"
        repo_part = image.split("@", 1)[0].rsplit("/", 1)[-1]
        assert ":" in repo_part, f"{name}:{stage.line}: {image} has no tag"
        tag = repo_part.split(":", 1)[1]
        assert tag != "latest", f"{name}:{stage.line}: {image} uses latest"
        assert re.search(r"(?<![\d.])\d+\.\d+\.\d+(?![\d.])", tag), (
            f"{name}:{stage.line}: {image}: the tag is not an exact x.y.z version"
        )
        if stage.name:
            seen.add(stage.name)


def test_runtime_user_is_numeric_non_root_and_matches_k8s(dockerfile: tuple[str, list[Stage]]) -> None:
    name, stages = dockerfile
    users = stages[-1].all("USER")
    assert users, f"{name}: the runtime stage has no USER (it would run as root)"
    user = users[-1].args
    assert re.fullmatch(r"\d+(:\d+)?", user), f"{name}: USER {user!r} is not numeric (uid[:gid])"
    uid, _, gid = user.partition(":")
    assert int(uid) != 0 and (not gid or int(gid) != 0), f"{name}: USER {user} is root"
    # the pods' securityContext says the same, so file ownership (fsGroup, the volume) agrees
    for manifest in ("deployment.yaml", "model-download-job.yaml"):
        pod = _base_manifest(manifest)["spec"]["template"]["spec"]["securityContext"]
        assert pod["runAsUser"] == int(uid), f"k8s/base/{manifest}: runAsUser differs from {name}'s USER"
        if gid:
            assert pod["runAsGroup"] == int(gid), f"k8s/base/{manifest}: runAsGroup differs from {name}'s USER"


def test_entrypoint_is_translate_svc_serve(dockerfile: tuple[str, list[Stage]]) -> None:
    import typer.main

    from translate_svc.cli import app

    name, stages = dockerfile
    runtime = stages[-1]
    entry = runtime.all("ENTRYPOINT")
    assert entry, f"{name}: no ENTRYPOINT"
    argv = entry[-1].exec_form()
    assert argv == ["translate-svc", "serve"], f"{name}: ENTRYPOINT is {entry[-1].args}, not the exec form of it"
    assert not runtime.all("CMD"), f"{name}: a CMD would add arguments to `translate-svc serve`"
    # the console script and the command are the project's own
    assert "translate-svc" in _pyproject()["project"]["scripts"]
    group = typer.main.get_command(app)
    assert "serve" in group.commands  # type: ignore[attr-defined]


def test_no_weights_in_the_image(dockerfile: tuple[str, list[Stage]]) -> None:
    name, stages = dockerfile
    for stage in stages:
        assert not stage.all("ADD"), f"{name}: ADD (URL fetches, archive unpacking) is not used; COPY only"
        for ins in stage.all("COPY"):
            assert "model_cache" not in ins.args, f"{name}:{ins.line}: copies model_cache into the image"
            if "from" not in ins.flags():
                sources = ins.positional()[:-1]
                assert all(s not in (".", "./", "*") for s in sources), (
                    f"{name}:{ins.line}: copies the whole build context ({ins.args})"
                )
    runtime = stages[-1]
    model_path = runtime.env().get("TRANSLATE_SVC_MODEL__PATH", "")
    workdir = runtime.all("WORKDIR")[-1].args
    mount = next(
        m["mountPath"]
        for m in _base_manifest("deployment.yaml")["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
        if m["name"] == "model-cache"
    )
    # the image expects the weights where the manifests mount the volume
    assert Path(model_path).parent == Path(mount), f"{name}: TRANSLATE_SVC_MODEL__PATH={model_path} not in {mount}"
    assert Path(mount).parent == Path(workdir), f"{name}: the model volume {mount} is not under WORKDIR {workdir}"


def test_torch_pinned_from_the_right_index(dockerfile: tuple[str, list[Stage]]) -> None:
    name, stages = dockerfile
    pin = _torch_pin()
    torch_calls = [
        (stage, call)
        for stage in stages
        for call in pip_calls(stage)
        if call.verb == "install" and any(r.startswith("torch") for r in call.requirements)
    ]
    assert len(torch_calls) == 1, f"{name}: expected one pip install of torch, found {len(torch_calls)}"
    stage, call = torch_calls[0]
    assert call.requirements == (f"torch=={pin}",), f"{name}:{call.line}: torch must be exactly {pin} (pyproject)"
    index = call.options.get("--index-url") or call.options.get("-i") or ""
    m = TORCH_INDEX.fullmatch(index)
    assert m, f"{name}:{call.line}: torch must come from a PyTorch wheel index, not {index!r}"
    variant = m.group(1)
    if DOCKERFILES[name] == "cpu":
        assert variant == "cpu", f"{name}: the CPU image installs torch from {index}"
    else:
        assert variant.startswith("cu"), f"{name}: the CUDA image installs torch from {index}"
        # the CUDA of the wheels and of the base image agree (cu129 <-> nvidia/cuda:12.9.x)
        cuda = re.match(r"nvidia/cuda:(\d+)\.(\d+)\.\d+-", stage.image)
        assert cuda, f"{name}: torch is installed on {stage.image}, not on an nvidia/cuda base"
        assert variant == f"cu{cuda.group(1)}{cuda.group(2)}", f"{name}: {variant} wheels on {stage.image}"


def test_every_pip_install_is_pinned(dockerfile: tuple[str, list[Stage]]) -> None:
    name, stages = dockerfile
    calls = [c for s in stages for c in pip_calls(s)]
    assert calls
    for call in calls:
        for req in call.requirements:
            if call.verb == "wheel" and req in (".", "./clients/python"):
                continue  # building the project's own wheels (the server's and the client distribution's)
            ok = re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[A-Za-z0-9_.+\-]+", req) or req == f"{WHEEL_DIR}/*.whl"
            assert ok, f"{name}:{call.line}: `pip {call.verb} {req}` is not pinned (name==version or the built wheel)"


def test_project_installed_from_the_built_wheel(dockerfile: tuple[str, list[Stage]]) -> None:
    name, stages = dockerfile
    builders = [
        s for s in stages for c in pip_calls(s) if c.verb == "wheel" and c.options.get("--wheel-dir") == WHEEL_DIR
    ]
    assert len(builders) == 1 and builders[0].name, f"{name}: one named stage must build the wheel into {WHEEL_DIR}"
    builder = builders[0]
    installers = [s for s in stages for c in pip_calls(s) if f"{WHEEL_DIR}/*.whl" in c.requirements]
    assert len(installers) == 1, f"{name}: one stage must `pip install {WHEEL_DIR}/*.whl`"
    inst = installers[0]
    copies = [i for i in inst.all("COPY") if i.flags().get("from") == builder.name]
    assert any(i.positional()[0] == WHEEL_DIR for i in copies), f"{name}: {inst.name} does not copy the wheel"
    # the venv is built on the runtime's own base, so its interpreter symlinks resolve there
    runtime = stages[-1]
    assert inst.image == runtime.image, f"{name}: venv built on {inst.image}, run on {runtime.image}"
    assert any(i.flags().get("from") == inst.name and i.positional()[0] == VENV for i in runtime.all("COPY"))
    assert runtime.env().get("PATH", "").startswith(f"{VENV}/bin:"), f"{name}: {VENV}/bin is not first on PATH"


def test_exposes_the_ports_the_manifests_use(dockerfile: tuple[str, list[Stage]]) -> None:
    name, stages = dockerfile
    exposed = {int(p.split("/")[0]) for ins in stages[-1].all("EXPOSE") for p in ins.args.split()}
    container = _base_manifest("deployment.yaml")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}  # not those from a Secret
    for key in ("TRANSLATE_SVC_SERVER__PORT", "TRANSLATE_SVC_SERVER__METRICS_PORT", "TRANSLATE_SVC_SERVER__HTTP_PORT"):
        assert int(env[key]) in exposed, f"{name}: {key}={env[key]} is not EXPOSEd"
    assert stages[-1].env().get("TRANSLATE_SVC_SERVER__HOST") == "0.0.0.0", f"{name}: listen on all interfaces"


# ----------------------------------------------------------------------------------- .dockerignore


def test_dockerignore_keeps_weights_venv_and_outputs_out() -> None:
    rules = dockerignore_rules(REPO / ".dockerignore")
    must_exclude = [
        "model_cache/seamless-m4t-v2-large/model.safetensors",
        "model_cache/test-model/config.json",
        ".venv/bin/python",
        "out/demo/result.json",
        ".demo/server.log",
        ".gpu/whl/x.whl",
        "tests/deploy/test_k8s.py",
        ".pytest_cache/v/cache/lastfailed",
        ".hypothesis/examples/x",
        ".git/HEAD",
        "translate_svc/__pycache__/cli.cpython-311.pyc",
        "translate_svc.egg-info/PKG-INFO",
        "build/lib/translate_svc/cli.py",
    ]
    for path in must_exclude:
        assert dockerignore_excludes(rules, path), f".dockerignore lets {path} into the build context"
    # and whatever is really in model_cache/ here
    for f in (REPO / "model_cache").rglob("*"):
        rel = f.relative_to(REPO).as_posix()
        assert dockerignore_excludes(rules, rel), f".dockerignore lets {rel} into the build context"


def test_dockerignore_keeps_what_the_dockerfiles_copy() -> None:
    rules = dockerignore_rules(REPO / ".dockerignore")
    for name in DOCKERFILES:
        for stage in parse_dockerfile(REPO / name):
            for ins in stage.all("COPY"):
                if "from" in ins.flags():
                    continue
                for src in ins.positional()[:-1]:
                    path = REPO / src
                    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
                    files = [p for p in files if "__pycache__" not in p.parts]
                    assert files, f"{name}: COPY {src}: nothing there"
                    for f in files:
                        rel = f.relative_to(REPO).as_posix()
                        assert not dockerignore_excludes(rules, rel), f".dockerignore drops {rel}, which {name} needs"


@pytest.mark.parametrize(
    ("rules", "path", "excluded"),
    [
        (["*"], "a/b", True),
        (["*", "!a"], "a/b", False),
        (["*", "!a", "**/__pycache__"], "a/__pycache__/x.pyc", True),
        (["model_cache"], "model_cache/x/y", True),
        (["out/"], "src/out", False),
        (["**/*.pyc"], "a/b/c.pyc", True),
    ],
)
def test_dockerignore_matcher(rules: list[str], path: str, excluded: bool) -> None:
    assert dockerignore_excludes(rules, path) is excluded
