"""Where the repository, the shared test audio and the test checkpoint are, for the tests, the
attack probes and the benchmarks (each run from the repository root or with it on the path)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: ``../shared/audio`` beside the repository: jfk.flac, silero_test.wav (not in git)
SHARED_AUDIO = REPO.parent / "shared" / "audio"
#: what ``make model_cache/test-model/config.json`` builds (random weights: its words are noise)
TEST_MODEL = REPO / "model_cache" / "test-model"
