"""Where the repository, the shared test audio and the test checkpoint are, for the tests, the
attack probes and the benchmarks (each run from the repository root or with it on the path)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: ``../shared/audio`` beside the repository: jfk.flac, silero_test.wav (not in git); on the lent
#: GPU machine, where ``../shared`` does not travel, ``TRANSLATE_SVC_SHARED_AUDIO`` names the copy
#: benchmarks/gpu/prepare.sh made (.gpu/audio)
SHARED_AUDIO = Path(os.environ.get("TRANSLATE_SVC_SHARED_AUDIO") or REPO.parent / "shared" / "audio")
#: what ``make model_cache/test-model/config.json`` builds (random weights: its words are noise)
TEST_MODEL = REPO / "model_cache" / "test-model"
