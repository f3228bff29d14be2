"""The profanity filter (issue 72) through the doors, on real speech: a glossary entry forces a
listed word ("mierda", LDNOOBW's Spanish list) into the translation of a phrase the checkpoint
transcribes in jfk.flac, so the random-weight model says it; then

- ``output.profanity`` MASK: no segment's text says it, some says ``m*****``, and that segment's
  speech differs from the unfiltered speech (it is made from the tokens without the word; the
  runner's own test, tests/model/finish/test_profanity.py, spies the tokens t2u is given);
- REMOVE: neither the word nor a mask; OFF (and unset, for a tenant without a default): the word;
- a tenant's ``profanity=mask`` (tokens file) applies where the call sets none, and a call's
  own OFF wins over it;
- the Riva door's ``profanity_filter`` through Riva's own client;
- an unknown value: INVALID_ARGUMENT naming ``output.profanity``.
"""

from __future__ import annotations

import asyncio
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
from tests.support.speech import shared_pcm
from tests.support.term_reference import source_phrase
from tests.support.tokens import bearer
from translate_svc import words
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.client import AsyncTranslateClient, Term

pytestmark = [pytest.mark.integration, pytest.mark.slow(120)]
asyncio_mark = pytest.mark.asyncio(loop_scope="module")

WORD = "mierda"
MASKED = "m*****"
KIDS, ADULTS = "profanity-kids-token-4f1a", "profanity-adults-token-9c2e"


def says(text: str) -> bool:
    return bool(words.spans(WORD, text, ignore_case=True))


@pytest.fixture(scope="module")
def jfk(shared_audio: Path) -> tuple[bytes, np.ndarray]:
    return shared_pcm(shared_audio, "jfk.flac")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def door(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    tokens = tmp_path_factory.mktemp("profanity") / "tokens"
    tokens.write_text(f"{KIDS} * tenant=kids profanity=mask\n{ADULTS} * tenant=adults\n")
    settings = make_settings(test_model_dir)
    settings.auth.tokens_file = tokens
    settings.server.riva = True
    async with serving(settings, warmup=False) as live:
        yield live


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def phrase(door: LiveServer, jfk: tuple[bytes, np.ndarray], test_model_dir: Path) -> str:
    """A phrase the checkpoint transcribes in some segment of jfk.flac."""
    content, samples = jfk
    plain = await door.stub.Translate(raw_request(content, pb.LINEAR16, source_language="eng"), metadata=bearer(ADULTS))
    return source_phrase(test_model_dir, [samples[s.start_ms * 16 : s.end_ms * 16] for s in plain.segments])


async def translate(door: LiveServer, content: bytes, phrase: str, token: str, profanity: int | None) -> list[Any]:
    """Each segment's Spanish translation, with the glossary entry ``phrase`` -> ``WORD``."""
    output = pb.OutputOptions(transcript=False)
    if profanity is not None:
        output.profanity = profanity  # type: ignore[assignment]
    entry = pb.Term(phrase=phrase, kind=pb.Term.TRANSLATE, translation=WORD, target_language="spa")
    request = raw_request(content, pb.LINEAR16, source_language="eng", output=output, terms=[entry])
    resp = await door.stub.Translate(request, metadata=bearer(token), timeout=120)
    return [s.translations[0] for s in resp.segments]


@asyncio_mark
async def test_mask_remove_and_off_on_a_glossary_forced_word(
    door: LiveServer, jfk: tuple[bytes, np.ndarray], phrase: str
) -> None:
    content, _ = jfk
    off = await translate(door, content, phrase, ADULTS, pb.PROFANITY_FILTER_OFF)
    assert any(says(t.text) for t in off), "the glossary did not force the word: nothing to filter"
    masked = await translate(door, content, phrase, ADULTS, pb.PROFANITY_FILTER_MASK)
    removed = await translate(door, content, phrase, ADULTS, pb.PROFANITY_FILTER_REMOVE)
    assert len(off) == len(masked) == len(removed)
    for o, m, r in zip(off, masked, removed, strict=True):
        assert not says(m.text) and not says(r.text) and "*" not in r.text
        if says(o.text):
            assert MASKED in m.text and len(m.text) == len(o.text)
            # spoken from the tokens without the word: not the unfiltered speech
            assert m.audio.content and m.audio.content != o.audio.content
            assert r.audio.content != o.audio.content
        else:
            assert m.text == o.text and m.audio.content == o.audio.content


@asyncio_mark
async def test_a_tenants_default_applies_where_the_call_sets_none(
    door: LiveServer, jfk: tuple[bytes, np.ndarray], phrase: str
) -> None:
    content, _ = jfk
    kids = await translate(door, content, phrase, KIDS, None)
    assert not any(says(t.text) for t in kids) and any(MASKED in t.text for t in kids)
    adults = await translate(door, content, phrase, ADULTS, None)
    assert any(says(t.text) for t in adults)  # no default stated: off
    own = await translate(door, content, phrase, KIDS, pb.PROFANITY_FILTER_OFF)
    assert any(says(t.text) for t in own)  # the call's own setting wins


@asyncio_mark
async def test_an_unknown_value_is_invalid_argument_naming_the_field(
    door: LiveServer, jfk: tuple[bytes, np.ndarray]
) -> None:
    output = pb.OutputOptions()
    output.profanity = 7  # type: ignore[assignment]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await door.stub.Translate(raw_request(jfk[0][:32000], pb.LINEAR16, output=output), metadata=bearer(ADULTS))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "output.profanity" in (err.value.details() or "")


@asyncio_mark
async def test_the_riva_doors_profanity_filter_masks(
    door: LiveServer, jfk: tuple[bytes, np.ndarray], phrase: str
) -> None:
    content, _ = jfk
    auth = riva.client.Auth(uri=f"127.0.0.1:{door.port}", metadata_args=[["authorization", f"Bearer {ADULTS}"]])
    client = riva.client.NeuralMachineTranslationClient(auth)

    def texts(filtered: bool) -> list[str]:
        cfg = riva.client.StreamingTranslateSpeechToTextConfig(
            asr_config=riva.client.StreamingRecognitionConfig(
                config=riva.client.RecognitionConfig(
                    encoding=riva.client.AudioEncoding.LINEAR_PCM,
                    sample_rate_hertz=16000,
                    language_code="en-US",
                    profanity_filter=filtered,
                )
            ),
            translation_config=riva.client.TranslationConfig(
                target_language_code="es-ES", dnt_phrases=[f"{phrase}##{WORD}"]
            ),
        )
        chunks = [content[i : i + 6400] for i in range(0, len(content), 6400)]
        return [r.results[0].alternatives[0].transcript for r in client.streaming_s2t_response_generator(chunks, cfg)]

    plain = await asyncio.to_thread(texts, False)
    assert any(says(t) for t in plain)
    filtered = await asyncio.to_thread(texts, True)
    assert not any(says(t) for t in filtered) and any(MASKED in t for t in filtered)


@asyncio_mark
async def test_translate_text_through_the_sdk_masks_and_removes(door: LiveServer) -> None:
    """TranslateText with the SDK's ``profanity=``: a text whose glossary entry writes the word."""
    entry = Term("hello", translation=WORD, target_language="spa")
    async with AsyncTranslateClient(
        [f"127.0.0.1:{door.port}"], token=ADULTS, allow_plaintext_token=True, timeout_s=120
    ) as client:

        async def text(profanity: Any) -> str:
            got = await client.translate_text(
                "hello world", source="eng", targets="spa", terms=[entry], profanity=profanity
            )
            return got.results[0].translations[0].text

        plain = await text("off")
        assert says(plain)
        masked, removed = await text("mask"), await text("remove")
    assert not says(masked) and MASKED in masked and len(masked) == len(plain)
    assert not says(removed) and "*" not in removed
