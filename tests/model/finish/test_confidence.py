"""Confidence (issue 72): each row's and word's mean token log-probability, from both runners.

On the random test checkpoint the values are noise, so these assert structure, ranges, that the
exact runner (``generate``, model/stages/decoder.py ``ChosenLogprobs``) and the fast runner (the decode
loop, model/decode/step.py ``choose``) agree within a float32 tolerance, and that the values follow
the input (not a constant)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tests.support.speech import read_16k
from translate_svc.model.decode.batch import LoopDecoder
from translate_svc.model.runner import SeamlessRunner
from translate_svc.model.stages.seamless import SeamlessStages
from translate_svc.model_api.requests import ModelInput, ModelOutput, SourceText
from translate_svc.types import Term

pytestmark = pytest.mark.integration

#: float32 logits summed in another order (the loop's own attention vs ``generate``'s)
TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def pair(test_model_dir: Path) -> tuple[SeamlessRunner, SeamlessRunner]:
    stages = SeamlessStages(test_model_dir, device="cpu", dtype="float32")
    return SeamlessRunner(stages), SeamlessRunner(stages, LoopDecoder(stages.decoder, stages.processor, slots=3))


@pytest.fixture(scope="module")
def spans(shared_audio: Path) -> list[np.ndarray]:
    x = read_16k(shared_audio / "jfk.flac")
    y = read_16k(shared_audio / "silero_test.wav")
    cuts = [(x, 0.3, 2.3), (x, 5.4, 7.7), (y, 0.0, 3.0)]
    return [a[int(s * 16000) : int(e * 16000)] for a, s, e in cuts]


def values(out: ModelOutput) -> list[float]:
    """Every confidence value of an output: transcript, translations, words."""
    got = [] if out.transcript_logprob is None else [out.transcript_logprob]
    got += list(out.logprobs.values())
    for words in (out.transcript_words, *out.words.values()):
        got += [w.logprob for w in words if w.logprob is not None]
    return got


def check_structure(out: ModelOutput, *, transcript: bool, words: bool) -> None:
    assert (out.transcript_logprob is not None) == transcript
    assert out.logprobs.keys() == out.texts.keys()
    for v in values(out):
        assert math.isfinite(v) and v <= 0.0
    if words:
        assert out.transcript_words or not out.transcript
        for timed in (out.transcript_words, *out.words.values()):
            assert all(w.logprob is not None for w in timed)


def test_rows_and_words_carry_their_mean_token_logprob(
    pair: tuple[SeamlessRunner, SeamlessRunner], spans: list[np.ndarray]
) -> None:
    exact, _ = pair
    items = [ModelInput(a, ("spa", "fra"), "eng", words=True) for a in spans]
    outs = exact.run(items)
    for out in outs:
        check_structure(out, transcript=True, words=True)
    for out in outs:  # the transcript's text tokens (OpenAI's logprobs): EOS left out of them
        assert out.transcript_tokens and all(math.isfinite(v) and v <= 0.0 for _, v in out.transcript_tokens)
        assert "".join(t for t, _ in out.transcript_tokens).strip() == out.transcript.strip()  # type: ignore[union-attr]
    # the values follow the input: different speech, different confidence
    assert len({out.transcript_logprob for out in outs}) == len(outs)
    assert len({out.logprobs["spa"] for out in outs}) == len(outs)


def test_the_fast_runner_gives_the_exact_runners_logprobs(
    pair: tuple[SeamlessRunner, SeamlessRunner], spans: list[np.ndarray]
) -> None:
    exact, fast = pair
    keep = (Term("the", keep=True), Term("and", weight=6.0))
    items = [
        *(ModelInput(a, ("spa", "fra"), "eng", words=k % 2 == 0) for k, a in enumerate(spans)),
        ModelInput(spans[0], ("spa", "deu"), "eng", terms=keep),  # host processors: the raw values still
        ModelInput(np.zeros(0, np.float32), ("spa",), text=SourceText("hello there my friend", "eng")),
    ]
    for w, g in zip(exact.run(items), fast.run(items), strict=True):
        assert g.texts == w.texts and g.transcript == w.transcript
        check_structure(g, transcript=w.transcript is not None, words=False)
        a, b = values(w), values(g)
        assert len(a) == len(b) and a
        np.testing.assert_allclose(b, a, atol=TOLERANCE, rtol=0)


def test_the_decoders_token_values_are_the_models_log_softmax(
    pair: tuple[SeamlessRunner, SeamlessRunner], spans: list[np.ndarray]
) -> None:
    """Each chosen token's value is log_softmax of the model's logits at that step, re-computed here
    by one teacher-forced pass of the text decoder over the decoded sequence."""
    import torch

    from translate_svc.model.inputs import features_of
    from translate_svc.model_api.rows import plan_rows

    exact, _ = pair
    stages = exact.stages
    items = [ModelInput(spans[1], ("spa",), "eng")]
    with torch.inference_mode():
        batch = features_of(stages, items)
        enc = stages.speech_encoder.encode(batch)
        plan = plan_rows(items)
        index = torch.zeros(len(plan), dtype=torch.long)
        row_enc, row_mask = enc.index_select(0, index), batch.mask.index_select(0, index)
        seqs = stages.decoder.decode(row_enc, row_mask, plan)
        got = stages.decoder.last_logprobs
        sub = stages.model._compute_sub_sample_lengths_from_attention_mask(row_mask)
        from translate_svc.model.stages.seamless import _new_attention_mask

        hidden = stages.model.text_decoder(
            input_ids=seqs,
            encoder_hidden_states=row_enc,
            encoder_attention_mask=_new_attention_mask(row_enc, sub),
        ).last_hidden_state
        logp = stages.model.lm_head(hidden).float().log_softmax(-1)
    for r, row in enumerate(seqs.tolist()):
        n = len(got[r])
        assert n >= 1
        want = [float(logp[r, 1 + t, row[2 + t]]) for t in range(n)]  # position p predicts token p + 1
        np.testing.assert_allclose(got[r], want, atol=TOLERANCE, rtol=0)
