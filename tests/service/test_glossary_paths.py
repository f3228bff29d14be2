"""Glossary entries ("translate X as Y", Term kind TRANSLATE; issue 45) on every path, against
transformers' own ``generate`` on each segment (or text) alone, with the same forcing built from
transformers' primitives outside our code: ``BiasUntilWritten`` (``SequenceBiasLogitsProcessor`` on
the translation's first token, until it is written as often as the source says the phrase) and
``prefix_allowed_tokens_fn`` (``PrefixConstrainedLogitsProcessor``: once the row ends with a proper
prefix of the translation, only its next token is allowed). The source phrase is taken from what
the checkpoint transcribes, so the glossary acts on the random weights; every path must equal the
reference *and* the reference must differ from the plain translation, so a path that drops the
entry fails (and ``test_the_glossary_processor_taken_out_fails_the_parity`` takes it out of the
product to show it). Paths: a segment (with speech: it says the glossary text, as ``generate``'s
speech for that text), a simultaneous final step (alone, and after commits that end inside the
translation), ``TranslateText``, and the Riva door's dictionary lines ``source##target``. The words
asserted are our own translation's (the glossary's); the model's words only in equalities.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
import riva.client

from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.raw import raw_request, text_request
from tests.support.reference import (
    phrase_ids,
    plain_reference,
    word_count,
)
from tests.support.speech import shared_pcm
from tests.support.term_reference import TARGET, TRANSLATION, reference, source_phrase, transcript_of
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.model_api.requests import SimulTarget
from translate_svc.transport.riva.convert import parse_segment_fields
from translate_svc.types import OutputOptions, SimultaneousOptions, Term, TranslationTask
from translate_svc.wire.pcm import pcm16_to_float

pytestmark = [pytest.mark.integration, pytest.mark.slow(120)]
asyncio_mark = pytest.mark.asyncio(loop_scope="session")


def said(transcript: str, phrase: str) -> int:
    """Times the transcript says the entry's phrase: as a whole word, in its case."""
    return word_count(phrase, transcript, ignore_case=False)


def entry(phrase: str, **kw: Any) -> pb.Term:
    return pb.Term(phrase=phrase, kind=pb.Term.TRANSLATE, translation=TRANSLATION, target_language=TARGET, **kw)


def check_glossary(
    model_dir: Path, samples: np.ndarray, got: list[tuple[int, int, str]], phrase: str
) -> list[tuple[int, int]]:
    """Each (start_ms, end_ms, translation) equals the reference with the entry applied as often
    as the segment's transcript says the phrase; some segment is changed by it, and says the
    translation. The (start_ms, end_ms) of the changed ones."""
    assert got
    changed = []
    for start, end, text in got:
        span = samples[start * 16 : end * 16]
        times = said(transcript_of(model_dir, span), phrase)
        want = reference(model_dir, times, audio=span)[0]
        assert text == want, (start, phrase, times, text, want)
        if want != reference(model_dir, 0, audio=span)[0]:
            assert TRANSLATION in want
            changed.append((start, end))
    assert changed, f"the entry for {phrase!r} changed no segment's generate: the parity would not show it acts"
    return changed


@pytest.fixture(scope="module")
def jfk(shared_audio: Path) -> tuple[bytes, np.ndarray]:
    return shared_pcm(shared_audio, "jfk.flac")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def segments(live: LiveServer, jfk: tuple[bytes, np.ndarray], test_model_dir: Path) -> tuple[list[Any], str]:
    """The server's segments of jfk.flac and a phrase the checkpoint transcribes in them."""
    content, samples = jfk
    plain = await live.stub.Translate(
        raw_request(content, pb.LINEAR16, source_language="eng", target_languages=["spa"])
    )
    spans = [samples[s.start_ms * 16 : s.end_ms * 16] for s in plain.segments]
    return list(plain.segments), source_phrase(test_model_dir, spans)


@pytest.fixture(scope="module")
def own_runner(test_model_dir: Path) -> Any:
    """A runner of its own: the hooks steps install stay off the shared one."""
    from translate_svc.model.runner import SeamlessRunner
    from translate_svc.model.stages.seamless import SeamlessStages

    return SeamlessRunner(SeamlessStages(test_model_dir, device="cpu", dtype="float32"))


@asyncio_mark
async def test_a_segment_says_the_glossary_translation_in_text_and_speech_as_generate(
    live: LiveServer, jfk: tuple[bytes, np.ndarray], test_model_dir: Path, segments: tuple[list[Any], str]
) -> None:
    """No transcript asked for: the server decodes it to find the phrase. The speech of a changed
    segment is ``generate``'s speech of the glossary-bearing text (t2u runs over the final text)."""
    content, samples = jfk
    _, phrase = segments
    request = raw_request(
        content,
        pb.LINEAR16,
        source_language="eng",
        target_languages=[TARGET],
        output=pb.OutputOptions(transcript=False),
        terms=[entry(phrase)],
    )
    resp = await live.stub.Translate(request)
    assert not any(s.HasField("transcript") for s in resp.segments)
    got = [(s.start_ms, s.end_ms, s.translations[0].text) for s in resp.segments]
    changed = check_glossary(test_model_dir, samples, got, phrase)
    for s in resp.segments:
        if (s.start_ms, s.end_ms) not in changed:
            continue
        span = samples[s.start_ms * 16 : s.end_ms * 16]
        text, wave = reference(
            test_model_dir, said(transcript_of(test_model_dir, span), phrase), audio=span, speech=True
        )
        assert wave is not None and s.translations[0].text == text
        spoken = pcm16_to_float(np.frombuffer(s.translations[0].audio.content, "<i2"))
        assert spoken.shape == wave.shape
        np.testing.assert_allclose(spoken, wave, atol=1e-4)


@asyncio_mark
async def test_an_entry_matches_in_its_case_unless_it_ignores_case(
    live: LiveServer, jfk: tuple[bytes, np.ndarray], test_model_dir: Path, segments: tuple[list[Any], str]
) -> None:
    content = jfk[0]
    _, phrase = segments
    other = phrase.swapcase()
    if other == phrase:
        pytest.fail(f"{phrase!r} has no letters to change the case of")
    output = pb.OutputOptions(speech=False)

    async def translations(term: pb.Term) -> list[str]:
        req = raw_request(content, pb.LINEAR16, source_language="eng", output=output, terms=[term])
        return [s.translations[0].text for s in (await live.stub.Translate(req)).segments]

    plain = [s.translations[0].text for s in segments[0]]
    assert await translations(entry(other)) == plain  # another case: not said
    ignoring = await translations(entry(other, ignore_case=True))
    assert ignoring == await translations(entry(phrase)) != plain


def test_a_simultaneous_final_step_equals_generate_alone_and_after_commits_inside_the_translation(
    own_runner: Any, jfk: tuple[bytes, np.ndarray], test_model_dir: Path, segments: tuple[list[Any], str]
) -> None:
    """The product's ``results.step_input`` (which asks a transcript because the entry needs it):
    a final step with nothing committed equals the reference's text (its speech is t2u over every
    committed token, also where the token bound cut the decode, which ``generate`` does not speak:
    speech parity is the segment path's test); one whose committed
    tokens end inside the translation (a commit made by an earlier step) finishes the translation
    and equals the reference too: the forced prefix and the glossary's forcing agree."""
    from translate_svc.session.task import inputs

    _, samples = jfk
    plain_segments, phrase = segments
    task = TranslationTask(
        "eng",
        (TARGET,),
        OutputOptions(transcript=False),
        terms=(Term(phrase, glossary=True, translation=TRANSLATION, target_language=TARGET),),
        simultaneous=SimultaneousOptions(),
    )
    tokenizer = plain_reference(test_model_dir).processor.tokenizer
    ids = phrase_ids(test_model_dir, TRANSLATION)
    seen = 0
    for s in plain_segments:
        span = samples[s.start_ms * 16 : s.end_ms * 16]
        times = said(transcript_of(test_model_dir, span), phrase)
        want = reference(test_model_dir, times, audio=span)[0]
        item = inputs.step_input(task, span, (SimulTarget(TARGET),), final=True)
        (out,) = own_runner.retranslator.retranslate([item])
        row = out.simul[TARGET]
        assert row.text == want
        if TRANSLATION not in want:
            continue
        seen += 1
        assert row.chunk is not None  # spoken: t2u over the committed (glossary-bearing) tokens
        full = list(row.token_ids)
        start = next(i for i in range(len(full)) if tuple(full[i : i + len(ids)]) == ids)
        inside = tuple(full[: start + 2])  # the translation's first two tokens committed
        assert tokenizer.decode(list(inside[start:])) != TRANSLATION
        item = inputs.step_input(task, span, (SimulTarget(TARGET, committed=inside),), final=True)
        (after,) = own_runner.retranslator.retranslate([item])
        assert after.simul[TARGET].text == want and after.simul[TARGET].token_ids[: len(inside)] == inside
    assert seen, "no segment's reference says the translation: the steps would not show the entry acts"


def test_the_glossary_processor_taken_out_fails_the_parity(
    own_runner: Any,
    jfk: tuple[bytes, np.ndarray],
    test_model_dir: Path,
    segments: tuple[list[Any], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The product's segment path without ``GlossaryForce`` no longer equals the reference."""
    from translate_svc.model.stages import terms
    from translate_svc.session.task import inputs

    samples = jfk[1]
    plain_segments, phrase = segments
    task = TranslationTask(
        "eng",
        (TARGET,),
        OutputOptions(speech=False, transcript=False),
        terms=(Term(phrase, glossary=True, translation=TRANSLATION, target_language=TARGET),),
    )

    def texts() -> list[str]:
        items = [inputs.model_input(task, samples[s.start_ms * 16 : s.end_ms * 16], final=True) for s in plain_segments]
        return [out.texts[TARGET] for out in own_runner.run(items)]

    wants = [
        reference(test_model_dir, said(transcript_of(test_model_dir, span), phrase), audio=span)[0]
        for span in (samples[s.start_ms * 16 : s.end_ms * 16] for s in plain_segments)
    ]
    assert texts() == wants
    monkeypatch.setattr(terms.GlossaryForce, "__call__", lambda self, input_ids, scores: scores)
    assert texts() != wants


@asyncio_mark
async def test_translate_text_says_the_translation_where_the_text_has_the_phrase(
    live: LiveServer, test_model_dir: Path
) -> None:
    phrase = "report"
    text, other = f"Please send the {phrase} to me.", "Nothing here."
    output = pb.OutputOptions(speech=True)
    resp = await live.stub.TranslateText(
        text_request([text, other], target_languages=[TARGET], output=output, terms=[entry(phrase)])
    )
    want, wave = reference(test_model_dir, 1, text=text, speech=True)
    plain = reference(test_model_dir, 0, text=text)[0]
    assert TRANSLATION in want and want != plain
    tr = resp.results[0].translations[0]
    assert tr.text == want
    assert wave is not None and tr.audio.num_samples == len(wave)
    assert resp.results[1].translations[0].text == reference(test_model_dir, 0, text=other)[0]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def riva_door(test_model_dir: Path) -> AsyncIterator[LiveServer]:
    settings = make_settings(test_model_dir)
    settings.server.riva = True
    async with serving(settings, warmup=False) as live:
        yield live


@asyncio_mark
async def test_riva_dictionary_lines_translate_the_phrase_on_the_streams_target(
    riva_door: LiveServer, jfk: tuple[bytes, np.ndarray], test_model_dir: Path, segments: tuple[list[Any], str]
) -> None:
    content, samples = jfk
    _, phrase = segments
    client = riva.client.NeuralMachineTranslationClient(riva.client.Auth(uri=f"127.0.0.1:{riva_door.port}"))
    cfg = riva.client.StreamingTranslateSpeechToTextConfig(
        asr_config=riva.client.StreamingRecognitionConfig(
            config=riva.client.RecognitionConfig(
                encoding=riva.client.AudioEncoding.LINEAR_PCM, sample_rate_hertz=16000, language_code="en-US"
            )
        ),
        translation_config=riva.client.TranslationConfig(
            target_language_code="es-ES", dnt_phrases=[f"{phrase}##{TRANSLATION}"]
        ),
    )
    chunks = [content[i : i + 6400] for i in range(0, len(content), 6400)]
    responses = await asyncio.to_thread(lambda: list(client.streaming_s2t_response_generator(chunks, cfg)))
    got = []
    for r in responses:
        fields = parse_segment_fields(r.id.value)
        got.append((int(fields["start_ms"]), int(fields["end_ms"]), r.results[0].alternatives[0].transcript))
    check_glossary(test_model_dir, samples, got, phrase)
