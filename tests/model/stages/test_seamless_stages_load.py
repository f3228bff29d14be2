"""The stages' bundle as it loads (model/stages/seamless.py; its own test module since issue 89
item 4) on the test checkpoint, CPU: what the card says comes from the checkpoint's own generation
config; the lengths are padded to buckets except where each row runs alone (reduced precision on
CPU) or the settings turn them off; detection means the identifier's languages that the decoder
can write, and is refused without one. No decode runs; nothing about words."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from translate_svc.model.stages.seamless import SeamlessStages
from translate_svc.types import ModelInfo

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stages(test_model_dir: Path) -> SeamlessStages:
    return SeamlessStages(test_model_dir, device="cpu", dtype="float32")


class Identifier:
    """A language identifier that picks among three codes, one the checkpoint cannot write."""

    languages = frozenset({"eng", "spa", "tlh"})
    name = "fake-lid"
    info = ModelInfo("fake-lid", "r1", True)

    def __init__(self) -> None:
        self.asked: list[list[tuple[str, ...]]] = []

    def identify(self, audios: Sequence[np.ndarray], candidates: Sequence[tuple[str, ...]]) -> list[dict[str, float]]:
        self.asked.append(list(candidates))
        return [{c[0]: 1.0} for c in candidates]


def test_the_card_is_read_from_the_checkpoints_generation_config(stages: SeamlessStages, test_model_dir: Path) -> None:
    gen = json.loads((test_model_dir / "generation_config.json").read_text())
    text = set(gen["text_decoder_lang_to_code_id"])
    speech = text & set(gen["t2u_lang_code_to_id"]) & set(gen["vocoder_lang_code_to_id"])
    card = stages.card
    assert card.text_codes == text and card.speech_codes == speech and speech < text
    assert stages.text_lang_ids == gen["text_decoder_lang_to_code_id"]
    assert card.info.is_test_model and card.identifier is None
    assert card.num_speakers == stages.model.config.vocoder_num_spkrs


def test_float32_on_cpu_pads_to_buckets_and_runs_rows_together(stages: SeamlessStages) -> None:
    assert not stages.exact_rows
    assert stages.bucket is not None and stages.frame_bucket is not None
    assert [g.name for g in stages.graphed] == [
        "encoder",
        "t2u.chars",
        "t2u.units",
        "vocoder.durations",
        "vocoder.hifigan",
    ]


def test_buckets_off_leave_lengths_as_they_come_and_nothing_to_warm(test_model_dir: Path) -> None:
    plain = SeamlessStages(test_model_dir, device="cpu", dtype="float32", pad_shapes=False)
    assert plain.bucket is None and plain.frame_bucket is None
    assert plain.warm_speech(max_rows=2, longest_s=1.0) == 0


def test_reduced_precision_on_cpu_runs_each_row_alone_unbucketed(test_model_dir: Path) -> None:
    """In bfloat16 a padded batch rounds differently from the row alone: rows alone equal ``generate``."""
    bf16 = SeamlessStages(test_model_dir, device="cpu", dtype="bfloat16")
    assert bf16.exact_rows and bf16.bucket is None and bf16.frame_bucket is None


def test_detection_without_an_identifier_is_refused(stages: SeamlessStages) -> None:
    assert stages.detectable == ()
    with pytest.raises(RuntimeError, match="without an identifier"):
        stages.identify([np.zeros(1600, np.float32)], [()])


def test_any_language_means_those_the_identifier_picks_and_the_decoder_writes(test_model_dir: Path) -> None:
    identifier = Identifier()
    stages = SeamlessStages(test_model_dir, device="cpu", dtype="float32", identifier=identifier)
    assert stages.detectable == ("eng", "spa")  # "tlh" is not the checkpoint's
    assert stages.card.detectable_codes == {"eng", "spa"} and stages.card.identifier == identifier.info
    stages.identify([np.zeros(1600, np.float32)] * 2, [(), ("spa",)])
    assert identifier.asked == [[("eng", "spa"), ("spa",)]]
