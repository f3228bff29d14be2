"""KEEP terms act on every path (issue 45), checked on ``jfk.flac`` against transformers' own
``generate`` on each segment alone: the transcript (in the spoken language) boosted towards the
kept phrase, then the translation biased by ``KEEP_WEIGHT`` as often as that transcript holds the
phrase (``tests/service/test_language.py``'s ``reference_text``). Each path must equal that
reference *and* differ from the plain translation somewhere, so a path that drops the term fails:
with a transcript asked for, without one, without a source language (the spoken language detected
internally), on the Riva door's ``dnt_phrases`` (which never asks for a transcript), and in a
simultaneous open step. A request the server cannot honour (KEEP, no source language, no
identifier) is INVALID_ARGUMENT naming what is missing. (``TranslateText``'s KEEP terms:
tests/transport/grpc/test_translate_text.py.) The words are the random model's: only equalities and
the phrase's presence are asserted.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import pytest_asyncio
import riva.client

from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.raw import raw_request
from tests.support.reference import reference_text
from tests.support.speech import shared_pcm
from tests.support.term_reference import kept_reference, whole_word_phrase
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.model_api.requests import SimulTarget
from translate_svc.transport.riva.convert import parse_segment_fields
from translate_svc.types import OutputOptions, SimultaneousOptions, Term, TranslationTask

# async tests run on the session loop (pyproject: asyncio_mode auto, asyncio_default_test_loop_scope);
# no module-level asyncio mark: it would land on the sync tests too (a PytestWarning)
pytestmark = [pytest.mark.integration, pytest.mark.slow(90)]


def phrase_said_in(model_dir: Path, spans: list[np.ndarray], lang: str) -> str:
    """A phrase that a segment's plain ``lang`` transcript says as a whole word: a token that the
    tokenizer writes for its own text, not continued by the next (test_language's
    ``whole_word_phrase``)."""
    for span in spans:
        phrase = whole_word_phrase(model_dir, reference_text(model_dir, span, lang)[1])
        if phrase:
            return phrase
    pytest.fail(f"no segment's plain {lang} transcript says a one-token word")


def check_kept(
    model_dir: Path, samples: np.ndarray, got: list[tuple[int, int, str]], spoken: str, target: str, phrase: str
) -> None:
    """Each (start_ms, end_ms, translation) equals the kept reference; some differ from the plain."""
    assert got
    changed = 0
    for start, end, text in got:
        kept, plain = kept_reference(model_dir, samples[start * 16 : end * 16], spoken, target, phrase)
        assert text == kept, (start, phrase, text, kept, plain)
        changed += kept != plain
    assert changed, f"keeping {phrase!r} changed no segment's generate: the parity would not show it acts"


@pytest.fixture(scope="module")
def own_runner(test_model_dir: Path) -> Any:
    """A runner of its own: the duration hook that steps install stays off the shared one."""
    from translate_svc.model.runner import SeamlessRunner
    from translate_svc.model.stages.seamless import SeamlessStages

    return SeamlessRunner(SeamlessStages(test_model_dir, device="cpu", dtype="float32"))


@pytest.fixture(scope="module")
def jfk(shared_audio: Path) -> tuple[bytes, np.ndarray]:
    return shared_pcm(shared_audio, "jfk.flac")


@pytest.mark.parametrize("transcript", [True, False])
async def test_a_kept_phrase_acts_with_and_without_a_transcript_asked_for(
    live: LiveServer, jfk: tuple[bytes, np.ndarray], test_model_dir: Path, transcript: bool
) -> None:
    content, samples = jfk
    plain = await live.stub.Translate(
        raw_request(content, pb.LINEAR16, source_language="eng", target_languages=["spa"])
    )
    spans = [samples[s.start_ms * 16 : s.end_ms * 16] for s in plain.segments]
    phrase = phrase_said_in(test_model_dir, spans, "eng")
    output = pb.OutputOptions(speech=False, transcript=transcript)
    request = raw_request(
        content,
        pb.LINEAR16,
        source_language="eng",
        target_languages=["spa"],
        output=output,
        terms=[pb.Term(phrase=phrase, kind=pb.Term.KEEP)],
    )
    resp = await live.stub.Translate(request)
    assert all(s.HasField("transcript") == transcript for s in resp.segments)
    got = [(s.start_ms, s.end_ms, s.translations[0].text) for s in resp.segments]
    check_kept(test_model_dir, samples, got, "eng", "spa", phrase)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def identifying(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    """A server whose identifier always picks Spanish (a biased test checkpoint): the language
    the transcript of a request without a source language is decoded in is known."""
    from translate_svc.app import build_lid_test_checkpoint

    lid = tmp_path_factory.mktemp("lid") / "spa"
    build_lid_test_checkpoint(lid, bias="spa")
    settings = make_settings(test_model_dir)
    settings.model.lid_path = lid
    async with serving(settings, warmup=False) as live:
        yield live


async def test_a_kept_phrase_acts_without_a_source_language(
    identifying: LiveServer, live: LiveServer, jfk: tuple[bytes, np.ndarray], test_model_dir: Path
) -> None:
    """No source language, no detection asked: the server detects the spoken language itself,
    decodes the transcript in it (neither is returned), and keeps the phrase where it was said. A
    server without an identifier cannot: INVALID_ARGUMENT naming source_language."""
    content, samples = jfk
    plain = await live.stub.Translate(
        raw_request(content, pb.LINEAR16, source_language="eng", target_languages=["fra"])
    )
    spans = [samples[s.start_ms * 16 : s.end_ms * 16] for s in plain.segments]
    phrase = phrase_said_in(test_model_dir, spans, "spa")
    request = raw_request(
        content,
        pb.LINEAR16,
        target_languages=["fra"],
        output=pb.OutputOptions(speech=False),
        terms=[pb.Term(phrase=phrase, kind=pb.Term.KEEP)],
    )
    resp = await identifying.stub.Translate(request)
    assert not any(s.HasField("transcript") or s.HasField("detected_language") for s in resp.segments)
    got = [(s.start_ms, s.end_ms, s.translations[0].text) for s in resp.segments]
    check_kept(test_model_dir, samples, got, "spa", "fra", phrase)
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await live.stub.Translate(request)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "terms[0] is KEEP" in (e.value.details() or "") and "source_language" in (e.value.details() or "")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def riva_door(test_model_dir: Path) -> AsyncIterator[LiveServer]:
    settings = make_settings(test_model_dir)
    settings.server.riva = True
    async with serving(settings, warmup=False) as live:
        yield live


async def test_riva_dnt_phrases_act_though_riva_asks_for_no_transcript(
    riva_door: LiveServer, jfk: tuple[bytes, np.ndarray], test_model_dir: Path
) -> None:
    content, samples = jfk
    plain = await riva_door.stub.Translate(
        raw_request(content, pb.LINEAR16, source_language="eng", target_languages=["spa"])
    )
    phrase = phrase_said_in(test_model_dir, [samples[s.start_ms * 16 : s.end_ms * 16] for s in plain.segments], "eng")
    client = riva.client.NeuralMachineTranslationClient(riva.client.Auth(uri=f"127.0.0.1:{riva_door.port}"))
    cfg = riva.client.StreamingTranslateSpeechToTextConfig(
        asr_config=riva.client.StreamingRecognitionConfig(
            config=riva.client.RecognitionConfig(
                encoding=riva.client.AudioEncoding.LINEAR_PCM, sample_rate_hertz=16000, language_code="en-US"
            )
        ),
        translation_config=riva.client.TranslationConfig(target_language_code="es-ES", dnt_phrases=[phrase]),
    )
    chunks = [content[i : i + 6400] for i in range(0, len(content), 6400)]
    responses = await asyncio.to_thread(lambda: list(client.streaming_s2t_response_generator(chunks, cfg)))
    got = []
    for r in responses:
        fields = parse_segment_fields(r.id.value)
        got.append((int(fields["start_ms"]), int(fields["end_ms"]), r.results[0].alternatives[0].transcript))
    check_kept(test_model_dir, samples, got, "eng", "spa", phrase)


def test_a_kept_phrase_reaches_an_open_simultaneous_step(
    own_runner: Any, jfk: tuple[bytes, np.ndarray], test_model_dir: Path
) -> None:
    """An open step (the product's ``results.step_input``, which asks no transcript for the client)
    still decodes the transcript when KEEP terms need it: the step's hypothesis equals the kept
    reference on the speech so far, and differs from the plain one somewhere."""
    from translate_svc.session.task import inputs

    _, samples = jfk
    task = TranslationTask(
        "eng",
        ("spa",),
        OutputOptions(speech=False, transcript=False),
        simultaneous=SimultaneousOptions(),
    )
    plain_spans = [samples[: n * 16000] for n in (3, 5, 7, 9)]
    phrase = phrase_said_in(test_model_dir, plain_spans, "eng")
    kept_task = dataclasses.replace(task, terms=(Term(phrase, keep=True),))
    got = []
    for span in plain_spans:
        item = inputs.step_input(kept_task, span, (SimulTarget("spa"),), final=False)
        (out,) = own_runner.retranslator.retranslate([item], commit=lambda target, ids, starts: ())
        assert out.simul is not None
        got.append((0, len(span) // 16, out.simul["spa"].text))
    check_kept(test_model_dir, samples, got, "eng", "spa", phrase)
