"""What people say, over a real server: ASR only (no targets), and spoken-language detection with
the MMS-LID identifier (its tiny random-weight test checkpoint, and one biased towards Spanish).

The identifier's accuracy needs real weights and FLEURS (benchmarks/lid_accuracy.py); these tests
show the mechanics: every candidate gets a score, the transcript is decoded in the language chosen
(equal to ``generate`` into it), a biased identifier's choice follows its bias, and a server
without an identifier answers FAILED_PRECONDITION.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import pytest_asyncio
import soundfile as sf

from tests.conftest import LiveServer, make_settings, serving
from tests.integration.test_runner import hf_generate
from tests.integration.test_translate_api import raw_request
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.audio.resample import resample

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(40)]

CANDIDATES = ["eng", "spa"]


def shared_pcm(shared_audio: Path, name: str) -> tuple[bytes, np.ndarray]:
    """The file as 16 kHz PCM16 bytes, and the float samples the server decodes them to."""
    audio, rate = sf.read(shared_audio / name, dtype="float32", always_2d=True)
    x = audio.mean(axis=1) if rate == 16000 else resample(audio.mean(axis=1), rate, 16000)
    pcm = (np.clip(x, -1, 1) * 32767).astype("<i2")
    return pcm.tobytes(), pcm.astype(np.float32) / 32768.0


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


async def test_asr_only_returns_transcripts_equal_to_generate_and_runs_one_row_per_segment(
    live: LiveServer, shared_audio: Path, test_model_dir: Path
) -> None:
    content, samples = shared_pcm(shared_audio, "silero_test.wav")
    before = len(live.batches)
    resp = await live.stub.Translate(raw_request(content, pb.LINEAR16, target_languages=[], source_language="eng"))
    assert len(resp.segments) == 19
    batches = live.batches[before:]
    assert sum(b.text_rows for b in batches) == len(resp.segments) == sum(b.size for b in batches)
    for seg in resp.segments:
        assert not seg.translations and seg.transcript.language == "eng"
        assert seg.timing.speech_ms == 0 and seg.timing.model_ms > 0  # no text-to-unit, no vocoder
        text, _ = hf_generate(test_model_dir, samples[seg.start_ms * 16 : seg.end_ms * 16], "eng", speech=False)
        assert seg.transcript.text == text, (seg.start_ms, seg.end_ms)
    # a translation of the same audio does run the vocoder (so the 0 above says something)
    one = await live.stub.Translate(raw_request(content[: 16000 * 2 * 5], pb.LINEAR16, source_language="eng"))
    assert one.segments and all(s.timing.speech_ms > 0 for s in one.segments)


async def test_asr_only_needs_a_source_and_the_transcript(live: LiveServer, shared_audio: Path) -> None:
    content, _ = shared_pcm(shared_audio, "jfk.flac")
    for kw, words in (
        ({}, "source_language"),
        ({"source_language": "eng", "output": pb.OutputOptions(transcript=False)}, "transcript"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await live.stub.Translate(raw_request(content, pb.LINEAR16, target_languages=[], **kw))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and words in (e.value.details() or "")


async def test_an_asr_only_stream_carries_transcripts_alone(live: LiveServer, shared_audio: Path) -> None:
    content, _ = shared_pcm(shared_audio, "jfk.flac")
    cfg = pb.StreamingConfig(format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000), source_language="eng")
    msgs = [pb.StreamingTranslateRequest(config=cfg)]
    msgs += [pb.StreamingTranslateRequest(audio=content[i : i + 32000]) for i in range(0, len(content), 32000)]
    got = [r async for r in live.stub.StreamingTranslate(iter(msgs), timeout=60)]
    assert not got[0].started.config.target_languages
    segments = [r.segment for r in got if r.HasField("segment")]
    assert len(segments) == 4 and all(not s.translations and s.transcript.text for s in segments)


async def test_without_an_identifier_detection_is_a_failed_precondition(live: LiveServer, shared_audio: Path) -> None:
    content, _ = shared_pcm(shared_audio, "jfk.flac")
    listed = await live.stub.ListLanguages(pb.ListLanguagesRequest())
    assert not listed.HasField("language_identifier") and not any(lang.detectable for lang in listed.languages)
    request = raw_request(content, pb.LINEAR16, language_detection=pb.LanguageDetection(enabled=True))
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await live.stub.Translate(request)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "download-lid-model" in (e.value.details() or "")


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


async def test_the_sdk_asks_for_asr_only_and_detection(detecting: LiveServer, shared_audio: Path) -> None:
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
        boosted = await client.translate(
            shared_audio / "jfk.flac", targets="spa", source="eng", speech=False, terms=[Term("kwq", weight=10)]
        )
        assert any("kw" in t.text for seg in boosted.segments for t in seg.translations)
        with pytest.raises(ValueError, match="ASR only"):
            await client.translate(shared_audio / "jfk.flac", targets=())  # no source, no detection


async def test_the_openai_door_detects_with_an_auto_source_language(detecting: LiveServer, shared_audio: Path) -> None:
    import base64

    from openai import AsyncOpenAI

    assert detecting.server.realtime is not None
    _, samples = shared_pcm(shared_audio, "jfk.flac")
    pcm24k = (np.clip(resample(samples, 16000, 24000), -1, 1) * 32767).astype("<i2").tobytes()
    client = AsyncOpenAI(base_url=f"http://127.0.0.1:{detecting.server.realtime.port}/v1", api_key="-", max_retries=0)
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
    assert deltas
    for ev in deltas:
        detected = ev.model_extra["x_detected"]
        assert set(detected["scores"]) == {"eng", "spa"} and ev.x_language == detected["language"]


# -- term lists -------------------------------------------------------------------------------------


async def texts_with_terms(live: LiveServer, content: bytes, terms: list[pb.Term]) -> list[tuple[str, str]]:
    """(transcript, Spanish) of every segment of ``content`` translated with ``terms``."""
    request = raw_request(
        content,
        pb.LINEAR16,
        source_language="eng",
        output=pb.OutputOptions(speech=False),
        terms=terms,
    )
    resp = await live.stub.Translate(request)
    return [(s.transcript.text, s.translations[0].text) for s in resp.segments]


async def test_an_empty_term_list_changes_nothing(live: LiveServer, shared_audio: Path, test_model_dir: Path) -> None:
    content, samples = shared_pcm(shared_audio, "jfk.flac")
    resp = await live.stub.Translate(raw_request(content, pb.LINEAR16, source_language="eng", terms=[]))
    assert len(resp.segments) == 4
    for seg in resp.segments:
        span = samples[seg.start_ms * 16 : seg.end_ms * 16]
        text, _ = hf_generate(test_model_dir, span, "spa")
        assert seg.translations[0].text == text
        assert seg.transcript.text == hf_generate(test_model_dir, span, "eng", speech=False)[0]


async def test_a_boosted_phrase_pulls_the_output_towards_it(live: LiveServer, shared_audio: Path) -> None:
    content, _ = shared_pcm(shared_audio, "jfk.flac")
    plain = await texts_with_terms(live, content, [])
    boosted = await texts_with_terms(live, content, [pb.Term(phrase="kwq", kind=pb.Term.BOOST, weight=10)])
    count = lambda texts: sum(t.count("kw") for pair in texts for t in pair)  # noqa: E731
    assert count(plain) == 0 and count(boosted) >= 8, boosted
    assert any("kwq" in t for pair in boosted for t in pair), boosted
    # a weak boost leaves this model's output as it was (its own preference is stronger)
    assert await texts_with_terms(live, content, [pb.Term(phrase="kwq", weight=0.5)]) == plain


async def test_a_kept_phrase_that_was_said_is_carried_into_the_translation(
    live: LiveServer, shared_audio: Path
) -> None:
    content, _ = shared_pcm(shared_audio, "jfk.flac")
    plain = await texts_with_terms(live, content, [])
    # a word of the (noise) transcript that its translation lacks
    said = next(
        w for transcript, spanish in plain for w in transcript.split() if len(w) >= 4 and w not in spanish.split()
    )
    kept = await texts_with_terms(live, content, [pb.Term(phrase=said, kind=pb.Term.KEEP)])
    for transcript, spanish in kept:
        if said.casefold() in transcript.casefold():
            assert said in spanish, (said, transcript, spanish)
    assert any(said in spanish for _, spanish in kept)
    # a kept phrase nobody said is never forced into a translation
    unsaid = await texts_with_terms(live, content, [pb.Term(phrase="qjxv", kind=pb.Term.KEEP)])
    assert not any("qjxv" in spanish for _, spanish in unsaid)


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
