"""What people say, over a real server: ASR only (no targets), and spoken-language detection with
the MMS-LID identifier (its tiny random-weight test checkpoint, and one biased towards Spanish).

The identifier's accuracy needs real weights and FLEURS (benchmarks/tools/lid_accuracy.py); these tests
show the mechanics: every candidate gets a score, the transcript is decoded in the language chosen
(equal to ``generate`` into it), a biased identifier's choice follows its bias, and a server
without an identifier answers FAILED_PRECONDITION.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import grpc
import numpy as np
import pytest
import pytest_asyncio

from tests.support.fake_runner import FakeRunner
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.raw import raw_request
from tests.support.reference import (
    hf_generate,
    phrase_ids,
    reference_text,
    word_count,
)
from tests.support.speech import shared_pcm
from tests.support.term_reference import said_phrase
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.audio.resample import resample
from translate_svc.model.stages.terms import KEEP_WEIGHT
from translate_svc.model_api.requests import ModelInput, ModelOutput
from translate_svc.types import DEFAULT_TERM_WEIGHT, ModelInfo

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(40)]

CANDIDATES = ["eng", "spa"]


@pytest.fixture(scope="module")
def lid_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from translate_svc.app import build_lid_test_checkpoint

    plain = tmp_path_factory.mktemp("lid") / "plain"
    biased = tmp_path_factory.mktemp("lid") / "biased"
    build_lid_test_checkpoint(plain)
    build_lid_test_checkpoint(biased, bias="spa")
    return {"plain": plain, "biased": biased}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def detecting(test_model_dir: Path, lid_dirs: dict[str, Path]) -> AsyncIterator[LiveServer]:
    settings = make_settings(test_model_dir)
    settings.model.lid_path = lid_dirs["plain"]
    settings.server.http_port = 0  # the OpenAI-compatible door too
    async with serving(settings) as live:
        yield live


class DetectingFakeRunner(FakeRunner):
    """The fake runner (tests/support/fake_runner.py) with an identifier: its choice is the first
    candidate, and every segment has a transcript (``n=<samples>``), whatever the audio."""

    def __init__(self) -> None:
        super().__init__()
        languages = tuple(dataclasses.replace(lang, detectable=True) for lang in self.card.languages)
        self._card = dataclasses.replace(self.card, languages=languages, identifier=ModelInfo("fake-lid", "none", True))

    def run(self, inputs: Sequence[ModelInput]) -> list[ModelOutput]:
        outs = super().run(inputs)
        return [
            self._detected(item, out) if item.detect is not None else out
            for item, out in zip(inputs, outs, strict=True)
        ]

    def _detected(self, item: ModelInput, out: ModelOutput) -> ModelOutput:
        assert item.detect is not None
        # no candidates: any the identifier can pick (here: every language, in code order)
        first, *others = item.detect or sorted(self._card.detectable_codes)
        return dataclasses.replace(out, detected={first: 0.75} | {code: 0.25 / len(others) for code in others})


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def detecting_fake(test_model_dir: Path) -> AsyncIterator[LiveServer]:
    """A door that shows detection only beside a transcript, tested whatever random weights would
    say (maybe nothing): the fake runner's every segment has one."""
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    async with serving(settings, runner_factory=DetectingFakeRunner) as live:
        yield live


async def test_detection_scores_every_candidate_and_transcribes_in_the_language_chosen(
    detecting: LiveServer, shared_audio: Path, test_model_dir: Path
) -> None:
    listed = await detecting.stub.ListLanguages(pb.ListLanguagesRequest())
    assert listed.language_identifier.is_test_model and listed.limits.max_candidate_languages == 4
    detectable = {lang.code for lang in listed.languages if lang.detectable}
    assert set(CANDIDATES) <= detectable
    for name, count in (("jfk.flac", 4), ("silero_test.wav", 19)):
        content, samples = shared_pcm(shared_audio, name)
        detection = pb.LanguageDetection(enabled=True, candidates=CANDIDATES)
        resp = await detecting.stub.Translate(
            raw_request(content, pb.LINEAR16, target_languages=["fra"], language_detection=detection)
        )
        assert len(resp.segments) == count
        for seg in resp.segments:
            d = seg.detected_language
            scores = {s.language: s.probability for s in d.scores}
            assert set(scores) == set(CANDIDATES) and sum(scores.values()) == pytest.approx(1, abs=1e-4)
            assert d.language == max(scores, key=scores.__getitem__) == d.scores[0].language
            assert seg.transcript.language == d.language and seg.timing.language_id_ms > 0
            span = samples[seg.start_ms * 16 : seg.end_ms * 16]
            assert seg.transcript.text == hf_generate(test_model_dir, span, d.language, speech=False)[0]
            assert [t.target_language for t in seg.translations] == ["fra"]
    # the test identifier's weights are random: which languages it picks is not the point here


async def test_a_biased_identifier_decides_every_segment_and_a_stream_carries_each_detection(
    test_model_dir: Path, lid_dirs: dict[str, Path], shared_audio: Path
) -> None:
    settings = make_settings(test_model_dir)
    settings.model.lid_path = lid_dirs["biased"]
    content, _ = shared_pcm(shared_audio, "jfk.flac")
    async with serving(settings, warmup=False) as live:
        cfg = pb.StreamingConfig(
            format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000),
            target_languages=["fra"],
            language_detection=pb.LanguageDetection(enabled=True, candidates=["eng", "spa", "deu"]),
        )
        msgs = [pb.StreamingTranslateRequest(config=cfg)]
        msgs += [pb.StreamingTranslateRequest(audio=content[i : i + 32000]) for i in range(0, len(content), 32000)]
        got = [r async for r in live.stub.StreamingTranslate(iter(msgs), timeout=60)]
        assert list(got[0].started.config.language_detection.candidates) == ["eng", "spa", "deu"]
        segments = [r.segment for r in got if r.HasField("segment")]
        assert len(segments) == 4
        for seg in segments:
            assert seg.detected_language.language == "spa" and seg.detected_language.scores[0].probability > 0.99
            assert {s.language for s in seg.detected_language.scores} == {"eng", "spa", "deu"}
            assert seg.transcript.language == "spa"
        # without candidates: any language it can pick, the most likely few reported
        anyone = await live.stub.Translate(
            raw_request(content, pb.LINEAR16, language_detection=pb.LanguageDetection(enabled=True))
        )
        assert all(
            s.detected_language.language == "spa" and len(s.detected_language.scores) >= 2 for s in anyone.segments
        )


@pytest.mark.parametrize(
    "detection,source,words",
    [
        (pb.LanguageDetection(enabled=True, candidates=["eng", "spa", "fra", "deu", "ita"]), "", "at most 4"),
        (pb.LanguageDetection(enabled=True, candidates=["eng", "xho"]), "", "'xho'"),
        (pb.LanguageDetection(enabled=True, candidates=["eng", "eng"]), "", "more than once"),
        (pb.LanguageDetection(enabled=True), "eng", "source_language"),
    ],
)
async def test_bad_detection_requests_say_what_to_fix(
    detecting: LiveServer, shared_audio: Path, detection: pb.LanguageDetection, source: str, words: str
) -> None:
    content, _ = shared_pcm(shared_audio, "jfk.flac")
    request = raw_request(content[:64000], pb.LINEAR16, source_language=source, language_detection=detection)
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await detecting.stub.Translate(request)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and words in (e.value.details() or ""), e.value


async def test_a_server_without_an_identifier_refuses_detection_saying_how_to_get_one(
    live: LiveServer, shared_audio: Path
) -> None:
    """Translate and a stream alike: FAILED_PRECONDITION naming the command that installs the
    identifier, before any audio is decoded (the stream's config is refused)."""
    content, _ = shared_pcm(shared_audio, "jfk.flac")
    detection = pb.LanguageDetection(enabled=True, candidates=["eng", "spa"])
    listed = await live.stub.ListLanguages(pb.ListLanguagesRequest())
    assert not listed.HasField("language_identifier")
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await live.stub.Translate(raw_request(content[:64000], pb.LINEAR16, language_detection=detection))
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION, e.value
    assert "download-lid-model" in (e.value.details() or ""), e.value
    config = pb.StreamingConfig(
        format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000),
        target_languages=["spa"],
        language_detection=detection,
    )
    stream = live.stub.StreamingTranslate(iter([pb.StreamingTranslateRequest(config=config)]))
    with pytest.raises(grpc.aio.AioRpcError) as e:
        async for _ in stream:
            pass
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION, e.value
    assert "download-lid-model" in (e.value.details() or ""), e.value


async def test_the_sdk_asks_for_asr_only_and_detection(
    detecting: LiveServer, shared_audio: Path, test_model_dir: Path
) -> None:
    from translate_svc.client import AsyncTranslateClient, Term

    async with AsyncTranslateClient(f"127.0.0.1:{detecting.port}") as client:
        langs = await client.languages()
        assert langs.identifier is not None and langs.identifier.is_test_model
        assert {"eng", "spa"} <= {lang.code for lang in langs.languages if lang.detectable}
        result = await client.translate(shared_audio / "jfk.flac", targets=(), detect=["eng", "spa"])
        assert len(result.segments) == 4
        for seg in result.segments:
            assert not seg.translations and seg.transcript is not None
            assert {c for c, _ in seg.language_scores} == {"eng", "spa"}
            assert seg.transcript_language == seg.detected_language == seg.language_scores[0][0]
            assert seg.timing.language_id_ms > 0 and seg.timing.speech_ms == 0
        # the term reaches the decoder: each segment equals generate alone with the phrase's bias (PCM,
        # so the reference reads the very samples the server decodes)
        content, samples = shared_pcm(shared_audio, "jfk.flac")
        boosted = await client.translate(
            content, encoding="linear16", sample_rate=16000, targets="spa", source="eng", speech=False,
            terms=[Term("kwq", weight=10)],
        )  # fmt: skip
        texts = [(s.start_ms, s.end_ms, s.transcript, [t.text for t in s.translations]) for s in boosted.segments]
        assert check_boost_against_generate(test_model_dir, samples, "kwq", 10.0, texts), "the bias changed nothing"
        with pytest.raises(ValueError, match="ASR only"):
            await client.translate(shared_audio / "jfk.flac", targets=())  # no source, no detection


async def test_the_openai_door_detects_with_an_auto_source_language(
    detecting_fake: LiveServer, shared_audio: Path
) -> None:
    import base64

    from openai import AsyncOpenAI

    detecting = detecting_fake
    assert detecting.server.http is not None
    _, samples = shared_pcm(shared_audio, "jfk.flac")
    pcm24k = (np.clip(resample(samples, 16000, 24000), -1, 1) * 32767).astype("<i2").tobytes()
    client = AsyncOpenAI(base_url=f"http://127.0.0.1:{detecting.server.http.port}/v1", api_key="-", max_retries=0)
    deltas = []
    async with client.realtime.translations.connect(model="seamless") as conn:
        await conn.session.update(
            session={
                "audio": {
                    "output": {"language": "fr"},
                    "input": {"transcription": {"model": "any"}, "language": "auto:en,es"},  # our extension
                }
            }
        )
        for at in range(0, len(pcm24k), 9600):
            await conn.session.input_audio_buffer.append(audio=base64.b64encode(pcm24k[at : at + 9600]).decode())
        await conn.session.close()
        async for ev in conn:
            if ev.type == "session.input_transcript.delta":
                deltas.append(ev)
            assert ev.type != "error", ev
            if ev.type == "session.closed":
                break
    assert [ev.model_extra["x_segment"]["segment_id"] for ev in deltas] == [0, 1, 2, 3]  # jfk: four, each transcribed
    for ev in deltas:
        detected = ev.model_extra["x_detected"]
        assert set(detected["scores"]) == {"eng", "spa"} and ev.x_language == detected["language"]


async def test_the_openai_door_transcribes_without_a_language_through_the_identifier(
    detecting_fake: LiveServer, shared_audio: Path
) -> None:
    """Issue 35: input transcription asked for with no language named: on a server with an
    identifier each segment's language is detected (any the identifier can pick), so the
    transcript comes, with no error."""
    import base64

    from openai import AsyncOpenAI

    assert detecting_fake.server.http is not None
    _, samples = shared_pcm(shared_audio, "jfk.flac")
    pcm24k = (np.clip(resample(samples, 16000, 24000), -1, 1) * 32767).astype("<i2").tobytes()
    port = detecting_fake.server.http.port
    client = AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="-", max_retries=0)
    events = []
    async with client.realtime.translations.connect(model="seamless") as conn:
        await conn.session.update(
            session={"audio": {"output": {"language": "fr"}, "input": {"transcription": {"model": "any"}}}}
        )
        await conn.session.input_audio_buffer.append(audio=base64.b64encode(pcm24k).decode())
        await conn.session.close()
        async for ev in conn:
            events.append(ev)
            if ev.type == "session.closed":
                break
    assert not [e for e in events if e.type == "error"], events
    deltas = [e for e in events if e.type == "session.input_transcript.delta"]
    assert [ev.model_extra["x_segment"]["segment_id"] for ev in deltas] == [0, 1, 2, 3]
    assert all(ev.x_language == ev.model_extra["x_detected"]["language"] for ev in deltas)


# -- term lists -------------------------------------------------------------------------------------
#
# The reference is transformers' own generate on each segment alone (test_runner.py), its text
# decoder biased as model/stages/terms.py documents a term: the phrase's token ids as the server tokenizes
# them, every prefix of them with the weight, through transformers' SequenceBiasLogitsProcessor.
# Equal text proves the mechanism whatever this random model says; no check depends on its words.
# Terms act on words (issue 57): the times a text says a phrase are counted with ``word_count``, and
# the times a row has written one with ``word_occurrences``, both written here from the rule in
# docs/api.md for this checkpoint's alphabet (ASCII letters, punctuation, spaces), not from our code.


async def segments_with_terms(live: LiveServer, content: bytes, terms: list[pb.Term]) -> list[pb.SegmentResult]:
    """Every segment of ``content`` (English) translated into Spanish with ``terms``, text only."""
    request = raw_request(
        content,
        pb.LINEAR16,
        source_language="eng",
        target_languages=["spa"],
        output=pb.OutputOptions(speech=False),
        terms=terms,
    )
    resp = await live.stub.Translate(request)
    assert resp.segments and all(len(s.translations) == 1 for s in resp.segments)
    return list(resp.segments)


def check_boost_against_generate(
    model_dir: Path,
    samples: np.ndarray,
    phrase: str,
    weight: float,
    segments: Sequence[tuple[int, int, str | None, list[str]]],
) -> bool:
    """Each (start_ms, end_ms, transcript, [Spanish]) equals generate on its span alone with
    ``phrase`` boosted by ``weight`` (a BOOST term biases every text row, the transcript's too).
    Whether the bias changed generate's output anywhere (else the parity would prove nothing)."""
    changed = False
    for start, end, transcript, spanish in segments:
        span = samples[start * 16 : end * 16]
        ref_eng, _ = reference_text(model_dir, span, "eng", phrase, weight)
        ref_spa, _ = reference_text(model_dir, span, "spa", phrase, weight)
        assert transcript == ref_eng, (start, phrase, weight, transcript, ref_eng)
        assert spanish == [ref_spa], (start, phrase, weight, spanish, ref_spa)
        plain = (
            hf_generate(model_dir, span, "eng", speech=False)[0],
            hf_generate(model_dir, span, "spa", speech=False)[0],
        )
        changed |= (ref_eng, ref_spa) != plain
    return changed


async def test_an_empty_term_list_changes_nothing(live: LiveServer, shared_audio: Path, test_model_dir: Path) -> None:
    content, samples = shared_pcm(shared_audio, "jfk.flac")
    resp = await live.stub.Translate(raw_request(content, pb.LINEAR16, source_language="eng", terms=[]))
    assert len(resp.segments) == 4
    for seg in resp.segments:
        span = samples[seg.start_ms * 16 : seg.end_ms * 16]
        text, _ = hf_generate(test_model_dir, span, "spa")
        assert seg.translations[0].text == text
        assert seg.transcript.text == hf_generate(test_model_dir, span, "eng", speech=False)[0]


async def test_a_boosted_phrase_biases_every_row_as_generate_does(
    live: LiveServer, shared_audio: Path, test_model_dir: Path
) -> None:
    """A strong and a weak boost of a made-up phrase of several tokens (so the prefixes matter):
    each segment's transcript and translation equal generate alone with that bias."""
    content, samples = shared_pcm(shared_audio, "jfk.flac")
    assert len(phrase_ids(test_model_dir, "kwq")) > 1
    for weight in (10.0, 0.5):
        segments = await segments_with_terms(live, content, [pb.Term(phrase="kwq", kind=pb.Term.BOOST, weight=weight)])
        texts = [(s.start_ms, s.end_ms, s.transcript.text, [t.text for t in s.translations]) for s in segments]
        changed = check_boost_against_generate(test_model_dir, samples, "kwq", weight, texts)
        if weight == 10.0:
            assert changed, "a +10 bias changed no segment's generate: this parity would not show the boost is applied"


async def kept_segments(
    live: LiveServer, content: bytes, samples: np.ndarray, model_dir: Path, phrase: str
) -> list[tuple[int, bool]]:
    """Every segment translated with ``phrase`` kept, checked against generate alone: the transcript
    is boosted towards the phrase (DEFAULT_TERM_WEIGHT); where it holds the phrase (``times``, as
    row_terms counts it), the Spanish is boosted by KEEP_WEIGHT until it has written it that many
    times, and holds it (said: verbatim); where it does not, the Spanish is the plain generate (never
    forced in). Per segment: ``times``, and whether the Spanish differs from the plain generate."""
    out = []
    for seg in await segments_with_terms(live, content, [pb.Term(phrase=phrase, kind=pb.Term.KEEP)]):
        span = samples[seg.start_ms * 16 : seg.end_ms * 16]
        transcript, spanish = seg.transcript.text, seg.translations[0].text
        ref_transcript, _ = reference_text(model_dir, span, "eng", phrase, DEFAULT_TERM_WEIGHT)
        assert transcript == ref_transcript, (seg.start_ms, phrase, transcript, ref_transcript)
        times = word_count(phrase, transcript, ignore_case=True)
        plain = hf_generate(model_dir, span, "spa", speech=False)[0]
        expected = reference_text(model_dir, span, "spa", phrase, KEEP_WEIGHT, times)[0] if times else plain
        assert spanish == expected, (seg.start_ms, phrase, times, transcript, spanish, expected)
        if times:
            # said: verbatim (KEEP_WEIGHT is there to outweigh any preference of the decoder's own)
            assert word_count(phrase, spanish, ignore_case=False), (seg.start_ms, phrase, transcript, spanish)
        out.append((times, spanish != plain))
    return out


async def test_a_kept_phrase_is_carried_where_it_was_said_and_never_forced_in(
    live: LiveServer, shared_audio: Path, test_model_dir: Path
) -> None:
    content, samples = shared_pcm(shared_audio, "jfk.flac")
    plain = await segments_with_terms(live, content, [])
    phrase, k = said_phrase(test_model_dir, [samples[s.start_ms * 16 : s.end_ms * 16] for s in plain])
    kept = await kept_segments(live, content, samples, test_model_dir, phrase)
    assert len(kept) == len(plain)
    assert kept[k][0] >= 1, f"segment {k}'s transcript lacks {phrase!r}, which it holds by construction"
    assert any(changed for times, changed in kept if times), (
        f"keeping {phrase!r} changed no translation where it was said: this parity would not show it is carried"
    )
    # a made-up phrase of several tokens: where the transcript lacks it, the translation is as without it
    unsaid = await kept_segments(live, content, samples, test_model_dir, "qjxv")
    assert any(not times for times, _ in kept + unsaid), (
        "every transcript held its kept phrase: 'never forced in' untested"
    )


@pytest.mark.parametrize(
    "terms,words",
    [
        ([pb.Term(phrase=f"name{n}") for n in range(33)], "at most 32"),
        ([pb.Term(phrase="x" * 65)], "at most 64"),
        ([pb.Term(phrase="Acme", weight=11)], "(0, 10]"),
        ([pb.Term(phrase="  ")], "empty"),
        ([pb.Term(phrase="Acme"), pb.Term(phrase="acme", kind=pb.Term.KEEP)], "more than once"),
    ],
)
async def test_bad_term_lists_say_what_to_fix(
    live: LiveServer, shared_audio: Path, terms: list[pb.Term], words: str
) -> None:
    content, _ = shared_pcm(shared_audio, "jfk.flac")
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await live.stub.Translate(raw_request(content[:64000], pb.LINEAR16, terms=terms))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and words in (e.value.details() or ""), e.value
