"""Conversations over a real server (the stock gRPC stub): two or more languages through one
input, each segment identified among the conversation's languages only and translated into the
others, through Translate and StreamingTranslate, with the test identifier (random among the
candidates; or biased: Spanish wins wherever it is a candidate).

What is asserted is the mechanics, never the words of random weights: every result's source (its
detected language, its transcript's) is one of the conversation's, its translations are exactly
the others, in the conversation's order; the direction follows the identifier's choice; an update
of the languages acts from the segment it names; bad requests are refused with the field named.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import grpc
import numpy as np
import pytest
import pytest_asyncio

from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.raw import raw_request
from tests.support.speech import shared_pcm
from translate_svc.api.v1 import translate_pb2 as pb

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(60)]

PCM16 = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000)


@pytest.fixture(scope="module")
def lid_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from translate_svc.app import build_lid_test_checkpoint

    root = tmp_path_factory.mktemp("lid")
    return {
        "plain": build_lid_test_checkpoint(root / "plain"),
        "spa": build_lid_test_checkpoint(root / "spa", bias="spa"),
    }


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def plain(test_model_dir: Path, lid_dirs: dict[str, Path]) -> AsyncIterator[LiveServer]:
    """A server whose identifier picks at random among the candidates."""
    settings = make_settings(test_model_dir)
    settings.model.lid_path = lid_dirs["plain"]
    async with serving(settings, warmup=False) as live:
        yield live


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def spanish(test_model_dir: Path, lid_dirs: dict[str, Path]) -> AsyncIterator[LiveServer]:
    """A server whose identifier picks Spanish wherever it is a candidate."""
    settings = make_settings(test_model_dir)
    settings.model.lid_path = lid_dirs["spa"]
    async with serving(settings, warmup=False) as live:
        yield live


def talk(*languages: str) -> pb.Conversation:
    return pb.Conversation(languages=languages)


def check_directions(segments: Sequence[pb.SegmentResult], languages: Sequence[str], speech: bool = True) -> list[str]:
    """Each segment goes from its detected language into the others: its source is one of
    ``languages`` (the identifier's choice, scored among them alone, or the previous turn's where
    the segment is short or the choice unsure), its transcript is in it, its
    translations are every other language, in order, each with speech where asked. The sources."""
    assert segments
    sources = []
    for seg in segments:
        assert seg.status.code == 0, seg.status
        d = seg.detected_language
        scores = {s.language: s.probability for s in d.scores}
        assert set(scores) == set(languages) and sum(scores.values()) == pytest.approx(1, abs=1e-4)
        top = max(scores, key=scores.__getitem__)
        if d.source == pb.DetectedLanguage.PREVIOUS_TURN:  # a short or unsure turn kept the one before
            assert d.language != top and d.language in languages
        else:
            assert d.source == pb.DetectedLanguage.IDENTIFIED and d.language == top == d.scores[0].language
        assert seg.transcript.language == d.language and seg.timing.language_id_ms > 0
        assert [t.target_language for t in seg.translations] == [lang for lang in languages if lang != d.language]
        assert all(t.HasField("audio") == speech for t in seg.translations)
        sources.append(d.language)
    return sources


async def translate(live: LiveServer, content: bytes, **kw: object) -> pb.TranslateResponse:
    return await live.stub.Translate(raw_request(content, pb.LINEAR16, target_languages=[], **kw))


async def stream(live: LiveServer, msgs: list[pb.StreamingTranslateRequest]) -> list[pb.StreamingTranslateResponse]:
    return [r async for r in live.stub.StreamingTranslate(iter(msgs), timeout=120)]


def audio_msgs(content: bytes) -> list[pb.StreamingTranslateRequest]:
    return [pb.StreamingTranslateRequest(audio=content[i : i + 32000]) for i in range(0, len(content), 32000)]


async def test_translate_and_a_stream_go_from_the_detected_language_into_the_other(
    plain: LiveServer, shared_audio: Path
) -> None:
    content, _ = shared_pcm(shared_audio, "jfk.flac")
    ran = len(plain.batches)
    resp = await translate(plain, content, conversation=talk("eng", "spa"))
    assert len(resp.segments) == 4
    check_directions(resp.segments, ["eng", "spa"])
    # one decoder row per language and segment: the transcript's is the detected language's row,
    # no row translates a segment into the language it was spoken in
    batches = plain.batches[ran:]
    assert sum(b.size for b in batches) == 4 and sum(b.text_rows for b in batches) == 4 * 2
    cfg = pb.StreamingConfig(format=PCM16, conversation=talk("eng", "spa"))
    got = await stream(plain, [pb.StreamingTranslateRequest(config=cfg), *audio_msgs(content)])
    echoed = got[0].started.config
    assert list(echoed.conversation.languages) == ["eng", "spa"] and echoed.HasField("conversation")
    assert not echoed.target_languages and not echoed.HasField("language_detection")
    segments = [r.segment for r in got if r.HasField("segment")]
    assert len(segments) == 4
    check_directions(segments, ["eng", "spa"])


async def test_a_conversation_per_channel_pair_goes_each_channels_way(plain: LiveServer, shared_audio: Path) -> None:
    """Separate channels (a party each) in a conversation: each channel's turns are identified among
    the conversation's languages and translated into the others, its own turns its prior."""
    _, left = shared_pcm(shared_audio, "jfk.flac")
    _, right = shared_pcm(shared_audio, "silero_test.wav")
    n = len(left)
    stereo = (np.stack([left, right[:n]], axis=1) * 32768).astype("<i2").tobytes()
    cfg = pb.StreamingConfig(
        format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000, channels=2),
        conversation=talk("eng", "spa"),
        channel_mode=pb.CHANNEL_MODE_SEPARATE,
    )
    got = await stream(plain, [pb.StreamingTranslateRequest(config=cfg), *audio_msgs(stereo)])
    assert got[0].started.config.channel_mode == pb.CHANNEL_MODE_SEPARATE
    segments = [r.segment for r in got if r.HasField("segment")]
    check_directions(segments, ["eng", "spa"])
    assert {s.channel for s in segments} == {1, 2} and all(s.speaker == s.channel for s in segments)


async def test_three_languages_translate_into_the_two_not_spoken(plain: LiveServer, shared_audio: Path) -> None:
    content, _ = shared_pcm(shared_audio, "jfk.flac")
    output = pb.OutputOptions(text=True, speech=False, transcript=False)
    resp = await translate(plain, content, conversation=talk("fra", "eng", "spa"), output=output)
    for seg in resp.segments:  # the transcript not asked for: the source is still said
        assert not seg.HasField("transcript") and seg.detected_language.language in ("fra", "eng", "spa")
        assert [t.target_language for t in seg.translations] == [
            lang for lang in ("fra", "eng", "spa") if lang != seg.detected_language.language
        ]
        assert not any(t.HasField("audio") for t in seg.translations)


async def test_the_direction_follows_the_identifiers_choice(spanish: LiveServer, shared_audio: Path) -> None:
    """Spanish wins wherever it is a candidate: every segment goes Spanish -> the others."""
    content, _ = shared_pcm(shared_audio, "jfk.flac")
    resp = await translate(spanish, content, conversation=talk("eng", "spa"))
    assert check_directions(resp.segments, ["eng", "spa"]) == ["spa"] * 4
    resp = await translate(spanish, content, conversation=talk("spa", "eng", "fra"))
    assert check_directions(resp.segments, ["spa", "eng", "fra"]) == ["spa"] * 4
    cfg = pb.StreamingConfig(format=PCM16, conversation=talk("eng", "spa"))
    got = await stream(spanish, [pb.StreamingTranslateRequest(config=cfg), *audio_msgs(content)])
    assert check_directions([r.segment for r in got if r.HasField("segment")], ["eng", "spa"]) == ["spa"] * 4


async def test_the_identifier_picks_among_the_conversations_languages_only(
    spanish: LiveServer, shared_audio: Path
) -> None:
    """Spanish is not declared: the identifier that always picks it where it may picks one of
    English and French, and each segment is translated into the other one."""
    content, _ = shared_pcm(shared_audio, "jfk.flac")
    resp = await translate(spanish, content, conversation=talk("eng", "fra"))
    assert set(check_directions(resp.segments, ["eng", "fra"])) <= {"eng", "fra"}


async def test_an_update_changes_the_languages_from_the_segment_it_names(
    spanish: LiveServer, shared_audio: Path
) -> None:
    """English and French first (Spanish undeclared), then English and Spanish: the segments from
    the update's first_segment_id on go Spanish -> English, those before among English and French.
    The update follows the audio of the first two phrases, so it falls between segments."""
    content, _ = shared_pcm(shared_audio, "jfk.flac")
    cut = 5 * 32000  # 5 s: after the second phrase (3.3-4.4 s)
    cfg = pb.StreamingConfig(format=PCM16, conversation=talk("eng", "fra"))
    bad = [
        pb.StreamUpdate(targets=pb.TargetLanguages(languages=["spa"])),  # a conversation takes no targets
        pb.StreamUpdate(conversation=talk("eng")),
    ]
    msgs = [pb.StreamingTranslateRequest(config=cfg), *audio_msgs(content[:cut])]
    msgs += [pb.StreamingTranslateRequest(update=u) for u in bad]
    msgs += [pb.StreamingTranslateRequest(update=pb.StreamUpdate(conversation=talk("eng", "spa")))]
    msgs += audio_msgs(content[cut:])
    got = await stream(spanish, msgs)
    updates = [r.updated for r in got if r.HasField("updated")]
    assert [u.status.code for u in updates] == [grpc.StatusCode.INVALID_ARGUMENT.value[0]] * 2 + [0]
    assert "`conversation`" in updates[0].status.message and "conversation.languages" in updates[1].status.message
    assert [list(u.config.conversation.languages) for u in updates] == [["eng", "fra"]] * 2 + [["eng", "spa"]]
    first = updates[-1].first_segment_id
    segments = [r.segment for r in got if r.HasField("segment")]
    assert len(segments) == 4 and 0 < first < 4
    before = [s for s in segments if s.segment_id < first]
    assert set(check_directions(before, ["eng", "fra"])) <= {"eng", "fra"}
    assert check_directions([s for s in segments if s.segment_id >= first], ["eng", "spa"]) == ["spa"] * (4 - first)


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"conversation": talk("eng")}, "conversation.languages has 1 language"),
        ({"conversation": talk()}, "conversation.languages has 0 language"),
        ({"conversation": talk("eng", "spa", "eng")}, "conversation.languages lists 'eng' more than once"),
        ({"conversation": talk("eng", "xxx")}, "conversation.languages: 'xxx'"),
        ({"conversation": talk("eng", "spa", "fra", "deu", "ita")}, "5 conversation languages requested"),
        ({"conversation": talk("eng", "spa"), "target_languages": ["fra"]}, "drop target_languages"),
        ({"conversation": talk("eng", "spa"), "source_language": "eng"}, "drop source_language"),
        (
            {"conversation": pb.Conversation(languages=["eng", "spa"], voices={"deu": 1})},
            "conversation.voices names 'deu', not one of conversation.languages (eng, spa)",
        ),
        ({"conversation": pb.Conversation(languages=["eng", "spa"], voices={"spa": 9})}, "voices[spa] is 9: use 0..3"),
        (
            {"conversation": pb.Conversation(languages=["eng", "spa"], speeds={f"x{i}": 1.0 for i in range(500)})},
            "conversation.speeds has 500 entries for 2 languages",
        ),
        (
            {"conversation": pb.Conversation(languages=["eng", "spa"], speeds={"eng": 3.0})},
            "conversation.speeds[eng] must be a number from 0.5 to 2.0",
        ),
        (
            {"conversation": talk("eng", "spa"), "language_detection": pb.LanguageDetection(enabled=True)},
            "drop language_detection",
        ),
    ],
)
async def test_bad_conversations_are_refused_naming_the_field(
    plain: LiveServer, shared_audio: Path, kw: dict[str, object], words: str
) -> None:
    content, _ = shared_pcm(shared_audio, "jfk.flac")
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await plain.stub.Translate(raw_request(content[:64000], pb.LINEAR16, **{"target_languages": [], **kw}))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and words in (e.value.details() or ""), e.value


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"simultaneous": pb.SimultaneousConfig(enabled=True)}, "leave `simultaneous` unset"),
        ({"target_languages": ["spa"]}, "drop target_languages"),
    ],
)
async def test_a_stream_refuses_a_conversation_with_what_it_cannot_go_with(
    plain: LiveServer, extra: dict[str, object], words: str
) -> None:
    cfg = pb.StreamingConfig(format=PCM16, conversation=talk("eng", "spa"), **extra)  # type: ignore[arg-type]
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stream(plain, [pb.StreamingTranslateRequest(config=cfg)])
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and words in (e.value.details() or ""), e.value


async def test_a_server_without_an_identifier_refuses_a_conversation_saying_how_to_get_one(
    live: LiveServer, shared_audio: Path
) -> None:
    content, _ = shared_pcm(shared_audio, "jfk.flac")
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await translate(live, content[:64000], conversation=talk("eng", "spa"))
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION, e.value
    assert "conversation needs" in (e.value.details() or "") and "download-lid-model" in (e.value.details() or "")
    cfg = pb.StreamingConfig(format=PCM16, conversation=talk("eng", "spa"))
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stream(live, [pb.StreamingTranslateRequest(config=cfg)])
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "download-lid-model" in (e.value.details() or "")


def rates(segments: Sequence[pb.SegmentResult]) -> list[tuple[str, float]]:
    """Each translation's language and the rate its speech was made at."""
    return [(t.target_language, round(t.speech_rate, 4)) for seg in segments for t in seg.translations]


async def test_each_party_hears_its_own_rate_and_an_update_sets_them_anew(
    spanish: LiveServer, shared_audio: Path
) -> None:
    """Spanish is heard: English is spoken at the English party's rate; an update stating English
    with rates anew: Spanish at the Spanish party's, English's no longer set. The stream echoes them."""
    content, _ = shared_pcm(shared_audio, "jfk.flac")
    parties = pb.Conversation(languages=["eng", "spa"], voices={"eng": 1}, speeds={"eng": 1.5, "spa": 0.75})
    resp = await translate(spanish, content, conversation=parties)
    assert check_directions(resp.segments, ["eng", "spa"]) == ["spa"] * 4
    assert rates(resp.segments) == [("eng", 1.5)] * 4
    stated = pb.Conversation(languages=["eng", "spa"], stated_language="eng", speeds={"spa": 0.5})
    cfg = pb.StreamingConfig(format=PCM16, conversation=parties)
    update = pb.StreamingTranslateRequest(update=pb.StreamUpdate(conversation=stated))
    got = await stream(spanish, [pb.StreamingTranslateRequest(config=cfg), update, *audio_msgs(content)])
    echoed = got[0].started.config.conversation
    assert (dict(echoed.voices), dict(echoed.speeds)) == ({"eng": 1}, {"eng": 1.5, "spa": 0.75})
    updated = next(r.updated for r in got if r.HasField("updated"))
    assert updated.status.code == 0 and updated.first_segment_id == 0
    now = updated.config.conversation
    assert (now.stated_language, dict(now.voices), dict(now.speeds)) == ("eng", {}, {"spa": 0.5})
    segments = [r.segment for r in got if r.HasField("segment")]
    assert len(segments) == 4 and rates(segments) == [("spa", 0.5)] * 4


async def test_the_sdk_passes_a_conversation_and_its_update(spanish: LiveServer, shared_audio: Path) -> None:
    from translate_svc.client import AsyncTranslateClient, Segment, StreamUpdated

    async with AsyncTranslateClient(f"127.0.0.1:{spanish.port}") as client:
        result = await client.translate(shared_audio / "jfk.flac", targets=(), conversation=["eng", "spa"])
        assert len(result.segments) == 4
        for seg in result.segments:
            assert seg.detected_language == seg.transcript_language == "spa"
            assert [t.target for t in seg.translations] == ["eng"]
        content, _ = shared_pcm(shared_audio, "jfk.flac")
        async with client.stream(targets=(), conversation="eng,fra", speech=False) as s:

            async def feed() -> None:
                await s.update(conversation=["eng", "spa"])  # before any audio: every segment's
                for i in range(0, len(content), 32000):
                    await s.send(content[i : i + 32000])
                await s.close()

            feeding = asyncio.ensure_future(feed())
            events = [ev async for ev in s]
            await feeding
        segments = [ev for ev in events if isinstance(ev, Segment)]
        assert len(segments) == 4 and all(seg.detected_language == "spa" for seg in segments)
        assert all([t.target for t in seg.translations] == ["eng"] for seg in segments)
        updated = [ev for ev in events if isinstance(ev, StreamUpdated)]
        assert updated and updated[0].error is None and updated[0].conversation == ("eng", "spa")


async def test_the_sdk_passes_each_partys_voice_and_rate(spanish: LiveServer, shared_audio: Path) -> None:
    from translate_svc.client import AsyncTranslateClient, Conversation, TranslateError

    talk_ = Conversation(("eng", "spa"), voices={"eng": 1}, speeds={"eng": 1.25})
    async with AsyncTranslateClient(f"127.0.0.1:{spanish.port}") as client:
        result = await client.translate(shared_audio / "jfk.flac", targets=(), conversation=talk_)
        assert len(result.segments) == 4
        assert [(t.target, t.speech_rate) for seg in result.segments for t in seg.translations] == [("eng", 1.25)] * 4
        with pytest.raises(TranslateError, match=r"INVALID_ARGUMENT: conversation\.speeds names 'fra'"):
            await client.translate(
                shared_audio / "jfk.flac", targets=(), conversation=Conversation(("eng", "spa"), speeds={"fra": 1.0})
            )


async def test_the_sdk_states_a_language_and_says_what_chose_each(spanish: LiveServer, shared_audio: Path) -> None:
    """``Conversation(languages, stated=)`` on translate and on a stream's update: no identification
    runs, each segment goes from the stated language (``language_source`` "stated", no scores);
    unstated, the biased identifier's Spanish is chosen and said so."""
    from translate_svc.client import AsyncTranslateClient, Conversation, Segment

    async with AsyncTranslateClient(f"127.0.0.1:{spanish.port}") as client:
        stated = await client.translate(
            shared_audio / "jfk.flac", targets=(), conversation=Conversation(("eng", "spa"), stated="eng")
        )
        assert len(stated.segments) == 4
        for seg in stated.segments:
            assert (seg.chosen_language, seg.language_source, seg.language_scores) == ("eng", "stated", ()), seg
            assert seg.detected_language == "eng" and [t.target for t in seg.translations] == ["spa"]
        heard = await client.translate(shared_audio / "jfk.flac", targets=(), conversation=["eng", "spa"])
        assert all(
            seg.chosen_language == "spa" and seg.language_source in ("identified", "previous_turn")
            for seg in heard.segments
        )
        content, _ = shared_pcm(shared_audio, "jfk.flac")
        async with client.stream(targets=(), conversation="eng,spa", speech=False) as s:

            async def feed() -> None:
                await s.update(conversation=Conversation(("eng", "spa"), stated="eng"))  # before any audio
                for i in range(0, len(content), 32000):
                    await s.send(content[i : i + 32000])
                await s.close()

            feeding = asyncio.ensure_future(feed())
            events = [ev async for ev in s]
            await feeding
        segments = [ev for ev in events if isinstance(ev, Segment)]
        assert len(segments) == 4 and all(
            seg.language_source == "stated" and seg.detected_language == "eng" for seg in segments
        )
