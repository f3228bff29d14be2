"""The GPU runbook's codec stubs (benchmarks/gpu/stub_codecs.py, issue 88: the packed site must fit
in a device call's 64 MiB beside pyrnnoise): a stubbed library keeps its file name, SONAME and the
symbols (at the versions) its consumers import, so the consumer still loads and links and reads
its objects (zeros), and a call into the stub stops the process at once (SIGILL), never passing
unnoticed; a library only stubbed ones needed is removed. Built here with gcc on
stand-ins named as auditwheel names PyAV's libraries; the real site is loaded by
benchmarks/gpu/preflight.sh."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.gpu.stub_codecs import stub

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("readelf") is None, reason="needs gcc and readelf"),
]

X264 = "libx264-0123abcd.so.165"
SHARPYUV = "libsharpyuv-0123abcd.so.0"  # needed by the x264 stand-in alone
AVCODEC = "libavcodec-0123abcd.so.63"  # kept: the consumer


def _cc(libs: Path, name: str, source: str, *flags: str) -> None:
    src = libs / f"{name}.c"
    src.write_text(source)
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-o", str(libs / name), str(src), f"-Wl,-soname,{name}", *flags], check=True
    )
    src.unlink()


@pytest.fixture
def site(tmp_path: Path) -> Path:
    libs = tmp_path / "av.libs"
    libs.mkdir()
    _cc(libs, SHARPYUV, "int sharp(void) { return 7; }\n")
    (libs / "x264.map").write_text("X264_1 { global: x264_encoder_open; x264_levels; x264_unused; local: *; };\n")
    _cc(
        libs,
        X264,
        "int sharp(void);\nint x264_levels[4] = {1, 2, 3, 4};\n"
        "int x264_encoder_open(void) { return 41 + sharp() - 7; }\nint x264_unused(void) { return 5; }\n",
        f"-Wl,--version-script={libs / 'x264.map'}",
        f"-L{libs}",
        f"-l:{SHARPYUV}",
        "-Wl,-rpath,$ORIGIN",
    )
    (libs / "x264.map").unlink()
    _cc(
        libs,
        AVCODEC,
        "extern int x264_levels[4];\nint x264_encoder_open(void);\n"
        "int probe(void) { return x264_encoder_open() + x264_levels[0]; }\n"
        "int level(void) { return x264_levels[1]; }\n",
        f"-L{libs}",
        f"-l:{X264}",
        "-Wl,-rpath,$ORIGIN",
    )
    return tmp_path


def _call(site: Path, fn: str) -> subprocess.CompletedProcess[str]:
    # a fresh process: the loader must resolve the consumer against what is on disk now
    lib = site / "av.libs" / AVCODEC
    code = f"import ctypes; lib = ctypes.CDLL({str(lib)!r}); print('loaded', flush=True); print(lib.{fn}())"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def _exports(path: Path) -> str:
    return subprocess.run(
        ["readelf", "-W", "--dyn-syms", "-d", str(path)], check=True, capture_output=True, text=True
    ).stdout


def test_a_stubbed_library_keeps_its_consumer_loading_and_answers_zero(site: Path) -> None:
    assert _call(site, "probe").stdout.split() == ["loaded", "42"]  # the real stand-ins: 41 + 1
    assert _call(site, "level").stdout.split() == ["loaded", "2"]
    before, after = stub(site)
    assert after < before
    level = _call(site, "level")  # linked against the stub, at version X264_1; its objects are zeros
    assert (level.returncode, level.stdout.split()) == (0, ["loaded", "0"]), level.stderr
    probe = _call(site, "probe")  # loaded, then the call into the stub traps
    assert probe.stdout.split() == ["loaded"] and probe.returncode == -signal.SIGILL, probe.stderr
    exported = _exports(site / "av.libs" / X264)
    assert f"Library soname: [{X264}]" in exported
    assert "x264_encoder_open@@X264_1" in exported and "x264_levels@@X264_1" in exported
    assert "x264_unused" not in exported  # only what a kept library imports
    assert "NEEDED" not in exported  # no libc, no sharpyuv
    assert not (site / "av.libs" / SHARPYUV).exists()  # needed by the stubbed library alone
