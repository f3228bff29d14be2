"""TranslateText (issue 36) over a real server on loopback: texts in, translations and speech out,
equal to generate on each text; terms; limits and refusals that say what to fix; the same engine
batches as speech; admission, tenants' caps and permissions as Translate."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import pytest_asyncio
from google.rpc import code_pb2
from prometheus_client import REGISTRY

from tests.support.fake_runner import FakeRunner
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.raw import raw_request, text_request
from tests.support.reference import hf_generate_text, word_count
from tests.support.speech import jfk_16k
from tests.support.term_reference import server_cap
from tests.support.tokens import bearer
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.model.stages.terms import KEEP_WEIGHT
from translate_svc.wire.pcm import pcm16_to_float

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(30)]

TEXTS = ["Hello world, how are you today?", "Short.", "The meeting moved to Thursday at nine."]


async def test_two_targets_text_and_speech_equal_generate_on_each_text(live: LiveServer, test_model_dir: Path) -> None:
    before = len(live.batches)
    resp = await live.stub.TranslateText(text_request(TEXTS))
    assert len(resp.results) == len(TEXTS) and resp.model.is_test_model
    assert sum(b.size for b in live.batches[before:]) == len(TEXTS)  # one engine job per text
    assert max(b.size for b in live.batches[before:]) > 1  # batched together
    for text, result in zip(TEXTS, resp.results, strict=True):
        assert result.status.code == code_pb2.OK
        assert [t.target_language for t in result.translations] == ["spa", "fra"]
        assert result.timing.model_ms > 0 and result.timing.total_ms >= result.timing.model_ms
        for tr in result.translations:
            ref_text, wave = hf_generate_text(
                test_model_dir, text, "eng", tr.target_language, max_new_tokens=server_cap(test_model_dir, text)
            )
            assert tr.text == ref_text, (text, tr.target_language)
            assert tr.audio.sample_rate_hz == 16000 and tr.audio.num_samples == len(wave)
            got = pcm16_to_float(np.frombuffer(tr.audio.content, "<i2"))  # the server writes x 32768
            np.testing.assert_allclose(got, wave, atol=1e-4)


async def test_output_options_apply_to_text(live: LiveServer) -> None:
    plain = await live.stub.TranslateText(text_request(TEXTS[:1], output=pb.OutputOptions(speech=False)))
    assert all(not t.HasField("audio") for t in plain.results[0].translations)
    speech_only = await live.stub.TranslateText(
        text_request(TEXTS[:1], output=pb.OutputOptions(text=False, speech_sample_rate_hz=24000, speaker_id=1))
    )
    default = await live.stub.TranslateText(text_request(TEXTS[:1]))
    for t, d in zip(speech_only.results[0].translations, default.results[0].translations, strict=True):
        assert t.text == "" and t.audio.sample_rate_hz == 24000 and t.audio.num_samples > 0
        assert t.audio.num_samples == len(t.audio.content) // 2
        # a voice changes the vocoder's waveform, not its length: 24 kHz has 1.5 times 16 kHz's samples
        assert abs(t.audio.num_samples - 1.5 * d.audio.num_samples) <= 2
    opus = await live.stub.TranslateText(
        text_request(
            TEXTS[:1], target_languages=["spa"], output=pb.OutputOptions(speech_encoding=pb.SPEECH_ENCODING_OPUS)
        )
    )
    audio = opus.results[0].translations[0].audio
    assert audio.encoding == pb.SPEECH_ENCODING_OPUS and audio.sample_rate_hz == 48000 and audio.opus_packets


def says(phrase: str, text: str) -> bool:
    """``text`` has ``phrase`` verbatim, as a whole word."""
    return word_count(phrase, text, ignore_case=False) > 0


def kept_phrase(model_dir: Path) -> tuple[str, str]:
    """A phrase and a text holding it such that, kept, generate (the reference) writes it into
    both the Spanish and the French while without the term at least one of them lacks it: so the
    parity below shows the term applied. Found by construction, as test_language's ``said_phrase``:
    the first single-token phrase of the checkpoint's tokenizer that does it."""
    from tests.support.reference import plain_reference

    tokenizer = plain_reference(model_dir).processor.tokenizer
    special = set(tokenizer.all_special_ids)
    for token in range(len(tokenizer)):
        phrase = tokenizer.decode([token]).strip()
        if token in special or not phrase.isalpha():
            continue
        if tuple(tokenizer(phrase, add_special_tokens=False)["input_ids"]) != (token,):
            continue
        text = f"Please ask {phrase} about the report."
        times = word_count(phrase, text, ignore_case=True)  # as row_terms counts it
        cap = server_cap(model_dir, text)
        kept = [
            hf_generate_text(model_dir, text, "eng", lang, False, cap, bias=(phrase, KEEP_WEIGHT, times))[0]
            for lang in ("spa", "fra")
        ]
        plain = [hf_generate_text(model_dir, text, "eng", lang, False, cap)[0] for lang in ("spa", "fra")]
        if all(says(phrase, k) for k in kept) and not all(says(phrase, p) for p in plain):
            return phrase, text
    pytest.fail("no single-token phrase is carried by a KEEP bias: cannot show the term applied")


async def test_a_kept_phrase_in_the_text_is_carried_into_every_translation_as_generate_with_its_bias(
    live: LiveServer, test_model_dir: Path
) -> None:
    """KEEP looks for the phrase in the text itself (a segment's transcript, for speech): where the
    text holds it, every translation is decoded with it biased (KEEP_WEIGHT) until written as often
    as the text has it (row_terms), equal to generate with that bias; a text without it is
    translated as without the term (never forced in)."""
    phrase, text = kept_phrase(test_model_dir)
    other = "Nothing to keep here."
    assert phrase.casefold() not in other.casefold()
    terms = [pb.Term(phrase=phrase, kind=pb.Term.KEEP)]
    output = pb.OutputOptions(speech=False)
    kept = await live.stub.TranslateText(text_request([text, other], terms=terms, output=output))
    plain = await live.stub.TranslateText(text_request([text, other], output=output))
    times = word_count(phrase, text, ignore_case=True)
    cap = server_cap(test_model_dir, text)
    changed = False
    for k, lang in enumerate(["spa", "fra"]):
        said = kept.results[0].translations[k].text
        ref, _ = hf_generate_text(test_model_dir, text, "eng", lang, False, cap, bias=(phrase, KEEP_WEIGHT, times))
        assert said == ref and says(phrase, said), (lang, phrase, said, ref)
        unkept = plain.results[0].translations[k].text
        assert unkept == hf_generate_text(test_model_dir, text, "eng", lang, False, cap)[0]
        changed |= not says(phrase, unkept)
        assert kept.results[1].translations[k].text == plain.results[1].translations[k].text
    assert changed, "the phrase came out without the term too: this test would not show the term applied"


@pytest.mark.parametrize(
    ("kw", "code", "words"),
    [
        ({"texts": []}, grpc.StatusCode.INVALID_ARGUMENT, "texts is empty"),
        ({"texts": ["ok", "  "]}, grpc.StatusCode.INVALID_ARGUMENT, "texts[1] is blank"),
        ({"texts": ["a"] * 17}, grpc.StatusCode.INVALID_ARGUMENT, "at most 16 per request"),
        ({"texts": ["a" * 2001]}, grpc.StatusCode.INVALID_ARGUMENT, "at most 2000"),
        ({"texts": ["a" * 1900] * 5}, grpc.StatusCode.INVALID_ARGUMENT, "at most 8000 per request"),
        ({"source_language": ""}, grpc.StatusCode.INVALID_ARGUMENT, "source_language is empty"),
        ({"source_language": "xx1"}, grpc.StatusCode.INVALID_ARGUMENT, "unknown source language"),
        ({"target_languages": []}, grpc.StatusCode.INVALID_ARGUMENT, "target_languages is empty"),
        ({"target_languages": ["zzz"]}, grpc.StatusCode.INVALID_ARGUMENT, "unknown target language"),
        ({"output": pb.OutputOptions(text=False, speech=False)}, grpc.StatusCode.INVALID_ARGUMENT, "asks for nothing"),
        ({"output": pb.OutputOptions(speaker_id=999)}, grpc.StatusCode.INVALID_ARGUMENT, "speaker_id"),
        ({"terms": [pb.Term(phrase="x" * 65)]}, grpc.StatusCode.INVALID_ARGUMENT, "at most 64"),
    ],
)
async def test_bad_text_requests_say_what_to_fix_and_the_server_goes_on(
    live: LiveServer, kw: dict[str, object], code: grpc.StatusCode, words: str
) -> None:
    texts = kw.pop("texts", ["Hello."])
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await live.stub.TranslateText(text_request(texts, **kw))  # type: ignore[arg-type]
    assert e.value.code() == code and words in (e.value.details() or ""), e.value
    ok = await live.stub.TranslateText(text_request(["Hello."], output=pb.OutputOptions(speech=False)))
    assert len(ok.results) == 1


async def test_a_message_protobuf_cannot_parse_is_invalid_argument(live: LiveServer) -> None:
    call = live.channel.unary_unary(
        "/translate_svc.api.v1.Translator/TranslateText", request_serializer=None, response_deserializer=None
    )
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await call(b"\xff\xff\xff")
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "TranslateTextRequest" in (e.value.details() or "")


async def test_the_text_limits_are_published(live: LiveServer) -> None:
    limits = (await live.stub.ListLanguages(pb.ListLanguagesRequest())).limits
    assert (limits.max_texts, limits.max_text_chars, limits.max_text_request_chars) == (16, 2000, 8000)


# -- the engine, admission and tenants, on a fake model (the words do not matter here) ----------

TOKEN_TEXT = "text-token-translate-7f1e"
TOKEN_STREAM = "text-token-stream-only-22ab"
TOKEN_ANY = "text-token-any-93cd"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def gated(
    test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[LiveServer, FakeRunner]]:
    tokens = tmp_path_factory.mktemp("text-tokens") / "tokens"
    tokens.write_text(
        f"{TOKEN_TEXT} translate,languages tenant=texter translate_calls=1\n"
        f"{TOKEN_STREAM} stream\n{TOKEN_ANY} * tenant=other\n"
    )
    settings = make_settings(test_model_dir, max_wait_ms=50)
    settings.auth.tokens_file = tokens
    fake = FakeRunner()
    async with serving(settings, runner_factory=lambda: fake) as live:
        yield live, fake


async def until(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    """Wait (on the loop, yielding to the server) until ``condition()`` holds; fail after 20 s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


async def test_texts_share_engine_batches_with_speech_segments(
    gated: tuple[LiveServer, FakeRunner], shared_audio: Path
) -> None:
    """Text jobs go through the engine's one queue and scheduler: while the model is held, a
    Translate clip's segments and a TranslateText's texts queue, then run in the same batch."""
    live, fake = gated
    engine = live.server.app.engine
    fake.gate.clear()
    fake.started.clear()
    try:
        first = asyncio.ensure_future(
            live.stub.TranslateText(text_request(["hold the model"]), metadata=bearer(TOKEN_TEXT))
        )
        await until(fake.started.is_set, "the first batch in the model")
        pcm = (jfk_16k(shared_audio) * 32767).astype("<i2").tobytes()
        clip = asyncio.ensure_future(
            live.stub.Translate(raw_request(pcm, pb.LINEAR16, target_languages=["spa"]), metadata=bearer(TOKEN_ANY))
        )
        await until(lambda: engine.stats().queued == 4, "the clip's four segments queued")
        # the tenant's one Translate call is held by ``first``: a second is refused, naming the cap
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await live.stub.TranslateText(text_request(["x"]), metadata=bearer(TOKEN_TEXT))
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "translate_calls" in (e.value.details() or "")
        texts = asyncio.ensure_future(live.stub.TranslateText(text_request(["uno", "dos"]), metadata=bearer(TOKEN_ANY)))
        await until(lambda: engine.stats().queued == 6, "the texts queued beside the segments")
    finally:
        fake.gate.set()
    ran_before = len(fake.ran)
    resp, clip_resp, _ = await asyncio.gather(texts, clip, first)
    assert [[t.text for t in r.translations] for r in resp.results] == [
        ["spa:text=uno", "fra:text=uno"],
        ["spa:text=dos", "fra:text=dos"],
    ]
    assert len(clip_resp.segments) == 4
    mixed = [b for b in fake.ran[ran_before - 1 :] if any(i.text for i in b) and any(i.text is None for i in b)]
    assert mixed, "no batch held both a text and a speech segment"


async def test_text_needs_the_translate_permission_and_counts_as_the_tenants_call(
    gated: tuple[LiveServer, FakeRunner],
) -> None:
    live, _ = gated
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await live.stub.TranslateText(text_request(["Hello."]), metadata=bearer(TOKEN_STREAM))
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED and '"translate"' in (e.value.details() or "")
    labels = {"tenant": "texter", "method": "translate_text", "code": "OK"}
    before = REGISTRY.get_sample_value("translate_svc_tenant_calls_total", labels) or 0.0
    resp = await live.stub.TranslateText(text_request(["Hello."]), metadata=bearer(TOKEN_TEXT))
    assert resp.results[0].translations[0].text == "spa:text=Hello."
    assert REGISTRY.get_sample_value("translate_svc_tenant_calls_total", labels) == before + 1


async def test_a_text_call_that_never_sends_its_texts_holds_no_translate_slot_and_ends_at_the_deadline(
    gated: tuple[LiveServer, FakeRunner],
) -> None:
    """Issue 52: TranslateText is admitted as a unary call (per token, per tenant) before its request
    is read, and as a Translate call only once it is: a call that never sends its texts keeps none
    of its tenant's translate_calls (1 here) and ends at limits.request_read_timeout_s."""
    live, _ = gated
    release = asyncio.Event()

    async def silent() -> AsyncIterator[bytes]:
        await release.wait()
        return
        yield

    held = live.channel.stream_unary("/translate_svc.api.v1.Translator/TranslateText")(
        silent(), metadata=bearer(TOKEN_TEXT)
    )
    try:
        await asyncio.sleep(0.5)
        resp = await live.stub.TranslateText(text_request(["Hello."]), metadata=bearer(TOKEN_TEXT), timeout=10)
        assert resp.results[0].translations[0].text == "spa:text=Hello."
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await asyncio.wait_for(held, 15)
    finally:
        release.set()
        held.cancel()
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, e.value
    assert "request_read_timeout_ms" in (e.value.details() or ""), e.value.details()


async def test_a_text_the_model_fails_on_fails_alone(gated: tuple[LiveServer, FakeRunner]) -> None:
    live, fake = gated
    fake.fail_when = lambda item: item.text is not None and item.text.text == "bad"
    try:
        resp = await live.stub.TranslateText(text_request(["good", "bad", "fine"]), metadata=bearer(TOKEN_TEXT))
    finally:
        fake.fail_when = lambda item: False
    codes = [r.status.code for r in resp.results]
    assert codes == [code_pb2.OK, code_pb2.INTERNAL, code_pb2.OK]
    assert resp.results[0].translations[0].text == "spa:text=good" and not resp.results[1].translations
