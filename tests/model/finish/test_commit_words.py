"""Word timings of simultaneous commits (issue 45, item 3): each ``Commit`` carries the words
spoken in its speech chunk, ms from the chunk's first sample, from text-to-unit's and the
vocoder's durations (exact).

On the test checkpoint the words are recomputed here from transformers' own modules, outside our
code: text-to-unit's per-character durations from ``generate`` on the segment with its text stopped
after the committed tokens (the step's t2u input, tests/model/test_simultaneous.py), the vocoder's
per-unit frames from ``SeamlessM4Tv2CodeHifiGan`` on the chunk's units alone, HiFi-GAN's strides for
the samples a frame makes. A chunk's words are the committed words past those already spoken; a word
starts where its first token's units start (cut to the chunk's start) and ends where its last
token's end. Random weights say anything: the commit points are the model's own word starts, and
nothing asserts on what the words are.

On a real server (the stable translator, model/testing/stable.py, whose speech is 200 ms per word) every
door that renders commits carries them (gRPC through the SDK, and the raw message): dropping them
on the way fails the test; and a segment's commits' words, each shifted by the chunks before it,
are its final translation's words in its speech (the chunks joined).
"""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
import torch

from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.reference import Reference, plain_reference
from tests.support.speech import read_16k
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.client import AsyncTranslateClient, Commit, Segment, SimultaneousOptions
from translate_svc.client_cli.decode import load_pcm16k
from translate_svc.model.runner import SeamlessRunner
from translate_svc.model.stages.seamless import SeamlessStages
from translate_svc.model.testing import stable
from translate_svc.model.testing.stable import StableTranslator
from translate_svc.model_api.requests import ModelInput, ModelOutput, SimulRequest, SimulRowOutput, SimulTarget
from translate_svc.types import WordTiming

pytestmark = [pytest.mark.integration, pytest.mark.slow(40)]

SPANS = [(0.3, 2.3), (3.3, 4.4), (5.4, 7.7), (8.2, 10.6)]  # seconds of jfk.flac
LANGS = ("spa", "deu", "ita", "fra")


# -- the model: exact ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def own_runner(test_model_dir: Path) -> SeamlessRunner:
    """Its own runner: the hooks that steps install stay off the session's shared runner."""
    return SeamlessRunner(SeamlessStages(test_model_dir, device="cpu", dtype="float32"))


@pytest.fixture(scope="module")
def segments(shared_audio: Path) -> list[np.ndarray]:
    x = read_16k(shared_audio / "jfk.flac")
    return [x[int(a * 16000) : int(b * 16000)] for a, b in SPANS]


def step(
    runner: SeamlessRunner, audio: np.ndarray, target: SimulTarget, k: int | None, words: bool = True
) -> ModelOutput:
    """One step of ``audio`` committing the hypothesis' first ``k`` tokens (None: a final step),
    speaking whatever is new (``min_units`` 1), with word timings."""
    final = k is None
    item = ModelInput(
        audio, (target.language,), "eng", simul=SimulRequest((target,), final=final, min_units=1), words=words
    )
    policy = None if final else (lambda t, ids, starts: ids[:k])
    (out,) = runner.retranslator.retranslate([item], policy)
    return out


def rows(out: ModelOutput) -> dict[str, SimulRowOutput]:
    assert out.simul is not None
    return out.simul


def case(runner: SeamlessRunner, segments: list[np.ndarray]) -> tuple[np.ndarray, str, SimulRowOutput]:
    """The first (segment, language) whose unforced hypothesis has at least three word starts after
    its first token, so its words can be committed (and spoken) in steps."""
    for audio, lang in itertools.product(segments, LANGS):
        row = rows(step(runner, audio, SimulTarget(lang), 0))[lang]
        if len([i for i in row.word_starts if i > 0]) >= 3:
            return audio, lang, row
    raise AssertionError("no decode of the shared speech has three words to commit one by one")


def t2u_token_ends(ref: Reference, audio: np.ndarray, lang: str, ids: tuple[int, ...]) -> list[int]:
    """The units text-to-unit gives the first ``j`` of ``ids`` (the hypothesis' first ``k``), as
    ``generate`` says: its text stopped after ``k + 1`` tokens (it never speaks the last), its
    duration predictor read by a hook and rounded as ``SeamlessM4Tv2TextToUnitDecoder`` rounds."""
    m, p = ref
    seen: dict[str, torch.Tensor] = {}

    def hook(module: Any, args: Any, kwargs: Any, out: torch.Tensor) -> None:
        dur = torch.clamp(torch.round(torch.expm1(out)).long(), min=1)
        seen["chars"] = dur.masked_fill(~kwargs["padding_mask"].bool(), 0)[0]

    handle = m.t2u_model.model.decoder.duration_predictor.register_forward_hook(hook, with_kwargs=True)
    try:
        feats = p(audio=audio, sampling_rate=16000, return_tensors="pt")
        with torch.inference_mode():
            out = m.generate(
                **feats, tgt_lang=lang, text_max_new_tokens=len(ids) + 1, return_intermediate_token_ids=True
            )
    finally:
        handle.remove()
    gen = m.generation_config
    assert tuple(out.sequences[0, 2 : 2 + len(ids)].tolist()) == ids  # the same text as the step's
    chars = [1 if t == 1 else len(str(gen.id_to_text[str(t)])) for t in ids]
    char_end = np.cumsum([0, *chars])
    unit_end = np.cumsum([0, *seen["chars"].tolist()])
    return [int(unit_end[int(c)]) for c in char_end]


def vocoder_frames(ref: Reference, units: tuple[int, ...], lang: str) -> tuple[list[int], int, int]:
    """``SeamlessM4Tv2CodeHifiGan`` on the chunk's units alone, as ``generate`` calls it: its
    frames per unit (rounded as it rounds), its waveform's length, and the samples of one frame."""
    m, _ = ref
    seen: dict[str, torch.Tensor] = {}

    def hook(module: Any, args: Any, out: torch.Tensor) -> None:
        seen["frames"] = torch.clamp(torch.round(torch.expm1(out)).long(), min=1)[0]

    handle = m.vocoder.dur_predictor.register_forward_hook(hook)
    gen = m.generation_config
    try:
        with torch.inference_mode():
            _, lengths = m.vocoder(
                input_ids=torch.tensor([units]),
                speaker_id=torch.tensor([[0]]),
                lang_id=torch.tensor([[gen.vocoder_lang_code_to_id[lang]]]),
            )
    finally:
        handle.remove()
    hop = 1
    for up in m.vocoder.hifi_gan.upsampler:
        assert int(up.kernel_size[0]) - 2 * int(up.padding[0]) == int(up.stride[0])  # each frame: stride samples
        hop *= int(up.stride[0])
    return seen["frames"].tolist(), int(lengths.reshape(-1)[0]), hop


def expected_chunk_words(
    ref: Reference, audio: np.ndarray, lang: str, committed: tuple[int, ...], before: SimulTarget, row: SimulRowOutput
) -> list[tuple[str, int, int]]:
    """The words of ``row``'s chunk recomputed from transformers' modules (module docstring)."""
    token_ends = t2u_token_ends(ref, audio, lang, committed)
    assert token_ends[-1] == row.units_total  # t2u's units for the committed text, as the step counted
    frames, wave_len, hop = vocoder_frames(ref, row.chunk_units, lang)
    assert row.chunk is not None and len(row.chunk) == wave_len
    frame_end = np.cumsum([0, *frames])

    def at(t: int) -> int:
        units = min(max(0, token_ends[t] - before.spoken_units), len(frames))
        return min(int(frame_end[units]) * hop, wave_len)

    tokenizer = ref.processor.tokenizer
    pieces = tokenizer.convert_ids_to_tokens(list(committed))
    starts = [i for i, piece in enumerate(pieces) if i == 0 or piece.startswith("\u2581")]
    out = []
    for a, b in zip(starts, [*starts[1:], len(committed)], strict=True):
        text = tokenizer.decode(list(committed[a:b]), skip_special_tokens=True).strip()
        if text and b > before.spoken_tokens:
            out.append((text, round(at(a) / 16), round(at(b) / 16)))
    return out


def test_commit_words_are_where_the_models_durations_put_them(
    own_runner: SeamlessRunner, segments: list[np.ndarray], test_model_dir: Path
) -> None:
    """A segment committed word start by word start, then its final step: each chunk's words equal
    the recomputation, ordered, not overlapping, inside the chunk; joined they are every committed
    word once, in order; without word timings the same steps carry none."""
    audio, lang, plain = case(own_runner, segments)
    ref = plain_reference(test_model_dir)
    cuts = [k for k in plain.word_starts if k > 0][:3]
    target, joined, chunks = SimulTarget(lang), [], 0
    for k in [*cuts, None]:
        row = rows(step(own_runner, audio, target, k))[lang]
        assert row.chunk is not None  # min_units 1: every commit here speaks
        got = [(w.word, w.start_ms, w.end_ms) for w in row.chunk_words]
        assert got == expected_chunk_words(ref, audio, lang, row.committed, target, row), k
        chunk_ms = round(len(row.chunk) / 16)
        for w in row.chunk_words:
            assert 0 <= w.start_ms <= w.end_ms <= chunk_ms
        for a, b in itertools.pairwise(row.chunk_words):
            assert a.end_ms <= b.start_ms
        untimed = rows(step(own_runner, audio, target, k, words=False))[lang]
        assert untimed.chunk is not None and untimed.chunk_words == ()
        joined.extend(w.word for w in row.chunk_words)
        chunks += bool(row.chunk_words)
        target = SimulTarget(lang, row.committed, row.spoken_tokens, row.spoken_units)
    assert chunks >= 2, "fewer than two chunks had words: the chunk offsets were not checked"
    whole = own_runner.timer.words_of(plain.token_ids)
    assert joined == [text for text, _, _ in whole if text]  # every committed word once, in order
    assert " ".join(joined).split() == plain.text.split()


def test_a_final_steps_transcript_words_are_its_segments(
    own_runner: SeamlessRunner, segments: list[np.ndarray]
) -> None:
    """A final step's transcript (unforced, as a segment's) gets the segment job's transcript words;
    an open step's transcript (a caption's) none."""
    timed = 0
    for audio in segments:
        (seg,) = own_runner.run([ModelInput(audio, ("spa",), "eng", words=True)])
        target = SimulTarget("spa")
        final = ModelInput(audio, ("spa",), "eng", simul=SimulRequest((target,), final=True), words=True)
        opened = ModelInput(audio, ("spa",), "eng", simul=SimulRequest((target,)), words=True)
        done, still = own_runner.run([final, opened])
        assert done.transcript == seg.transcript
        assert done.transcript_words == seg.transcript_words
        assert still.transcript == seg.transcript and still.transcript_words == ()
        timed += len(seg.transcript_words)
    assert timed, "no transcript word was timed: nothing was checked"


# -- the doors: the stable translator on a real server ----------------------------------------------

TARGETS = ["spa", "fra"]
CHUNK = 1600  # 100 ms at 16 kHz


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stable_server(test_model_dir: Path) -> AsyncIterator[LiveServer]:
    async with serving(make_settings(test_model_dir), runner_factory=lambda: StableTranslator(test_model_dir)) as srv:
        yield srv


async def stream(live: LiveServer, pcm: np.ndarray, word_timings: bool) -> list[Any]:
    """jfk streamed at 4x real time in simultaneous mode through the SDK (gRPC): every event."""
    async with (
        AsyncTranslateClient(f"127.0.0.1:{live.port}") as client,
        client.stream(
            targets=TARGETS,
            source="eng",
            simultaneous=SimultaneousOptions(step_ms=500, agreement=2),
            word_timings=word_timings,
            transcript=True,
        ) as s,
    ):

        async def send() -> None:
            for i in range(0, len(pcm), CHUNK):
                await s.send(pcm[i : i + CHUNK])
                await asyncio.sleep(CHUNK / 16000 / 4)
            await s.close()

        events: list[Any] = []

        async def read() -> None:
            async for ev in s:
                events.append(ev)

        await asyncio.gather(send(), read())
    return events


def shifted(words: tuple[WordTiming, ...], ms: int) -> list[tuple[str, int, int]]:
    return [(w.word, w.start_ms + ms, w.end_ms + ms) for w in words]


@pytest.mark.asyncio(loop_scope="module")
async def test_commits_carry_their_chunks_words_on_grpc(stable_server: LiveServer, shared_audio: Path) -> None:
    """Each commit with speech carries its chunk's words, exactly the stable translator's (200 ms a
    word: the words are the tokens spoken past those spoken before); joined and shifted by the
    chunks before them, a segment's commits' words are its final translation's words, and their
    texts its text; its transcript words are ordered inside its span. Without word timings, none."""
    pcm = load_pcm16k(shared_audio / "jfk.flac")
    events = await stream(stable_server, pcm, word_timings=True)
    commits = [ev for ev in events if isinstance(ev, Commit)]
    segments = [ev for ev in events if isinstance(ev, Segment) and ev.speech_in_commits]
    assert segments and any(not c.final and c.has_speech for c in commits), "no chunk came while speech was open"
    ms = round(stable.SPEECH_S * 1000)
    per: dict[tuple[int, str], list[Commit]] = defaultdict(list)
    for c in commits:
        per[(c.segment_id, c.target)].append(c)
        t = c.translation
        if not c.has_speech:
            assert t.words == ()
            continue
        assert t.words, "a commit with speech came without its words"
        n = len(t.words)
        assert [(w.start_ms, w.end_ms) for w in t.words] == [(ms * j, ms * (j + 1)) for j in range(n)]
        assert t.words[-1].end_ms * t.sample_rate == t.num_samples * 1000  # the chunk is its words' speech
    for seg in segments:
        for t in seg.translations:
            mine = per[(seg.segment_id, t.target)]
            joined, before = [], 0
            for c in mine:
                joined += shifted(c.translation.words, before)
                if c.has_speech:
                    before += round(c.translation.num_samples * 1000 / c.translation.sample_rate)
            final = [(w.word, w.start_ms, w.end_ms) for w in t.words]
            assert final and joined == final
            assert [w for w, _, _ in final] == t.text.split()
            assert final[-1][2] == round(t.num_samples * 1000 / t.sample_rate)
        words = seg.transcript_words
        assert words and [w.word for w in words] == (seg.transcript or "").split()
        assert all(seg.start_ms <= w.start_ms <= w.end_ms <= seg.end_ms for w in words)
        assert all(a.end_ms <= b.start_ms for a, b in itertools.pairwise(words))

    plain = await stream(stable_server, pcm, word_timings=False)
    assert any(isinstance(ev, Commit) and ev.has_speech for ev in plain)
    assert all(not ev.translation.words for ev in plain if isinstance(ev, Commit))
    assert all(not t.words for ev in plain if isinstance(ev, Segment) for t in ev.translations)


@pytest.mark.asyncio(loop_scope="module")
async def test_the_raw_grpc_commit_carries_words(stable_server: LiveServer, shared_audio: Path) -> None:
    """The wire itself (no SDK): ``Commit.words`` is filled where the commit has speech."""
    pcm = load_pcm16k(shared_audio / "jfk.flac")
    data = (np.clip(pcm, -1, 1) * 32767).astype("<i2").tobytes()

    async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield pb.StreamingTranslateRequest(
            config=pb.StreamingConfig(
                format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000, channels=1),
                source_language="eng",
                target_languages=["spa"],
                output=pb.OutputOptions(word_timings=True),
                simultaneous=pb.SimultaneousConfig(enabled=True, step_ms=500, agreement=2),
            )
        )
        for i in range(0, len(data), 2 * CHUNK):
            yield pb.StreamingTranslateRequest(audio=data[i : i + 2 * CHUNK])
            await asyncio.sleep(CHUNK / 16000 / 4)

    spoken = timed = 0
    async for resp in stable_server.stub.StreamingTranslate(requests()):
        if resp.HasField("commit") and resp.commit.HasField("speech"):
            spoken += 1
            timed += bool(resp.commit.words)
            assert resp.commit.words[-1].end_ms == resp.commit.speech.duration_ms
    assert spoken and timed == spoken
