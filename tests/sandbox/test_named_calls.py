"""A sandbox call's function named by its module (``sandbox/named.py``): it runs in the sandbox
process, and the calling process never imports its module. The detection core's named function
(``session/calls/detect.py``'s ``DETECT_CLIP``) is the detector, and a detection leaves the caller
without torch."""

from __future__ import annotations

import ast
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from translate_svc.marking import clips
from translate_svc.sandbox.named import Named
from translate_svc.session.calls.detect import DETECT_CLIP

pytestmark = [pytest.mark.unit]


def test_a_named_function_unpickles_as_the_function_and_is_not_callable_here() -> None:
    assert pickle.loads(pickle.dumps(DETECT_CLIP)) is clips.detect_clip
    with pytest.raises(TypeError, match="sandbox process only"):
        Named("os", "getpid")()


def test_a_detection_runs_in_the_sandbox_and_the_caller_never_loads_torch(shared_audio: Path) -> None:
    """In a fresh interpreter (this one has torch already): the sandbox decodes and searches a
    FLAC; the caller's modules after it hold no torch, no c2pa and no marking module but the plain
    types of its answer (``marking.credentials``)."""
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from pathlib import Path
        from translate_svc.sandbox.pool import Sandbox, SandboxLimits
        from translate_svc.session.calls.detect import DETECT_CLIP
        from translate_svc.types import AudioEncoding, AudioFormat

        async def main():
            box = Sandbox(SandboxLimits(1, 1, 2048))
            try:
                data = Path({str(shared_audio)!r}, "jfk.flac").read_bytes()
                return await box.run("t", 60.0, DETECT_CLIP, data, AudioFormat(AudioEncoding.CONTAINER), 60.0)
            finally:
                await box.close()

        probability, spans, name, seconds, credentials = asyncio.run(main())
        # the answer's types only: ``marking.credentials`` (no torch, c2pa loaded lazily) holds them
        plain = ("translate_svc.marking", "translate_svc.marking.credentials")
        loaded = sorted(
            m for m in sys.modules
            if m.split(".")[0] in ("torch", "transformers", "c2pa") or ("marking" in m and m not in plain)
        )
        print(repr((probability, seconds, name, credentials, loaded)))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    probability, seconds, name, credentials, loaded = ast.literal_eval(out.stdout.strip().splitlines()[-1])
    assert 0.0 <= probability < 0.5 and abs(seconds - 11.0) < 0.1 and name.startswith("perth-implicit@"), out.stdout
    assert credentials is None, credentials  # jfk.flac carries no C2PA manifest
    assert loaded == [], loaded
