"""Replace the FFmpeg libraries PyAV bundles for codecs and devices the service never uses by stubs.

Why (issue 88): the GPU runbook's packed site must fit in the 64 MiB a device call carries, beside
pyrnnoise's 14.8 MB librnnoise. PyAV's wheel bundles FFmpeg with its external encoders and
decoders (x264, x265, SVT-AV1, libvpx, dav1d, WebP, VMAF, oneVPL), TLS (GnuTLS and its maths) and
capture devices (ALSA, XCB, DRM): about 9 MB of the packed site, none of which the service calls.
It encodes and decodes Opus (libopus, kept), muxes and demuxes Ogg and WebM and decodes
files with FFmpeg's own decoders (libavcodec, kept). The libraries cannot just go: libavcodec,
libavformat, libavfilter, libavdevice and libavutil name them as needed, so the loader refuses to
load PyAV without them.

Each stubbed library keeps its file name and SONAME and defines exactly the symbols (and symbol
versions) the kept libraries import from it: functions that trap (the process stops with SIGILL at
once: a stub is never to be called, and a call is not to pass unnoticed), objects of zeros.
Loading PyAV, looking up and registering every codec, Opus in and out, Ogg, WebM and FLAC call none
of them (checked on PyAV 19.0.2); opening a stubbed encoder would. Libraries only the stubs needed
are removed. Nothing here runs on the device; benchmarks/gpu/preflight.sh loads the result.

Usage: python stub_codecs.py SITE_DIR   (the unpacked site; edits SITE_DIR/av.libs in place)
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

#: libraries (by name before auditwheel's hash) whose code the service never runs
STUBBED = (
    "libx264", "libx265", "libSvtAv1Enc", "libvpx", "libdav1d", "libwebp", "libwebpmux", "libsharpyuv",
    "libvmaf", "libvpl", "libgnutls", "libunistring", "libhogweed", "libnettle", "libgmp", "libasound",
    "libxcb", "libxcb-shape", "libxcb-shm", "libxcb-xfixes", "libXau", "libdrm",
)  # fmt: skip
_SYM = re.compile(r"^\s*\d+:\s+[0-9a-f]+\s+(\d+|0x[0-9a-f]+)\s+(\w+)\s+\w+\s+\w+\s+(\w+)\s+([^\s@]+)(@@?([^\s(]+))?")


def _readelf(*args: str) -> str:
    return subprocess.run(["readelf", "-W", *args], check=True, capture_output=True, text=True).stdout


def _base(path: Path) -> str:
    """``libxcb-shm-0be6dfbf.so.0.0.0`` -> ``libxcb-shm`` (auditwheel's hash and the version off)."""
    return re.sub(r"-[0-9a-f]{8}$", "", path.name.split(".so")[0])


def _needed(path: Path) -> list[str]:
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", _readelf("-d", str(path)))


def _symbols(path: Path) -> list[tuple[str, str, int, str | None, bool]]:
    """(name, type, size, version, defined) of each dynamic symbol."""
    out = []
    for line in _readelf("--dyn-syms", str(path)).splitlines():
        m = _SYM.match(line)
        if m:
            size = int(m.group(1), 0)
            out.append((m.group(4), m.group(2), size, m.group(6), m.group(3) != "UND"))
    return out


def _elfs(site: Path) -> list[Path]:
    return [p for p in site.rglob("*.so*") if p.is_file() and p.read_bytes()[:4] == b"\x7fELF"]


def stub(site: Path) -> tuple[int, int]:
    """Stub ``STUBBED`` in ``site/av.libs``; returns (bytes before, bytes after) of av.libs."""
    libs = site / "av.libs"
    before = sum(p.stat().st_size for p in libs.iterdir())
    targets = {p.name: p for p in libs.iterdir() if _base(p) in STUBBED}
    consumers = [p for p in _elfs(site) if p.name not in targets]
    # (name, version) of each symbol a kept library takes from each stubbed one: the loader checks
    # the version a consumer names, which can be an older one than the provider's default
    imported: dict[str, set[tuple[str, str | None]]] = {name: set() for name in targets}
    for c in consumers:
        wants = {(s[0], s[3]) for s in _symbols(c) if not s[4]}
        for name in set(_needed(c)) & set(targets):
            imported[name] |= wants
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in sorted(targets.items()):
            if not any(name in _needed(c) for c in consumers):
                path.unlink()  # needed only by other stubbed libraries
                continue
            kinds = {s[0]: (s[1], s[2]) for s in _symbols(path) if s[4] and s[1] in ("FUNC", "IFUNC", "OBJECT", "TLS")}
            versions: dict[str, list[str | None]] = {}
            for sym, version in sorted(imported[name], key=str):
                if sym in kinds:
                    versions.setdefault(sym, []).append(version)
            c_lines: list[str] = []
            nodes: dict[str | None, list[str]] = {}
            for i, (sym, vs) in enumerate(sorted(versions.items())):
                if len(vs) > 1:  # would need .symver aliases; not met in PyAV 19's libraries
                    raise SystemExit(f"{name}: {sym} is asked for at versions {vs}: stub it by hand or keep it")
                kind, size = kinds[sym]
                if kind in ("FUNC", "IFUNC"):
                    c_lines.append(f'void f{i}(void) __asm__("{sym}");\nvoid f{i}(void) {{ __builtin_trap(); }}')
                else:
                    tls = "__thread " if kind == "TLS" else ""
                    c_lines.append(f'{tls}char d{i}[{max(size, 1)}] __asm__("{sym}") __attribute__((aligned(16)));')
                nodes.setdefault(vs[0], []).append(sym)
            src = Path(tmp) / f"{name}.c"
            src.write_text("\n".join(c_lines) + "\n")
            cmd = ["gcc", "-shared", "-fPIC", "-O1", "-nostdlib", f"-Wl,-soname,{name}", "-o", str(path), str(src)]
            named = sorted(v for v in nodes if v)
            if named:
                nodes[named[-1]] += nodes.pop(None, [])  # a lookup without a version takes any
                body = [f"{v} {{ global: {' '.join(s + ';' for s in nodes[v])} }};" for v in named]
                body[-1] = body[-1][:-3] + " local: *; };"
                script = Path(tmp) / f"{name}.map"
                script.write_text("\n".join(body) + "\n")
                cmd.insert(1, f"-Wl,--version-script={script}")
            path.unlink()
            subprocess.run(cmd, check=True)
    after = sum(p.stat().st_size for p in libs.iterdir())
    return before, after


if __name__ == "__main__":
    b, a = stub(Path(sys.argv[1]))
    print(f"av.libs: {b / 1e6:.1f} MB -> {a / 1e6:.1f} MB (codecs and devices the service never uses stubbed)")
