"""The MMS-LID language identifier (model/stages/lid.py) on tiny random-weight checkpoints and real speech."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from translate_svc.errors import ModelNotFound
from translate_svc.model.stages.lid import MmsLid, validate_lid_dir
from translate_svc.model.testing.lid_checkpoint import build_lid_test_checkpoint

pytestmark = pytest.mark.unit

SEAMLESS_TEST_LANGUAGES = {"eng", "spa", "fra", "deu", "ita", "por", "jpn", "cmn"}
RATE = 16000
#: shorter than the default 10 s, to keep these tests quick on a CPU; the cropping is the same
MAX_SECONDS = 3.0


@pytest.fixture(scope="module")
def lid_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_lid_test_checkpoint(tmp_path_factory.mktemp("lid"), seed=0)


@pytest.fixture(scope="module")
def lid(lid_dir: Path) -> MmsLid:
    return MmsLid(lid_dir, max_seconds=MAX_SECONDS)


@pytest.fixture(scope="module")
def biased(tmp_path_factory: pytest.TempPathFactory) -> MmsLid:
    return MmsLid(
        build_lid_test_checkpoint(tmp_path_factory.mktemp("lid-spa"), seed=1, bias="spa"), max_seconds=MAX_SECONDS
    )


@pytest.fixture(scope="module")
def segments(shared_audio: Path) -> list[np.ndarray]:
    """Real speech of different lengths (silero-vad's first regions), one longer than max_seconds,
    one shorter than an encoder frame."""
    audio, rate = sf.read(shared_audio / "silero_test.wav", dtype="float32")
    assert rate == RATE
    spans = [(0.0, 2.0), (2.7, 4.7), (5.0, 6.9), (8.0, 9.1), (10.0, 15.0)]
    return [audio[int(a * RATE) : int(b * RATE)] for a, b in spans] + [audio[RATE : RATE + 100]]


def _label_probs(lid: MmsLid, audio: np.ndarray) -> dict[str, float]:
    """The checkpoint's own softmax over its labels, for one segment (no padding, no grouping)."""
    values = lid.feature_extractor([audio], sampling_rate=RATE, return_tensors="pt")["input_values"]
    with torch.inference_mode():
        probs = lid.model(values).logits.softmax(-1)[0].tolist()
    return {lid.model.config.id2label[i]: p for i, p in enumerate(probs)}


def test_labels_become_seamless_codes(lid: MmsLid) -> None:
    # zho -> cmn, ara and arb -> arb; haw (no SeamlessM4T language) stays itself
    assert lid.languages == SEAMLESS_TEST_LANGUAGES | {"arb", "haw"}
    assert not {"zho", "ara"} & lid.languages
    assert lid.info.is_test_model and "random weights" in lid.name
    assert lid.info.revision.startswith("sha256:")


@pytest.mark.parametrize("candidates", [("eng", "spa"), ("eng", "fra", "deu", "cmn"), ()])
def test_every_candidate_gets_a_probability_and_they_sum_to_one(
    lid: MmsLid, segments: list[np.ndarray], candidates: tuple[str, ...]
) -> None:
    scores = lid.identify(segments, [candidates] * len(segments))
    assert len(scores) == len(segments)
    for s in scores:
        assert set(s) == (set(candidates) or lid.languages)
        assert all(0.0 <= p <= 1.0 for p in s.values())
        assert sum(s.values()) == pytest.approx(1.0, abs=1e-9)


def test_a_batch_scores_each_segment_as_it_would_alone(lid: MmsLid, segments: list[np.ndarray]) -> None:
    candidates = [(), ("eng", "spa"), ("fra", "deu", "ita", "por"), (), ("cmn", "jpn", "arb"), ()]
    batch = lid.identify(segments, candidates)
    for audio, cands, together in zip(segments, candidates, batch, strict=True):
        alone = lid.identify([audio], [cands])[0]
        assert together.keys() == alone.keys()
        assert max(abs(together[k] - alone[k]) for k in alone) < 1e-5
    # the segments do get different answers, so the comparison above is not trivially true
    assert max(abs(batch[0][k] - batch[3][k]) for k in batch[0]) > 1e-3


def test_labels_of_one_language_add_up(lid: MmsLid, segments: list[np.ndarray]) -> None:
    audio = segments[0]
    p = _label_probs(lid, audio)
    got = lid.identify([audio, audio], [("arb", "eng"), ("cmn", "eng", "spa")])
    arb = p["ara"] + p["arb"]
    assert got[0]["arb"] == pytest.approx(arb / (arb + p["eng"]), abs=1e-5)
    assert got[1]["cmn"] == pytest.approx(p["zho"] / (p["zho"] + p["eng"] + p["spa"]), abs=1e-5)


def test_a_long_segment_is_judged_on_its_first_max_seconds(lid: MmsLid, segments: list[np.ndarray]) -> None:
    long = segments[4]
    assert lid.max_samples == MAX_SECONDS * RATE < len(long)
    whole, cropped = lid.identify([long, long[: lid.max_samples]], [(), ()])
    assert max(abs(whole[k] - cropped[k]) for k in whole) < 1e-6


def test_the_biased_checkpoint_always_picks_its_language(biased: MmsLid, segments: list[np.ndarray]) -> None:
    for candidates in [("spa", "eng"), ("eng", "fra", "spa", "deu"), ("cmn", "spa"), ()]:
        for scores in biased.identify(segments, [candidates] * len(segments)):
            assert max(scores, key=scores.__getitem__) == "spa"
            assert scores["spa"] > 0.99


@pytest.mark.parametrize("bad", ["xxx", "zho", "ara"])  # zho and ara are labels, not model codes
def test_a_candidate_it_cannot_pick_is_refused(lid: MmsLid, segments: list[np.ndarray], bad: str) -> None:
    with pytest.raises(ValueError, match=f"cannot pick {bad}"):
        lid.identify(segments[:2], [("eng",), ("eng", bad)])


def test_the_same_seed_builds_the_same_weights(tmp_path: Path, lid_dir: Path) -> None:
    def digest(path: Path) -> str:
        return hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()

    same = build_lid_test_checkpoint(tmp_path / "same", seed=0)
    other = build_lid_test_checkpoint(tmp_path / "other", seed=1)
    assert digest(same) == digest(lid_dir) != digest(other)
    with pytest.raises(ValueError, match="not one of the labels"):
        build_lid_test_checkpoint(tmp_path / "bad", bias="cmn")


def test_a_missing_directory_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match=r"does not exist.*translate-svc download-lid-model"):
        MmsLid(tmp_path / "nope")


@pytest.mark.parametrize("remove", ["config.json", "preprocessor_config.json", "model.safetensors"])
def test_an_incomplete_directory_says_what_is_missing(tmp_path: Path, lid_dir: Path, remove: str) -> None:
    d = Path(shutil.copytree(lid_dir, tmp_path / "lid"))
    (d / remove).unlink()
    with pytest.raises(ModelNotFound) as e:
        validate_lid_dir(d)
    assert f"missing {remove}" in str(e.value) and "translate-svc download-lid-model" in str(e.value)


def test_a_directory_of_another_model_is_refused(tmp_path: Path, lid_dir: Path) -> None:
    d = Path(shutil.copytree(lid_dir, tmp_path / "lid"))
    config = json.loads((d / "config.json").read_text())
    config["architectures"] = ["SeamlessM4Tv2Model"]
    (d / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelNotFound, match=r"no MMS-LID checkpoint.*download-lid-model"):
        validate_lid_dir(d)
