"""The runner in bfloat16 on CPU (issue 46): what a GPU runs by default, proven where CPU torch can.

The reference is transformers' own ``SeamlessM4Tv2Model.generate`` on a plain model loaded in
bfloat16, given the same inputs as the runner gives its model (the processor's features cast to
bfloat16; text token ids as they are). Text is compared token for token; speech must have the
same length and stay within ``SPEECH_ATOL`` of generate's.

Batched equals alone because on CPU a reduced-precision runner runs each input, and each row's
text-to-unit, alone (``SeamlessStages.exact_rows``): in bfloat16 a padded batch rounds differently
from the row alone and a greedy token or a unit flips (see ``test_a_padded_bf16_batch_rounds_...``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoProcessor, SeamlessM4Tv2Model

from tests.support.reference import Reference, has_hooks, hf_generate, hf_generate_text
from tests.support.runner_inputs import TEXTS, commit_first, rows_of, step_input, text_input
from tests.support.speech import SHARED_FILES, read_16k, vad_segments
from translate_svc.model.runner import SeamlessRunner
from translate_svc.model.stages.seamless import SeamlessStages
from translate_svc.model_api.requests import ModelInput, ModelOutput, SimulTarget

pytestmark = [pytest.mark.integration, pytest.mark.slow(60)]

#: Speech tolerance: the same number of samples, and every sample within 1e-2 of generate's.
#: The vocoder runs in bfloat16 (8 significant bits: one step is 2**-8 ~ 0.004 for samples in
#: [0.5, 1)). With exact rows the runner does not pad the vocoder's lengths to buckets: on a CPU
#: with native bfloat16 (avx512_bf16) a padded convolution rounded samples up to 0.05 away. Measured
#: 0.0 (identical) on AVX2 and on avx512_bf16 CPUs (2026-11-25).
SPEECH_ATOL = 1e-2
SPANS = [(0.3, 2.3), (3.3, 4.4), (5.4, 7.7), (8.2, 10.6)]  # seconds of jfk.flac
LANGS = ("spa", "fra", "deu", "ita")


@pytest.fixture(scope="module")
def bf16(test_model_dir: Path) -> SeamlessRunner:
    return SeamlessRunner(SeamlessStages(test_model_dir, device="cpu", dtype="bfloat16"))


@pytest.fixture(scope="module")
def ref16(test_model_dir: Path) -> Reference:
    """transformers' plain model in bfloat16 (no hooks of ours) and its processor."""
    model = SeamlessM4Tv2Model.from_pretrained(test_model_dir, local_files_only=True, dtype=torch.bfloat16).eval()
    assert not has_hooks(model) and model.dtype == torch.bfloat16
    return Reference(model, AutoProcessor.from_pretrained(test_model_dir, local_files_only=True))


@pytest.fixture(scope="module")
def segments(shared_audio: Path) -> list[np.ndarray]:
    """The four jfk spans and every segment the server cuts from both shared files."""
    x = read_16k(shared_audio / "jfk.flac")
    out = [x[int(a * 16000) : int(b * 16000)] for a, b in SPANS]
    for name in SHARED_FILES:
        out += [e.samples for e in asyncio.run(vad_segments(read_16k(shared_audio / name)))]
    return out


def generate16(
    ref: Reference, audio: np.ndarray, lang: str, speech: bool = True, max_new_tokens: int | None = None
) -> tuple[str, np.ndarray | None]:
    """generate on one segment alone in bfloat16: its features cast as the runner casts them."""
    return hf_generate(ref, audio, lang, speech, max_new_tokens)


def assert_speech_close(got: np.ndarray, want: np.ndarray | None, label: str) -> None:
    assert want is not None and got.dtype == np.float32
    assert got.shape == want.shape, f"{label}: waveform length differs"
    np.testing.assert_allclose(got, want, rtol=0, atol=SPEECH_ATOL, err_msg=label)


def assert_same(a: ModelOutput, b: ModelOutput, label: str) -> None:
    """Two outputs of the same input: identical text, transcript and samples."""
    assert (a.texts, a.transcript) == (b.texts, b.transcript), label
    assert a.waveforms.keys() == b.waveforms.keys(), label
    for lang, wave in a.waveforms.items():
        assert np.array_equal(wave, b.waveforms[lang]), f"{label}: speech differs for {lang}"


def test_the_runner_really_runs_in_bfloat16_on_cpu(bf16: SeamlessRunner) -> None:
    stages = bf16.stages
    assert stages.device.type == "cpu" and stages.dtype == torch.bfloat16 and stages.exact_rows
    assert {p.dtype for p in stages.model.parameters()} == {torch.bfloat16}
    assert not stages._vocoder.batched


def test_segments_equal_bf16_generate_alone_and_in_one_batch(
    bf16: SeamlessRunner, ref16: Reference, segments: list[np.ndarray]
) -> None:
    """Every segment, one to three targets (mixed languages) and the transcript, in one batch:
    text and transcript equal generate's in bfloat16, speech within ``SPEECH_ATOL``, and the
    batched output is the output of the segment alone, sample for sample."""
    items = [
        ModelInput(a, tuple(LANGS[(k + j) % len(LANGS)] for j in range(1 + k % 3)), "eng", speaker_id=k % 2)
        for k, a in enumerate(segments)
    ]
    assert len({o.texts[i.targets[0]] for i, o in zip(items, bf16.run(items[:4]), strict=False)}) >= 3
    batched = bf16.run(items)
    for k, (item, out) in enumerate(zip(items, batched, strict=True)):
        assert_same(out, bf16.run([item])[0], f"segment {k} batched vs alone")
        assert out.transcript == generate16(ref16, item.audio, "eng", speech=False)[0], f"segment {k}"
        for lang in item.targets:
            text, wave = generate16(ref16, item.audio, lang)
            assert out.texts[lang] == text, f"segment {k}: text differs for {lang}"
            if item.speaker_id == 0:  # generate speaks with voice 0
                assert_speech_close(out.waveforms[lang], wave, f"segment {k} {lang}")


def test_text_rows_equal_bf16_generate_alone_and_batched_with_a_segment(
    bf16: SeamlessRunner, ref16: Reference, segments: list[np.ndarray]
) -> None:
    items = [text_input(t, src, ("spa", "fra") if k % 2 else ("deu",)) for k, (t, src) in enumerate(TEXTS)]
    segment = ModelInput(segments[0], ("ita",), "eng")
    *batched, seg_out = bf16.run([*items, segment])
    assert_same(seg_out, bf16.run([segment])[0], "segment batched with texts")
    for k, (item, out) in enumerate(zip(items, batched, strict=True)):
        assert item.text is not None
        assert_same(out, bf16.run([item])[0], f"text {k} batched vs alone")
        for lang in item.targets:
            text, wave = hf_generate_text(ref16, item.text.text, item.text.language, lang)
            assert out.texts[lang] == text, f"text {k}: text differs for {lang}"
            assert_speech_close(out.waveforms[lang], wave, f"text {k} {lang}")


def test_steps_equal_bf16_generate_and_batched_rows_equal_each_alone(
    bf16: SeamlessRunner, ref16: Reference, segments: list[np.ndarray]
) -> None:
    """A step with nothing committed decodes generate's text; a committed prefix of k tokens
    speaks what generate speaks when its text stops after them (``text_max_new_tokens=k+1``);
    a batch of steps (prefix, text only, final, another voice) gives each row as it is alone."""
    simul = bf16.retranslator
    audio, lang, plain, k = next(
        (a, lang, row, next(i for i in row.word_starts if i > 0))
        for a in segments
        for lang in LANGS
        for row in rows_of(simul.retranslate([step_input(a, SimulTarget(lang))])[0])
        if any(i > 0 for i in row.word_starts)
    )
    assert plain.text == generate16(ref16, audio, lang, speech=False)[0]
    (spoken,) = rows_of(
        simul.retranslate([step_input(audio, SimulTarget(lang), min_units=1)], commit=commit_first(k))[0]
    )
    assert spoken.committed == plain.token_ids[:k] and spoken.chunk is not None
    assert_speech_close(spoken.chunk, generate16(ref16, audio, lang, max_new_tokens=k + 1)[1], "chunk")

    inputs = [
        step_input(audio, SimulTarget(lang, plain.token_ids[:k]), SimulTarget("fra"), min_units=1),
        step_input(segments[1], SimulTarget("ita"), speech=False),
        step_input(segments[3], SimulTarget("deu"), speaker_id=1, final=True),
    ]
    batched = bf16.run(inputs)
    for n, (item, out) in enumerate(zip(inputs, batched, strict=True)):
        for row, alone in zip(rows_of(out), rows_of(bf16.run([item])[0]), strict=True):
            assert (row.token_ids, row.committed, row.chunk_units) == (
                alone.token_ids, alone.committed, alone.chunk_units
            ), f"step {n} {row.language}"  # fmt: skip
            assert (row.chunk is None) == (alone.chunk is None)
            if row.chunk is not None and alone.chunk is not None:
                assert np.array_equal(row.chunk, alone.chunk), f"step {n} {row.language}"
        for row in rows_of(out):
            if not row.committed:
                assert row.text == generate16(ref16, item.audio, row.language, speech=False)[0]
    assert rows_of(batched[2])[0].chunk is not None  # the final step spoke


def test_a_padded_bf16_batch_rounds_differently_from_each_row_alone(
    test_model_dir: Path, bf16: SeamlessRunner, segments: list[np.ndarray]
) -> None:
    """Why ``exact_rows``: the speech encoder on a padded batch in bfloat16 is not each row's own
    output (fp32: within 1e-5, tests/model/test_runner.py), so a greedy token can flip."""
    stages = bf16.stages
    audios = segments[:4]
    with torch.inference_mode():
        speech = stages.speech_encoder
        batch = speech.encode(speech.features([stages.extract_features(a) for a in audios]))
        diffs = []
        for row, a in enumerate(audios):
            alone = speech.encode(speech.features([stages.extract_features(a)]))[0]
            diffs.append(float((batch[row, : len(alone)] - alone).abs().max()))
    assert max(diffs) > 1e-3, diffs
