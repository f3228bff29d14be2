"""What the server and the GPU runbook's tools import, imported (``run.sh imports``; issue 88).

Run by benchmarks/gpu/preflight.sh on the CPU, under run.sh's own set-up (the packed site first on
PYTHONPATH), before a device call; it also runs on the device. Every failure is listed, not the
first alone, and the exit status is 1 if any import failed. For the packages the site must shadow,
where each came from (the site or the image) is printed.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
import traceback

#: the server (serve and what it loads at start), every tool run.sh runs, and the tests' plugins
MODULES = (
    "translate_svc.cli",
    "translate_svc.cli.operator",
    "translate_svc.app",
    "translate_svc.model.stages.seamless",
    "translate_svc.model.decode.batch",
    "translate_svc.model.stages.lid",
    "translate_svc.model.testing.checkpoint",
    "translate_svc.audio.opus",
    "translate_svc.audio.denoise",
    "translate_svc.transport.host",
    "benchmarks.tools.loadgen.cli",
    "benchmarks.tools.profile_stages",
    "benchmarks.tools.agreement",
    "pytest",
    "pytest_asyncio.plugin",
    "pytest_timeout",
)
#: packed at another version than the image's: the site's copy must be the one imported
SHADOWED = ("transformers", "grpcio", "protobuf", "regex", "typing_extensions", "pytest")


def main() -> int:
    failed = []
    for name in MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # every failure is reported, then the exit status says it
            failed.append(name)
            print(f"FAILED import {name}:\n{traceback.format_exc(limit=3)}", file=sys.stderr)
    try:
        from translate_svc.audio.denoise import Rnnoise, rnnoise_library_path

        print(f"librnnoise: {rnnoise_library_path()} (frame {Rnnoise.shared().frame} samples)")
    except Exception:
        failed.append("librnnoise")
        print(f"FAILED librnnoise:\n{traceback.format_exc(limit=3)}", file=sys.stderr)
    for dist in SHADOWED:
        try:
            files = importlib.metadata.distribution(dist).locate_file("")
            print(f"{dist} {importlib.metadata.version(dist)} from {files}")
        except importlib.metadata.PackageNotFoundError:
            failed.append(dist)
            print(f"FAILED: {dist} is not installed", file=sys.stderr)
    print(f"python {sys.version.split()[0]}: {len(MODULES)} modules imported, {len(failed)} failed {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
