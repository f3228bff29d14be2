"""The committed stubs are exactly what `make protos` generates from protos/."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GENERATED = ("translate_pb2.py", "translate_pb2.pyi", "translate_pb2_grpc.py")


def test_regenerating_the_stubs_changes_nothing(tmp_path: Path) -> None:
    shutil.copytree(REPO / "protos", tmp_path / "protos")
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(
        [
            sys.executable, "-m", "grpc_tools.protoc", "-I", str(tmp_path / "protos"),
            "-I", sysconfig.get_paths()["purelib"],
            f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}",
            str(tmp_path / "protos/translate_svc/api/v1/translate.proto"),
        ],
        check=True,
    )  # fmt: skip
    for name in GENERATED:
        fresh = (out / "translate_svc/api/v1" / name).read_text()
        committed = (REPO / "translate_svc/api/v1" / name).read_text()
        assert fresh == committed, f"translate_svc/api/v1/{name} is stale: run `make protos` and commit"


def test_the_stub_pins_match_the_installed_runtime() -> None:
    import grpc
    from google.protobuf import __version__ as protobuf_version

    from translate_svc.api.v1 import translate_pb2_grpc

    gen = tuple(int(x) for x in translate_pb2_grpc.GRPC_GENERATED_VERSION.split("."))
    assert tuple(int(x) for x in grpc.__version__.split(".")[:3]) >= gen
    assert int(protobuf_version.split(".")[0]) == 7
