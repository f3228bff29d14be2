"""The model runner on the test checkpoint: encode once, per-row languages, batching changes nothing.

The reference everywhere is transformers' own ``SeamlessM4Tv2Model.generate`` on a plain model,
loaded apart from the runner, so none of the runner's hooks touch it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.support.reference import Reference, has_hooks, hf_generate, plain_reference
from tests.support.runner_inputs import VOCODER_MODES, vocoder_mode
from tests.support.speech import SHARED_FILES, read_16k, vad_segments
from translate_svc.model.runner import SeamlessRunner
from translate_svc.model.stages.seamless import SeamlessStages
from translate_svc.model.stages.shapes import bucket_length
from translate_svc.model_api.requests import ModelInput

pytestmark = [pytest.mark.integration, pytest.mark.slow(80)]  # seconds, for the schedule (conftest.py)


@pytest.fixture(scope="module")
def speech(shared_audio: Path) -> list[np.ndarray]:
    """Four spans of jfk.flac at 16 kHz, of different lengths (so batches are padded)."""
    x = read_16k(shared_audio / "jfk.flac")
    spans = [(0.3, 2.3), (3.3, 4.4), (5.4, 7.7), (8.2, 10.6)]
    return [x[int(a * 16000) : int(b * 16000)] for a, b in spans]


@pytest.fixture(scope="module")
def file_segments(shared_audio: Path) -> list[tuple[str, np.ndarray]]:
    """(label, samples) for every segment the server cuts from each shared file (its VAD and
    segmenter at the default settings, the whole clip fed at once as Translate does)."""
    out = []
    for name in SHARED_FILES:
        segs = asyncio.run(vad_segments(read_16k(shared_audio / name)))
        out += [(f"{name}[{k}] {e.start_ms}-{e.end_ms} ms", e.samples) for k, e in enumerate(segs)]
    return out


def fbank_frames(runner: SeamlessRunner, audio: np.ndarray) -> int:
    """The processor's fbank frame count before it pads an odd count by one frame (and masks it)
    and stacks frames in pairs."""
    f = runner.extract_features(audio)
    return 2 * len(f.values) - int(f.mask[-1] == 0)


@pytest.fixture(scope="module")
def reference(test_model_dir: Path) -> Reference:
    ref = plain_reference(test_model_dir)
    assert not has_hooks(ref.model)
    return ref


def test_the_test_model_depends_on_its_input(runner: SeamlessRunner, speech: list[np.ndarray]) -> None:
    """Otherwise parity would prove nothing: different audio must give different output."""
    outs = runner.run([ModelInput(a, ("spa",), None, speech=False) for a in speech])
    assert len({o.texts["spa"] for o in outs}) >= 3


@pytest.mark.parametrize(("batched_vocoder", "buckets"), VOCODER_MODES)
def test_batched_mixed_languages_equal_generate_on_each_segment_alone(
    runner: SeamlessRunner, reference: Reference, speech: list[np.ndarray], batched_vocoder: bool, buckets: bool
) -> None:
    targets = [("spa",), ("fra", "deu"), ("deu",), ("ita", "spa", "fra")]
    items = [ModelInput(a, t, "eng", speech=True, speaker_id=0) for a, t in zip(speech, targets, strict=True)]
    with vocoder_mode(runner, batched_vocoder, buckets):
        outs = runner.run(items)
    for item, out in zip(items, outs, strict=True):
        assert set(out.texts) == set(item.targets)
        for lang in item.targets:
            text, wave = hf_generate(reference, item.audio, lang)
            assert out.texts[lang] == text, f"text differs for {lang}"
            got = out.waveforms[lang]
            assert got.shape == wave.shape, f"waveform length differs for {lang}"
            np.testing.assert_allclose(got, wave, atol=1e-4)
        transcript, _ = hf_generate(reference, item.audio, "eng", speech=False)
        assert out.transcript == transcript


LANGS = ("spa", "fra", "deu", "ita")


def assert_equal_generate(reference: Reference, item: ModelInput, outs: dict[str, Any], label: str) -> None:
    """Each ModelOutput in ``outs`` (by name: "alone", "batched") equals generate on
    ``item.audio`` alone: text token for token (fp32 greedy), waveform of the same length within 1e-4."""
    for lang in item.targets:
        text, wave = hf_generate(reference, item.audio, lang, speech=item.speech)
        for how, out in outs.items():
            assert out.texts[lang] == text, f"{label} {how}: text differs for {lang}"
            if item.speech:
                got = out.waveforms[lang]
                assert got.shape == wave.shape, f"{label} {how}: waveform length differs for {lang}"
                np.testing.assert_allclose(got, wave, atol=1e-4, err_msg=f"{label} {how} {lang}")
    if item.transcript_language:
        transcript, _ = hf_generate(reference, item.audio, item.transcript_language, speech=False)
        for how, out in outs.items():
            assert out.transcript == transcript, f"{label} {how}: transcript differs"


def encoder_diffs(runner: SeamlessRunner, reference: Reference, audios: list[np.ndarray]) -> list[float]:
    """Per segment, max |diff| between the runner's encoder output for the padded batch of all
    ``audios`` and the plain model's speech encoder on that segment alone, over the segment's
    valid (unmasked) adaptor frames: what the decoders read."""
    with torch.inference_mode():
        speech = runner.stages.speech_encoder
        batch = speech.features([runner.stages.extract_features(a) for a in audios])
        enc, mask = speech.encode(batch), batch.mask
        valid = runner.stages.model._compute_sub_sample_lengths_from_attention_mask(mask).long().tolist()
        diffs = []
        for row, (audio, n) in enumerate(zip(audios, valid, strict=True)):
            f = reference.processor(audio=audio, sampling_rate=16000, return_tensors="pt")
            alone = reference.model.speech_encoder(
                input_features=f["input_features"], attention_mask=f["attention_mask"]
            ).last_hidden_state[0]
            diffs.append(float((enc[row, :n] - alone[:n]).abs().max()))
    return diffs


def odd_frame_span(runner: SeamlessRunner, audio: np.ndarray) -> np.ndarray:
    """``audio`` trimmed (one fbank hop at a time) until its fbank frame count is odd and the
    processor's own pad frame falls in an adaptor window that is not masked (stacked frame L-1 is
    in window (L-1+stride/2)//stride, valid up to (L-1)//stride): the case where that frame
    changes the output."""
    stride = runner.stages.model.config.adaptor_stride
    span = audio
    while not (
        fbank_frames(runner, span) % 2 and (len(runner.extract_features(span).values) - 1) % stride < stride // 2
    ):
        span = span[:-160]
    assert runner.extract_features(span).mask[-1] == 0  # alone, its last stacked frame is masked
    return span


def test_every_segment_of_the_shared_files_equals_generate_alone_and_in_one_batch(
    runner: SeamlessRunner, reference: Reference, file_segments: list[tuple[str, np.ndarray]]
) -> None:
    """Every segment the server would cut from both shared files, with odd and even fbank frame
    counts: alone and all in one padded batch, text, transcript and speech equal generate."""
    odd = [fbank_frames(runner, a) % 2 == 1 for _, a in file_segments]
    assert any(odd) and not all(odd), "the segments must include odd and even fbank frame counts"
    items = [ModelInput(a, (LANGS[k % len(LANGS)],), "eng") for k, (_, a) in enumerate(file_segments)]
    batched = runner.run(items)
    for (label, _), item, is_odd, b in zip(file_segments, items, odd, batched, strict=True):
        alone = runner.run([item])[0]
        name = f"{label} ({'odd' if is_odd else 'even'} frames)"
        assert_equal_generate(reference, item, {"alone": alone, "in one batch": b}, name)
    assert max(encoder_diffs(runner, reference, [a for _, a in file_segments])) <= 1e-4


def test_an_odd_frame_segment_equals_generate_alone_and_batched_with_a_longer_one(
    runner: SeamlessRunner, reference: Reference, speech: list[np.ndarray]
) -> None:
    """The processor pads an odd fbank frame count by one frame and masks that stacked frame; alone,
    the adaptor still reads the encoder's output there, so a batch must keep it (and zero only
    the frames the batch added)."""
    span = odd_frame_span(runner, speech[1])
    longer = speech[3]
    assert len(runner.extract_features(longer).values) > len(runner.extract_features(span).values)
    item, other = ModelInput(span, ("spa",), "eng"), ModelInput(longer, ("fra",), "eng")
    alone = runner.run([item])[0]
    first, second = runner.run([item, other])
    assert_equal_generate(reference, item, {"alone": alone, "batched": first}, "odd span")
    assert_equal_generate(reference, other, {"batched": second}, "longer span")
    assert max(encoder_diffs(runner, reference, [span])) <= 1e-5
    assert max(encoder_diffs(runner, reference, [span, longer])) <= 1e-4


def test_adaptor_padding_is_exact_with_nonzero_layer_norm_biases(
    test_model_dir: Path, speech: list[np.ndarray]
) -> None:
    """The test checkpoint's adaptor layer norms have zero bias, so zeroing a frame before them or
    after them looks the same; with non-zero biases (trained weights) a zeroed frame becomes the
    norm's bias, which the convolution's own zero padding is not. Give both models the same ones."""
    runner = SeamlessRunner(SeamlessStages(test_model_dir, device="cpu", dtype="float32"))
    ref = plain_reference.__wrapped__(test_model_dir)  # a fresh copy: its weights change here
    ours = dict(runner.stages.model.speech_encoder.adapter.named_parameters())  # type: ignore[union-attr]
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in ref.model.speech_encoder.adapter.named_parameters():  # type: ignore[union-attr]
            if name.endswith("layer_norm.bias"):
                param.copy_(torch.randn(param.shape, generator=gen))
                ours[name].copy_(param)
    spans = [odd_frame_span(runner, speech[1]), speech[0], speech[2], speech[3]]
    assert max(encoder_diffs(runner, ref, spans)) <= 1e-4
    items = [ModelInput(a, (lang,), None, speech=False) for a, lang in zip(spans, LANGS, strict=True)]
    for k, (item, out) in enumerate(zip(items, runner.run(items), strict=True)):
        assert_equal_generate(ref, item, {"batched": out}, f"span {k}")


@pytest.mark.parametrize(("batched_vocoder", "buckets"), VOCODER_MODES)
def test_batching_and_padding_change_nothing(
    runner: SeamlessRunner, speech: list[np.ndarray], batched_vocoder: bool, buckets: bool
) -> None:
    """Also for the masked, batched vocoder that CUDA uses (model/stages/vocoder.py), and with lengths
    padded to buckets (model/stages/shapes.py); "alone" is the plain, unpadded call."""
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
    voc = runner.stages.model.vocoder
    hooks = [
        # the vocoder's input units: its unit embedding's (model/stages/vocoder.py runs its own forward)
        voc.unit_embedding.register_forward_pre_hook(lambda mod, args: widths.append(("units", args[0].shape[1]))),
        voc.hifi_gan.conv_post.register_forward_hook(lambda mod, args, out: widths.append(("samples", out.shape[-1]))),
        voc.hifi_gan.conv_pre.register_forward_hook(lambda mod, args, out: widths.append(("frames", out.shape[-1]))),
    ]
    try:
        assert runner.stages.bucket is bucket_length  # the CPU default
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
    # the encoder's first layer (the stage walks the encoder's layers itself: model/stages/encoders.py)
    hook = runner.stages.model.speech_encoder.feature_projection.register_forward_hook(
        lambda mod, args, kwargs, out: calls.append(out.shape[0]), with_kwargs=True
    )
    try:
        runner.run([ModelInput(a, ("spa", "fra", "deu"), "eng") for a in speech])
    finally:
        hook.remove()
    # one encoder call for the whole batch, one row per segment (not per language, not twice)
    assert calls == [len(speech)]


def test_a_row_in_another_language_really_uses_its_language(
    runner: SeamlessRunner, reference: Reference, speech: list[np.ndarray]
) -> None:
    """Mixed batch: the same audio into two languages starts each row with its own language token."""
    out = runner.run([ModelInput(speech[0], ("spa",), None), ModelInput(speech[0], ("fra",), None)])
    ref_spa, _ = hf_generate(reference, speech[0], "spa")
    ref_fra, _ = hf_generate(reference, speech[0], "fra")
    assert out[0].texts["spa"] == ref_spa and out[1].texts["fra"] == ref_fra
    assert ref_spa != ref_fra


def test_speaker_and_text_only_options(runner: SeamlessRunner, speech: list[np.ndarray]) -> None:
    text_only = runner.run([ModelInput(speech[1], ("spa",), None, speech=False)])[0]
    assert text_only.waveforms == {} and list(text_only.texts) == ["spa"]  # (its text may be empty)
    a = runner.run([ModelInput(speech[1], ("spa",), None, speaker_id=0)])[0].waveforms["spa"]
    b = runner.run([ModelInput(speech[1], ("spa",), None, speaker_id=1)])[0].waveforms["spa"]
    assert a.shape == b.shape and not np.allclose(a, b)


def test_forced_lengths_fix_text_tokens_and_speech_duration(test_model_dir: Path, speech: list[np.ndarray]) -> None:
    """Benchmark mode: lengths follow the audio, not the (random) weights."""
    from translate_svc.model.stages.forced import ForcedLengths

    forced = SeamlessRunner(
        SeamlessStages(test_model_dir, device="cpu", dtype="float32", forced=ForcedLengths(6.0, 50.0))
    )
    items = [ModelInput(a, ("spa", "fra"), None) for a in speech]
    lengths: list[int] = []
    real_decode = forced.stages.decoder.generate

    def spy(enc, mask, rows, said=None):  # type: ignore[no-untyped-def]
        seqs = real_decode(enc, mask, rows, said)
        eos = forced.stages.model.generation_config.eos_token_id
        lengths.extend(int(((row[2:] != eos) & (row[2:] != 0)).sum()) for row in seqs)
        return seqs

    forced.stages.decoder.generate = spy  # type: ignore[method-assign]
    outs = forced.run(items)
    seconds = [len(a) / 16000 for a in speech]
    assert lengths == [forced.stages.forced.text_tokens(s) for s in seconds for _ in range(2)]  # type: ignore[union-attr]
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
    from translate_svc.model.stages.forced import ForcedLengths

    forced = SeamlessRunner(
        SeamlessStages(test_model_dir, device="cpu", dtype="float32", forced=ForcedLengths(4.0, 50.0))
    )
    items = [ModelInput(a, ("spa", "fra"), "eng") for a in speech]
    ends: list[list[int]] = []
    real_decode = forced.stages.decoder.generate

    def spy(enc, mask, rows, said=None):  # type: ignore[no-untyped-def]
        seqs = real_decode(enc, mask, rows, said)
        ends.append([int((row != 0).sum()) for row in seqs])
        return seqs

    forced.stages.decoder.generate = spy  # type: ignore[method-assign]
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


def test_rows_capped_at_their_own_token_bound_equal_generate_with_that_bound(
    test_model_dir: Path, reference: Reference, speech: list[np.ndarray]
) -> None:
    """The runaway-decode cap: each row stops at its own bound (tokens per audio second + base)
    inside one batch, and equals generate(text_max_new_tokens=that bound) alone, speech included."""
    from translate_svc.model.stages.decoder import TextCap

    capped = SeamlessRunner(SeamlessStages(test_model_dir, device="cpu", dtype="float32", text_cap=TextCap(3.0, 1)))
    caps = [capped.stages.decoder.max_new_tokens(len(a) / 16000) for a in speech]
    assert len(set(caps)) > 1 and max(caps) < 16  # below the model's own 16, and different per row
    items = [ModelInput(a, ("spa", "fra"), None, speech=True) for a in speech]
    outs = capped.run(items)
    uncapped = SeamlessRunner(SeamlessStages(test_model_dir, device="cpu", dtype="float32")).run(items)
    assert any(o.texts != u.texts for o, u in zip(outs, uncapped, strict=True))  # the caps bind
    for item, out, cap in zip(items, outs, caps, strict=True):
        for lang in item.targets:
            text, wave = hf_generate(reference, item.audio, lang, max_new_tokens=cap)
            assert out.texts[lang] == text
            got = out.waveforms[lang]
            assert got.shape == wave.shape
            np.testing.assert_allclose(got, wave, atol=1e-4)
