"""Word timings (issue 45) on the test checkpoint.

Translated words: recomputed here from transformers' own ``generate`` on each segment alone, with
forward hooks that read what its two duration predictors said (text-to-unit's per character, the
vocoder's per unit, rounded as ``modeling_seamless_m4t_v2`` rounds them) and HiFi-GAN's strides:
a word starts where the units of its first character start, in samples, and ends where its last
character's units end. The runner's words must be exactly those. Transcript words (cross-attention
alignment): ordered, not overlapping, inside their segment's span, on a real server. They are
paid only when asked (``OutputOptions.word_timings``): not asked, no alignment pass runs and no
word comes back.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.support.live_server import LiveServer
from tests.support.raw import raw_request
from tests.support.reference import plain_reference
from tests.support.speech import shared_pcm
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.client import AsyncTranslateClient
from translate_svc.model.finish.aligner import WordTimer
from translate_svc.model_api.requests import ModelInput

# async tests run on the session loop (pyproject: asyncio_mode auto, asyncio_default_test_loop_scope);
# no module-level asyncio mark: it would land on the sync tests too (a PytestWarning)
pytestmark = [pytest.mark.integration, pytest.mark.slow(40)]


def generate_with_durations(model_dir: Path, audio: np.ndarray | None, lang: str, text: str = "") -> dict[str, Any]:
    """``generate`` on one segment (or English ``text``) alone, and what its duration predictors said."""
    m, p = plain_reference(model_dir)
    seen: dict[str, torch.Tensor] = {}

    def t2u(module: Any, args: Any, kwargs: Any, out: torch.Tensor) -> None:
        dur = torch.clamp(torch.round(torch.expm1(out)).long(), min=1)
        seen["chars"] = dur.masked_fill(~kwargs["padding_mask"].bool(), 0)[0]

    def vocoder(module: Any, args: Any, out: torch.Tensor) -> None:
        seen["units"] = torch.clamp(torch.round(torch.expm1(out)).long(), min=1)[0]

    hooks = [
        m.t2u_model.model.decoder.duration_predictor.register_forward_hook(t2u, with_kwargs=True),
        m.vocoder.dur_predictor.register_forward_hook(vocoder),
    ]
    try:
        if audio is None:
            feats = p(text=text, src_lang="eng", return_tensors="pt")
        else:
            feats = p(audio=audio, sampling_rate=16000, return_tensors="pt")
        with torch.inference_mode():
            text_out = m.generate(**feats, tgt_lang=lang, generate_speech=False)
            wave = m.generate(**feats, tgt_lang=lang)[0][0].numpy()
    finally:
        for h in hooks:
            h.remove()
    seq = text_out.sequences[0].tolist()  # type: ignore[union-attr]
    return {"seq": seq, "wave": wave, **seen, "m": m, "p": p}


def expected_words(
    model_dir: Path, audio: np.ndarray | None, lang: str, text: str = ""
) -> tuple[list[tuple[str, int, int]], int]:
    got = generate_with_durations(model_dir, audio, lang, text)
    m, tokenizer = got["m"], got["p"].tokenizer
    gen = m.generation_config
    body = got["seq"][2:]
    ids = body[: next((i for i, t in enumerate(body) if t in (gen.eos_token_id, gen.pad_token_id)), len(body))]
    spoken = got["seq"][2:-1]  # generate speaks every token but the last (its EOS)
    chars = [1 if t == 1 else len(str(gen.id_to_text[str(t)])) for t in spoken]
    char_end = np.cumsum([0, *chars])
    unit_end = np.cumsum([0, *got["chars"].tolist()])
    frame_end = np.cumsum([0, *got["units"].tolist()])
    hop = 1
    for up in m.vocoder.hifi_gan.upsampler:
        assert int(up.kernel_size[0]) - 2 * int(up.padding[0]) == int(up.stride[0])  # each frame: stride samples
        hop *= int(up.stride[0])
    wave_len = len(got["wave"])

    def at(t: int) -> int:
        if t >= len(char_end):
            return wave_len
        return min(int(frame_end[int(unit_end[int(char_end[t])])]) * hop, wave_len)

    pieces = tokenizer.convert_ids_to_tokens(ids)
    starts = [i for i, piece in enumerate(pieces) if i == 0 or piece.startswith("\u2581")]
    words = []
    for a, b in zip(starts, [*starts[1:], len(ids)], strict=True):
        text = tokenizer.decode(ids[a:b], skip_special_tokens=True).strip()
        if text:
            words.append((text, round(at(a) / 16), round(at(b) / 16)))
    return words, round(wave_len / 16)


def test_translated_words_are_where_the_models_durations_put_them(
    runner: Any, test_model_dir: Path, shared_audio: Path
) -> None:
    _, samples = shared_pcm(shared_audio, "jfk.flac")
    spans = [samples[a * 16000 : b * 16000] for a, b in ((0, 3), (3, 7), (7, 11))]
    items = [ModelInput(span, ("spa", "fra"), "eng", words=True) for span in spans]
    outs = runner.run(items)  # one batch: rows padded, grouped, vocoded as the server does
    counted = 0
    for span, out in zip(spans, outs, strict=True):
        for lang in ("spa", "fra"):
            want, wave_ms = expected_words(test_model_dir, span, lang)
            got = [(w.word, w.start_ms, w.end_ms) for w in out.words.get(lang, ())]
            assert got == want, (lang, got, want)
            assert round(len(out.waveforms[lang]) / 16) == wave_ms
            counted += len(got)
    assert counted, "no word was spoken: nothing was checked"
    plain = runner.run([ModelInput(spans[0], ("spa",), "eng")])[0]
    assert plain.words == {} and plain.transcript_words == ()


TEXTS = ("The quick brown fox jumps over the lazy dog.", "Ask not what your country can do for you.")


async def test_translate_text_words_are_where_the_models_durations_put_them(
    live: LiveServer, test_model_dir: Path
) -> None:
    """TranslateText with speech and word timings: each translated word where ``generate`` on
    the text alone put it (its duration predictors); without word timings, none."""
    output = pb.OutputOptions(speech=True, word_timings=True)
    request = pb.TranslateTextRequest(texts=TEXTS, source_language="eng", target_languages=["spa"], output=output)
    resp = await live.stub.TranslateText(request)
    counted = 0
    for text, result in zip(TEXTS, resp.results, strict=True):
        want, wave_ms = expected_words(test_model_dir, None, "spa", text)
        got = [(w.word, w.start_ms, w.end_ms) for w in result.translations[0].words]
        assert got == want
        assert result.translations[0].audio.duration_ms == wave_ms
        counted += len(got)
    assert counted, "no word was spoken: nothing was checked"
    request.output.word_timings = False
    plain = await live.stub.TranslateText(request)
    assert all(r.translations[0].HasField("audio") and not r.translations[0].words for r in plain.results)


async def test_transcript_words_are_ordered_inside_their_segment(live: LiveServer, shared_audio: Path) -> None:
    content, _ = shared_pcm(shared_audio, "jfk.flac")
    resp = await live.stub.Translate(
        raw_request(
            content,
            pb.LINEAR16,
            source_language="eng",
            target_languages=["spa"],
            output=pb.OutputOptions(word_timings=True),
        )
    )
    timed = 0
    for seg in resp.segments:
        words = list(seg.transcript.words)
        assert [w.word for w in words] == [w for w in (w.word for w in words) if w]
        assert " ".join(w.word for w in words).split() == seg.transcript.text.split() or not words
        for a, b in itertools.pairwise(words):
            assert a.end_ms <= b.start_ms
        for w in words:
            assert seg.start_ms <= w.start_ms <= w.end_ms <= seg.end_ms
        timed += len(words)
        if seg.translations[0].text:
            assert seg.translations[0].words, "a spoken translation without its words' timings"
            assert seg.translations[0].words[-1].end_ms <= seg.translations[0].audio.duration_ms
    assert timed, "no transcript word was timed: nothing was checked"


async def test_word_timings_are_computed_only_when_asked(
    live: LiveServer, shared_audio: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The aligner's two entry points counted (the model thread calls them); the SDK's keyword
    reaches the server, and its results carry the words."""
    calls = {"transcript": 0, "speech": 0}
    for name in calls:
        real = getattr(WordTimer, name)

        def counted(self: WordTimer, *args: Any, _real: Any = real, _name: str = name) -> Any:
            calls[_name] += 1
            return _real(self, *args)

        monkeypatch.setattr(WordTimer, name, counted)
    content, _ = shared_pcm(shared_audio, "jfk.flac")
    request = raw_request(content, pb.LINEAR16, source_language="eng", target_languages=["spa"])
    resp = await live.stub.Translate(request)
    assert resp.segments and calls == {"transcript": 0, "speech": 0}
    for seg in resp.segments:
        assert not seg.transcript.words and not seg.translations[0].words
        assert seg.HasField("transcript") and seg.translations[0].HasField("audio")  # asked, just not timed

    async with AsyncTranslateClient(f"127.0.0.1:{live.port}") as client:
        plain = await client.translate(content, targets="spa", source="eng", encoding="linear16", sample_rate=16000)
        assert calls == {"transcript": 0, "speech": 0}
        assert all(not s.transcript_words and not s.translations[0].words for s in plain.segments)
        timed = await client.translate(
            content, targets="spa", source="eng", encoding="linear16", sample_rate=16000, word_timings=True
        )
    assert calls["transcript"] >= 1  # one pass per batch of segments
    spoken = [s for s in timed.segments if s.translations[0].text]
    assert calls["speech"] >= 1 or not spoken
    assert sum(len(s.transcript_words) for s in timed.segments) > 0
    for s in spoken:
        assert s.translations[0].words
        assert " ".join(w.word for w in s.translations[0].words).split() == s.translations[0].text.split()
