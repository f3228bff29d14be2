"""The model runner on the test checkpoint: encode once, per-row languages, batching changes nothing."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from translate_svc.audio.resample import resample
from translate_svc.model.seamless import ModelInput, SeamlessRunner
from translate_svc.model.shapes import bucket_length


@pytest.fixture(scope="module")
def speech(shared_audio: Path) -> list[np.ndarray]:
    """Four spans of jfk.flac at 16 kHz, of different lengths (so batches are padded)."""
    audio, rate = sf.read(shared_audio / "jfk.flac", dtype="float32", always_2d=True)
    x = resample(audio.mean(axis=1), rate, 16000)
    spans = [(0.3, 2.3), (3.3, 4.4), (5.4, 7.7), (8.2, 10.6)]
    return [x[int(a * 16000) : int(b * 16000)] for a, b in spans]


def hf_generate(runner: SeamlessRunner, audio: np.ndarray, lang: str, speech: bool = True):  # type: ignore[no-untyped-def]
    """transformers' own SeamlessM4Tv2Model.generate on one segment: the reference."""
    p, m = runner.processor, runner.model
    feats = p(audio=audio, sampling_rate=16000, return_tensors="pt")
    with torch.inference_mode():
        if not speech:
            out = m.generate(**feats, tgt_lang=lang, generate_speech=False)
            return p.decode(out.sequences[0], skip_special_tokens=True), None
        out = m.generate(**feats, tgt_lang=lang, return_intermediate_token_ids=True)
    wave = out.waveform[0, : int(out.waveform_lengths.reshape(-1)[0])].float().numpy()
    return p.decode(out.sequences[0], skip_special_tokens=True), wave


#: (batched vocoder, length buckets): CPU's default, CUDA's default, and the other two
VOCODER_MODES = [(False, True), (True, False), (True, True), (False, False)]


@contextlib.contextmanager
def vocoder_mode(runner: SeamlessRunner, batched: bool, buckets: bool) -> Iterator[list[int]]:
    """Per-row (CPU default) or one padded, masked call for all rows (what CUDA does); with or
    without padding units and frames up to length buckets (CPU default)."""
    rows: list[int] = []
    hook = runner.model.vocoder.register_forward_hook(
        lambda mod, args, kwargs, out: rows.append(out[0].shape[0]), with_kwargs=True
    )
    voc = runner._vocoder
    saved = voc.batched, voc.max_padding, voc.bucket
    voc.batched, voc.max_padding, voc.bucket = batched, 1000.0, bucket_length if buckets else None
    try:
        yield rows
    finally:
        voc.batched, voc.max_padding, voc.bucket = saved
        hook.remove()


def test_the_test_model_depends_on_its_input(runner: SeamlessRunner, speech: list[np.ndarray]) -> None:
    """Otherwise parity would prove nothing: different audio must give different output."""
    outs = runner.run([ModelInput(a, ("spa",), None, speech=False) for a in speech])
    assert len({o.texts["spa"] for o in outs}) >= 3


@pytest.mark.parametrize(("batched_vocoder", "buckets"), VOCODER_MODES)
def test_batched_mixed_languages_equal_generate_on_each_segment_alone(
    runner: SeamlessRunner, speech: list[np.ndarray], batched_vocoder: bool, buckets: bool
) -> None:
    targets = [("spa",), ("fra", "deu"), ("deu",), ("ita", "spa", "fra")]
    items = [ModelInput(a, t, "eng", speech=True, speaker_id=0) for a, t in zip(speech, targets, strict=True)]
    with vocoder_mode(runner, batched_vocoder, buckets):
        outs = runner.run(items)
    for item, out in zip(items, outs, strict=True):
        assert set(out.texts) == set(item.targets)
        for lang in item.targets:
            text, wave = hf_generate(runner, item.audio, lang)
            assert out.texts[lang] == text, f"text differs for {lang}"
            got = out.waveforms[lang]
            assert got.shape == wave.shape, f"waveform length differs for {lang}"
            np.testing.assert_allclose(got, wave, atol=1e-4)
        transcript, _ = hf_generate(runner, item.audio, "eng", speech=False)
        assert out.transcript == transcript


@pytest.mark.parametrize(("batched_vocoder", "buckets"), VOCODER_MODES)
def test_batching_and_padding_change_nothing(
    runner: SeamlessRunner, speech: list[np.ndarray], batched_vocoder: bool, buckets: bool
) -> None:
    """Also for the masked, batched vocoder that CUDA uses (model/vocoder.py), and with lengths
    padded to buckets (model/shapes.py); "alone" is the plain, unpadded call."""
    items = [ModelInput(a, ("spa", "fra"), "eng") for a in speech]
    with vocoder_mode(runner, batched_vocoder, buckets) as rows_per_call:
        batched = runner.run(items)
    assert max(rows_per_call) == (8 if batched_vocoder else 1)
    for item, b in zip(items, batched, strict=True):
        with vocoder_mode(runner, False, False):
            alone = runner.run([item])[0]
        assert b.texts == alone.texts and b.transcript == alone.transcript
        for lang in item.targets:
            np.testing.assert_allclose(b.waveforms[lang], alone.waveforms[lang], atol=1e-4)


def test_cpu_pads_vocoder_lengths_to_buckets_so_shapes_repeat(runner: SeamlessRunner, speech: list[np.ndarray]) -> None:
    """On CPU every new convolution shape costs a oneDNN kernel build: the vocoder only ever sees
    unit counts and frame counts from the bucket series."""
    widths: list[tuple[int, int]] = []
    voc = runner.model.vocoder
    hooks = [
        voc.register_forward_pre_hook(
            lambda mod, args, kwargs: widths.append(("units", kwargs["input_ids"].shape[1])), with_kwargs=True
        ),
        voc.hifi_gan.conv_post.register_forward_hook(lambda mod, args, out: widths.append(("samples", out.shape[-1]))),
        voc.hifi_gan.conv_pre.register_forward_hook(lambda mod, args, out: widths.append(("frames", out.shape[-1]))),
    ]
    try:
        assert runner.bucket is bucket_length  # the CPU default
        runner.run([ModelInput(a, ("spa",), None) for a in speech])
    finally:
        for h in hooks:
            h.remove()
    units = [w for kind, w in widths if kind == "units"]
    frames = [w for kind, w in widths if kind == "frames"]
    assert len(units) == len(frames) == len(speech)
    assert all(bucket_length(w) == w for w in units + frames), widths


def test_each_segment_is_encoded_once_for_all_its_languages(runner: SeamlessRunner, speech: list[np.ndarray]) -> None:
    calls: list[int] = []
    hook = runner.model.speech_encoder.register_forward_hook(
        lambda mod, args, kwargs, out: calls.append(out.last_hidden_state.shape[0]), with_kwargs=True
    )
    try:
        runner.run([ModelInput(a, ("spa", "fra", "deu"), "eng") for a in speech])
    finally:
        hook.remove()
    # one encoder call for the whole batch, one row per segment (not per language, not twice)
    assert calls == [len(speech)]


def test_a_row_in_another_language_really_uses_its_language(runner: SeamlessRunner, speech: list[np.ndarray]) -> None:
    """Mixed batch: the same audio into two languages starts each row with its own language token."""
    out = runner.run([ModelInput(speech[0], ("spa",), None), ModelInput(speech[0], ("fra",), None)])
    ref_spa, _ = hf_generate(runner, speech[0], "spa")
    ref_fra, _ = hf_generate(runner, speech[0], "fra")
    assert out[0].texts["spa"] == ref_spa and out[1].texts["fra"] == ref_fra
    assert ref_spa != ref_fra


def test_speaker_and_text_only_options(runner: SeamlessRunner, speech: list[np.ndarray]) -> None:
    text_only = runner.run([ModelInput(speech[1], ("spa",), None, speech=False)])[0]
    assert text_only.waveforms == {} and text_only.texts["spa"]
    a = runner.run([ModelInput(speech[1], ("spa",), None, speaker_id=0)])[0].waveforms["spa"]
    b = runner.run([ModelInput(speech[1], ("spa",), None, speaker_id=1)])[0].waveforms["spa"]
    assert a.shape == b.shape and not np.allclose(a, b)


def test_forced_lengths_fix_text_tokens_and_speech_duration(test_model_dir: Path, speech: list[np.ndarray]) -> None:
    """Benchmark mode: lengths follow the audio, not the (random) weights."""
    from translate_svc.model.forced import ForcedLengths

    forced = SeamlessRunner(test_model_dir, device="cpu", dtype="float32", forced=ForcedLengths(6.0, 50.0))
    items = [ModelInput(a, ("spa", "fra"), None) for a in speech]
    lengths: list[int] = []
    real_decode = forced.decode_text

    def spy(enc, mask, langs, audio_s):  # type: ignore[no-untyped-def]
        seqs = real_decode(enc, mask, langs, audio_s)
        eos = forced.model.generation_config.eos_token_id
        lengths.extend(int(((row[2:] != eos) & (row[2:] != 0)).sum()) for row in seqs)
        return seqs

    forced.decode_text = spy  # type: ignore[method-assign]
    outs = forced.run(items)
    seconds = [len(a) / 16000 for a in speech]
    assert lengths == [forced.forced.text_tokens(s) for s in seconds for _ in range(2)]  # type: ignore[union-attr]
    for s, out in zip(seconds, outs, strict=True):
        for wave in out.waveforms.values():
            assert abs(len(wave) / 16000 - s) <= 0.25 * s + 0.1


@pytest.mark.parametrize(("batched_vocoder", "buckets"), VOCODER_MODES[:2])
def test_rows_that_end_early_get_the_speech_they_get_alone(
    test_model_dir: Path, speech: list[np.ndarray], batched_vocoder: bool, buckets: bool
) -> None:
    """Rows whose text ends (EOS) before the batch's longest row: their EOS and padding must not
    reach text-to-unit. The random test model rarely stops before its length limit, so the forced
    lengths make the rows end at different lengths, as a real model's do."""
    from translate_svc.model.forced import ForcedLengths

    forced = SeamlessRunner(test_model_dir, device="cpu", dtype="float32", forced=ForcedLengths(4.0, 50.0))
    items = [ModelInput(a, ("spa", "fra"), "eng") for a in speech]
    ends: list[list[int]] = []
    real_decode = forced.decode_text

    def spy(enc, mask, langs, audio_s):  # type: ignore[no-untyped-def]
        seqs = real_decode(enc, mask, langs, audio_s)
        ends.append([int((row != 0).sum()) for row in seqs])
        return seqs

    forced.decode_text = spy  # type: ignore[method-assign]
    with vocoder_mode(forced, batched_vocoder, buckets):
        batched = forced.run(items)
    assert len(set(ends[0])) > 1  # the rows really end at different lengths
    for item, b in zip(items, batched, strict=True):
        with vocoder_mode(forced, False, False):
            alone = forced.run([item])[0]
        assert b.texts == alone.texts and b.transcript == alone.transcript
        for lang in item.targets:
            assert b.waveforms[lang].shape == alone.waveforms[lang].shape
            np.testing.assert_allclose(b.waveforms[lang], alone.waveforms[lang], atol=1e-4)
