"""The profanity filter against disguised words, through a real server (issue 87, J11): a listed
word ("mierda", LDNOOBW's Spanish list) written with an invisible character inside it (U+FE0F,
a variation selector: default-ignorable, and no control character, so a glossary entry may hold
it) or a Cyrillic look-alike letter (U+0435, Cyrillic small ie) came back unfiltered in MASK mode.

The test checkpoint's vocabulary has lowercase Latin letters only, so the server here runs a copy
of it in which two punctuation tokens are those characters (the random weights do not care what a
token's text is); a glossary entry forces the disguised word into the translation of
``TranslateText``, as tests/service/test_profanity_paths.py forces the plain word into speech's.
Decomposed accents cannot be forced this way (the tokenizer composes them: NFKC); the filter's own
tests (test_profanity.py) hold it to them, with every other disguise."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.support.live_server import LiveServer, make_settings, serving
from translate_svc.api.v1 import translate_pb2 as pb

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(20)]

#: tokens of the test checkpoint given another text: a variation selector and Cyrillic "е"
DISGUISES = {"!": "\ufe0f", "?": "\u0435"}
INVISIBLE = "mi\ufe0ferda"
LOOKALIKE = "mi\u0435rda"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def door(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    model = tmp_path_factory.mktemp("disguises") / "model"
    shutil.copytree(test_model_dir, model)
    tokenizer = json.loads((model / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    for old, new in DISGUISES.items():
        vocab[new] = vocab.pop(old)
    (model / "tokenizer.json").write_text(json.dumps(tokenizer))
    async with serving(make_settings(model), warmup=False) as live:
        yield live


async def translated(door: LiveServer, word: str, profanity: int) -> str:
    """The Spanish translation of "hello world, hello" with the glossary entry hello -> ``word``."""
    terms = [pb.Term(phrase="hello", kind=pb.Term.TRANSLATE, translation=word, target_language="spa")]
    output = pb.OutputOptions(text=True, speech=False, profanity=profanity)  # type: ignore[arg-type]
    request = pb.TranslateTextRequest(
        texts=["hello world, hello"], source_language="eng", target_languages=["spa"], output=output, terms=terms
    )
    resp = await door.stub.TranslateText(request, timeout=60)
    return str(resp.results[0].translations[0].text)


@pytest.mark.parametrize("word", [INVISIBLE, LOOKALIKE])
async def test_a_disguised_word_forced_into_a_translation_is_masked(door: LiveServer, word: str) -> None:
    """Off, the disguised word is there as forced (the device works); MASK masks it in the text as
    written (its first letter, then a star per character, the invisible one included)."""
    plain = await translated(door, word, pb.PROFANITY_FILTER_OFF)
    assert plain.split(" ")[0] == word, plain
    masked = await translated(door, word, pb.PROFANITY_FILTER_MASK)
    print(f"J11: {plain!r} masked {masked!r}")
    assert masked.split(" ")[0] == "m" + "*" * (len(word) - 1), masked
    assert word not in masked.split(" ")
