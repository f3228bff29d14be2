"""Fixtures of the plugin tests: the test checkpoint, the servers, the shared audio."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from lk_support import REPO, SHARED_AUDIO, Server, Servers, server_python


@pytest.fixture(scope="session")
def test_model_dir() -> Path:
    path = Path(os.environ.get("TRANSLATE_SVC_TEST_MODEL", REPO / "model_cache" / "test-model"))
    if not (path / "config.json").is_file():  # made by the server's own command, in its virtualenv
        cmd = [str(server_python()), "-m", "translate_svc.cli", "make-test-model", str(path)]
        subprocess.run(cmd, check=True, cwd=REPO)
    return path


@pytest.fixture(scope="session")
def servers(test_model_dir: Path) -> Iterator[Servers]:
    s = Servers(test_model_dir)
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def server(servers: Servers) -> Server:
    return servers.get(0)


@pytest.fixture(scope="session")
def minute() -> np.ndarray:
    """silero_test.wav: 60 s of 16 kHz mono PCM16 with 19 speech regions."""
    path = SHARED_AUDIO / "silero_test.wav"
    if not path.is_file():
        pytest.fail(f"the shared test audio is missing: expected {path} (../shared/audio beside the repo)")
    pcm, rate = sf.read(path, dtype="int16")
    assert rate == 16000 and pcm.ndim == 1
    return np.asarray(pcm, dtype=np.int16)
