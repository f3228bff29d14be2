"""Comparing a model output made one way (the stepping decoder, the finish stage) with the same
input's output from a whole batch: tests/model/test_stepping.py and test_finish_stage.py."""

from __future__ import annotations

import numpy as np
import pytest

from translate_svc.model_api.requests import ModelOutput


def same(whole: ModelOutput, stepped: ModelOutput | None, words: bool = True) -> None:
    """``words``: the input asked for word timings (a whole batch times every row of a speech group
    where one input asks; a job finished alone times only its own rows where it asks)."""
    assert stepped is not None
    assert stepped.texts == whole.texts and stepped.transcript == whole.transcript
    assert stepped.waveforms.keys() == whole.waveforms.keys()
    for lang, wave in whole.waveforms.items():
        assert stepped.waveforms[lang].shape == wave.shape, lang
        np.testing.assert_allclose(stepped.waveforms[lang], wave, atol=1e-3)
    assert stepped.logprobs.keys() == whole.logprobs.keys()
    for lang, lp in whole.logprobs.items():
        assert stepped.logprobs[lang] == pytest.approx(lp, abs=1e-5)
    assert whole.transcript_logprob is not None
    assert stepped.transcript_logprob == pytest.approx(whole.transcript_logprob, abs=1e-5)
    if words:
        assert stepped.words == whole.words and stepped.transcript_words == whole.transcript_words
