"""Text in (issue 36) on the test checkpoint: the runner's text rows equal transformers' own
``SeamlessM4Tv2Model.generate(input_ids=..., tgt_lang=...)`` on each text alone, text and speech,
alone, batched together, and batched with speech segments in one ``run``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.reference import Reference, hf_generate, hf_generate_text, plain_reference
from tests.support.runner_inputs import NO_AUDIO, TEXTS, VOCODER_MODES, text_input, vocoder_mode
from translate_svc.model.runner import SeamlessRunner
from translate_svc.model.stages.decoder import TextCap
from translate_svc.model.stages.seamless import SeamlessStages
from translate_svc.model_api.requests import TEXT_CHARS_PER_SECOND, ModelInput, SourceText

pytestmark = [pytest.mark.integration, pytest.mark.slow(20)]


@pytest.fixture(scope="module")
def reference(test_model_dir: Path) -> Reference:
    return plain_reference(test_model_dir)


def assert_text_equals_generate(
    reference: Reference, item: ModelInput, out: Any, label: str, cap: int | None = None
) -> None:
    assert item.text is not None
    assert set(out.texts) == set(item.targets) and out.transcript is None, label
    for lang in item.targets:
        text, wave = hf_generate_text(reference, item.text.text, item.text.language, lang, item.speech, cap)
        assert out.texts[lang] == text, f"{label}: text differs for {lang}"
        if item.speech:
            got = out.waveforms[lang]
            assert got.shape == wave.shape, f"{label}: waveform length differs for {lang}"
            np.testing.assert_allclose(got, wave, atol=1e-4, err_msg=f"{label} {lang}")
        else:
            assert lang not in out.waveforms


def test_the_test_model_depends_on_the_text(runner: SeamlessRunner) -> None:
    """Otherwise the parity would prove nothing: different texts give different speech."""
    outs = runner.run([text_input(t, src, ("spa",)) for t, src in TEXTS])
    assert len({o.waveforms["spa"].tobytes() for o in outs}) == len(TEXTS)


def test_texts_in_two_targets_equal_generate_alone_and_batched(runner: SeamlessRunner, reference: Reference) -> None:
    items = [text_input(t, src, ("spa", "fra"), speech=True) for t, src in TEXTS]
    batched = runner.run(items)
    for k, (item, out) in enumerate(zip(items, batched, strict=True)):
        assert_text_equals_generate(reference, item, out, f"text {k} batched")
    alone = runner.run([items[1]])[0]
    assert_text_equals_generate(reference, items[1], alone, "text 1 alone")
    assert runner.stages.model.current_modality == "speech"  # restored for the segments that follow


def test_text_rows_and_speech_segments_in_one_batch_each_equal_generate(
    runner: SeamlessRunner, reference: Reference, shared_audio: Path
) -> None:
    """What the engine hands the runner: a batch mixing segments and texts, speech on and off,
    different voices; every row as generate gives it alone."""
    from tests.support.speech import read_16k

    audio = read_16k(shared_audio / "jfk.flac")
    seg_a, seg_b = audio[int(0.3 * 16000) : int(2.3 * 16000)], audio[int(3.3 * 16000) : int(4.4 * 16000)]
    items = [
        ModelInput(seg_a, ("spa",), "eng", speech=True),
        text_input(TEXTS[0][0], "eng", ("fra", "spa"), speech=True),
        ModelInput(seg_b, ("fra", "deu"), None, speech=True),
        text_input(TEXTS[2][0], "spa", ("deu",), speech=False),
    ]
    outs = runner.run(items)
    for k in (1, 3):
        assert_text_equals_generate(reference, items[k], outs[k], f"text {k} among segments")
    for k in (0, 2):
        for lang in items[k].targets:
            text, wave = hf_generate(reference, items[k].audio, lang)
            assert outs[k].texts[lang] == text
            np.testing.assert_allclose(outs[k].waveforms[lang], wave, atol=1e-4)
    transcript, _ = hf_generate(reference, seg_a, "eng", speech=False)
    assert outs[0].transcript == transcript


def test_text_rows_capped_at_their_own_bound_equal_generate_with_that_bound(
    test_model_dir: Path, reference: Reference
) -> None:
    """The runaway-decode cap on text rows: tokens per stand-in second (characters /
    TEXT_CHARS_PER_SECOND) plus base, per row, equal to generate(text_max_new_tokens=that bound)."""
    capped = SeamlessRunner(SeamlessStages(test_model_dir, device="cpu", dtype="float32", text_cap=TextCap(3.0, 1)))
    items = [text_input(t, src, ("spa", "fra"), speech=True) for t, src in TEXTS]
    caps = [capped.stages.decoder.max_new_tokens(len(t) / TEXT_CHARS_PER_SECOND) for t, _ in TEXTS]
    assert len(set(caps)) > 1 and min(caps) < 16
    outs = capped.run(items)
    uncapped = SeamlessRunner(SeamlessStages(test_model_dir, device="cpu", dtype="float32")).run(items)
    assert any(
        o.waveforms[lang].shape != u.waveforms[lang].shape
        for o, u in zip(outs, uncapped, strict=True)
        for lang in ("spa", "fra")
    ), "no cap changed any row: this test would not show the cap is applied"
    for k, (item, out, cap) in enumerate(zip(items, outs, caps, strict=True)):
        assert_text_equals_generate(reference, item, out, f"capped text {k}", cap)


def test_a_text_input_refuses_what_text_has_not() -> None:
    with pytest.raises(ValueError, match="no transcript"):
        ModelInput(NO_AUDIO, ("spa",), "eng", text=SourceText("hi", "eng"))
    with pytest.raises(ValueError, match="no audio"):
        ModelInput(np.ones(16, np.float32), ("spa",), None, text=SourceText("hi", "eng"))


#: a text whose French units hold the vocoder's pad id (checked below): generate alone cuts its
#: waveform short by the units it counts as padding, and every vocoder mode must cut it the same
PAD_UNITS_TEXT = "The meeting moved to Thursday at nine."


@pytest.mark.parametrize(("batched_vocoder", "buckets"), VOCODER_MODES)
def test_units_holding_the_pad_id_are_cut_as_generate_cuts_them_in_every_vocoder_mode(
    runner: SeamlessRunner, reference: Reference, batched_vocoder: bool, buckets: bool
) -> None:
    seen: list[int] = []
    vocode = runner.stages.vocode

    def spy(units, unit_lens, langs, speakers):  # type: ignore[no-untyped-def]
        pad = runner.stages.model.config.t2u_pad_token_id
        seen.extend(int((units[r, :n] == pad).sum()) for r, n in enumerate(unit_lens))
        return vocode(units, unit_lens, langs, speakers)

    items = [text_input(PAD_UNITS_TEXT, "eng", ("fra",)), text_input(TEXTS[1][0], "eng", ("fra", "spa"))]
    runner.stages.vocode = spy  # type: ignore[method-assign]
    try:
        with vocoder_mode(runner, batched_vocoder, buckets):
            outs = runner.run(items)
    finally:
        del runner.stages.vocode
    assert seen[0] > 0, "the French units hold no pad id: this test would not test the cut"
    for k, (item, out) in enumerate(zip(items, outs, strict=True)):
        assert_text_equals_generate(reference, item, out, f"text {k}")
