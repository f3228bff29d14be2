"""The word timer's own reading of a decoded row (model/finish/aligner.py, issue 45; its own test
module since issue 89 item 4) on the test checkpoint's tokenizer: a row's text tokens end at its
EOS or padding, its words are grouped at the word-start pieces, each token gives text-to-unit the
characters the upstream counts, HiFi-GAN's samples per frame count are cached and grown, and a
speech call with rows that do not line up is refused. No model run; the timings against
transformers' own durations are tests/model/finish/test_word_timings.py's."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from translate_svc.model.finish.aligner import WordTimer
from translate_svc.model.finish.timings import upsampled_samples
from translate_svc.model.stages.seamless import SeamlessStages

pytestmark = pytest.mark.integration

START, EOS, PAD, ENG = 3, 3, 0, 62  # the test checkpoint's decoder start is its EOS, as the full model's


@pytest.fixture(scope="module")
def timer(test_model_dir: Path) -> WordTimer:
    return WordTimer(SeamlessStages(test_model_dir, device="cpu", dtype="float32"))


def ids(timer: WordTimer, *pieces: str) -> list[int]:
    return list(timer.tokenizer.convert_tokens_to_ids(list(pieces)))


def test_a_rows_text_is_after_its_prompt_up_to_eos_or_padding(timer: WordTimer) -> None:
    text = ids(timer, "▁h", "i", "▁t", "o")
    assert timer.text_ids([START, ENG, *text, EOS, PAD, PAD]) == text
    assert timer.text_ids([START, ENG, *text, PAD]) == text
    assert timer.text_ids([START, ENG, *text]) == text  # cut at its cap: no EOS
    assert timer.text_ids([START, ENG, EOS]) == []


def test_words_start_at_the_word_start_pieces(timer: WordTimer) -> None:
    text = ids(timer, "▁h", "i", "▁t", "h", "e", "r", "e", ",", "▁y", "o", "u")
    assert timer.words_of(text) == [("hi", 0, 2), ("there,", 2, 8), ("you", 8, 11)]


def test_each_token_gives_text_to_unit_its_own_characters(timer: WordTimer) -> None:
    """``SeamlessM4Tv2Model._get_char_input_ids``' rule: the subword's length, the unknown token one."""
    a, word, comma = ids(timer, "a", "▁h", ",")
    assert [timer._chars(t) for t in (a, word, comma, 1)] == [1, 2, 1, 1]


def test_samples_per_frame_count_are_hifi_gans_and_grow_when_asked_for_more(timer: WordTimer) -> None:
    stages = timer.stages.vocoder_stages
    few = timer.samples_upto(3)
    assert few[:4] == upsampled_samples(3, stages)
    assert timer.samples_upto(2) is few  # already known: no recount
    more = timer.samples_upto(40)
    assert len(more) > 40 and more == upsampled_samples(len(more) - 1, stages)
    assert all(b > a for a, b in itertools.pairwise(more))


def test_speech_timings_need_one_waveform_durations_and_frames_per_row(timer: WordTimer) -> None:
    sequences = torch.tensor([[START, ENG, *ids(timer, "▁h", "i"), EOS]] * 2)
    with pytest.raises(ValueError, match="one waveform, durations and frames per row"):
        timer.speech(sequences, [np.zeros(320, np.float32)], torch.ones((2, 3), dtype=torch.long), [np.ones(3)] * 2)
