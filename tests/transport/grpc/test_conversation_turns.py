"""A conversation's short turns and stated languages over a real server (the stock gRPC stub),
with the test identifier biased to Spanish (it picks Spanish wherever it is a candidate, however
little audio): a stated language overrides it (no identification; the segment goes from the
stated language into the others) until an update clears it; a language outside the
conversation is refused; a short segment keeps the previous turn's language where the
identifier says otherwise, and a longer one follows the identifier. Each result's
``detected_language.source`` says what chose its language.

What is asserted is the mechanics, never the words of random weights. The prior's test waits for
a turn's result before the next turn's audio or an update goes (a turn's language is the
previous turn's once its result is out; an update acts from the next segment to close), so the
order is the test's, not the machine's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import pytest_asyncio

from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.raw import raw_request
from tests.support.speech import read_16k, shared_pcm, vad_segments
from translate_svc.api.v1 import translate_pb2 as pb

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(60)]

PCM16 = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000)
BYTES_PER_S = 32000
STATED, PREVIOUS, IDENTIFIED = (
    pb.DetectedLanguage.STATED,
    pb.DetectedLanguage.PREVIOUS_TURN,
    pb.DetectedLanguage.IDENTIFIED,
)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def spanish(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    """A server whose identifier picks Spanish wherever it is a candidate, surely (its bias), and
    whose short turns always keep the previous language (limits.conversation_short_turn_margin 1;
    conversation_short_turn_s 1.5 s, conversation_switch_margin 0.3 as by default): the mechanics
    of the lean, which the default 0.6 would leave to the identifier's sureness."""
    from translate_svc.app import build_lid_test_checkpoint

    settings = make_settings(test_model_dir)
    settings.model.lid_path = build_lid_test_checkpoint(tmp_path_factory.mktemp("lid") / "spa", bias="spa")
    settings.limits.conversation_short_turn_margin = 1.0
    async with serving(settings, warmup=False) as live:
        yield live


def talk(*languages: str, stated: str = "") -> pb.Conversation:
    return pb.Conversation(languages=languages, stated_language=stated)


def audio_msgs(content: bytes) -> list[pb.StreamingTranslateRequest]:
    step = BYTES_PER_S
    return [pb.StreamingTranslateRequest(audio=content[i : i + step]) for i in range(0, len(content), step)]


def update(conversation: pb.Conversation) -> pb.StreamingTranslateRequest:
    return pb.StreamingTranslateRequest(update=pb.StreamUpdate(conversation=conversation))


def direction(seg: pb.SegmentResult) -> tuple[str, int, list[str]]:
    """A segment's source, what chose it and its translations' languages; its transcript is in
    its source."""
    assert seg.status.code == 0, seg.status
    d = seg.detected_language
    assert seg.transcript.language == d.language
    return d.language, d.source, [t.target_language for t in seg.translations]


def top_score(seg: pb.SegmentResult) -> str:
    scores = {s.language: s.probability for s in seg.detected_language.scores}
    return max(scores, key=scores.__getitem__)


async def stream(live: LiveServer, msgs: list[pb.StreamingTranslateRequest]) -> list[pb.StreamingTranslateResponse]:
    return [r async for r in live.stub.StreamingTranslate(iter(msgs), timeout=120)]


async def read_until(call: grpc.aio.StreamStreamCall, kind: str) -> pb.StreamingTranslateResponse:
    while True:
        r = await call.read()
        assert r is not grpc.aio.EOF, f"the stream ended before a {kind}"
        if r.HasField(kind):
            return r


async def read_rest(call: grpc.aio.StreamStreamCall) -> list[pb.StreamingTranslateResponse]:
    rest = []
    while (r := await call.read()) is not grpc.aio.EOF:
        rest.append(r)
    return rest


async def test_a_stated_language_overrides_the_identifier_until_an_update_clears_it(
    spanish: LiveServer, shared_audio: Path
) -> None:
    """English stated for the first two phrases (the identifier would say Spanish): they go
    English -> Spanish with no scores; the update that clears it (its languages repeated), sent once
    their results are out, hands the later (long) segments back to the identifier: Spanish ->
    English. A clip states it too."""
    content, _ = shared_pcm(shared_audio, "jfk.flac")
    cut = 5 * BYTES_PER_S  # after the second phrase (3.3-4.4 s)
    call = spanish.stub.StreamingTranslate(timeout=120)
    await call.write(
        pb.StreamingTranslateRequest(
            config=pb.StreamingConfig(format=PCM16, conversation=talk("eng", "spa", stated="eng"))
        )
    )
    assert (await read_until(call, "started")).started.config.conversation.stated_language == "eng"
    for m in audio_msgs(content[:cut]):
        await call.write(m)
    stated = [(await read_until(call, "segment")).segment for _ in range(2)]
    for seg in stated:
        assert direction(seg) == ("eng", STATED, ["spa"]) and not seg.detected_language.scores
    await call.write(update(talk("eng", "spa")))
    updated = (await read_until(call, "updated")).updated
    assert updated.status.code == 0 and updated.config.conversation.stated_language == ""
    assert updated.first_segment_id == 2
    for m in audio_msgs(content[cut:]):
        await call.write(m)
    await call.done_writing()
    later = [r.segment for r in await read_rest(call) if r.HasField("segment")]
    assert len(later) == 2
    for seg in later:
        assert direction(seg) == ("spa", IDENTIFIED, ["eng"]) and top_score(seg) == "spa"
    resp = await spanish.stub.Translate(
        raw_request(content, pb.LINEAR16, target_languages=[], conversation=talk("eng", "spa", stated="eng"))
    )
    assert [direction(seg) for seg in resp.segments] == [("eng", STATED, ["spa"])] * 4


async def test_a_stated_language_outside_the_conversation_is_refused(spanish: LiveServer, shared_audio: Path) -> None:
    """At the stream's start (and a clip's): INVALID_ARGUMENT naming the field and the languages;
    in an update: answered with INVALID_ARGUMENT, the stream going on as it was."""
    content, _ = shared_pcm(shared_audio, "jfk.flac")
    words = "conversation.stated_language is 'fra', not one of conversation.languages (eng, spa)"
    cfg = pb.StreamingConfig(format=PCM16, conversation=talk("eng", "spa", stated="fra"))
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stream(spanish, [pb.StreamingTranslateRequest(config=cfg)])
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and words in (e.value.details() or ""), e.value
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await spanish.stub.Translate(
            raw_request(
                content[:64000], pb.LINEAR16, target_languages=[], conversation=talk("eng", "spa", stated="fra")
            )
        )
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and words in (e.value.details() or ""), e.value
    cfg = pb.StreamingConfig(format=PCM16, conversation=talk("eng", "spa", stated="eng"))
    msgs = [pb.StreamingTranslateRequest(config=cfg), update(talk("eng", "spa", stated="fra"))]
    got = await stream(spanish, [*msgs, *audio_msgs(content[: 3 * BYTES_PER_S])])
    (updated,) = [r.updated for r in got if r.HasField("updated")]
    assert updated.status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0] and words in updated.status.message
    assert updated.config.conversation.stated_language == "eng"  # unchanged
    (seg,) = [r.segment for r in got if r.HasField("segment")]
    assert direction(seg) == ("eng", STATED, ["spa"])


async def test_a_short_turn_keeps_the_previous_turns_language(spanish: LiveServer, shared_audio: Path) -> None:
    """The first phrase stated English; once its result is out the statement is cleared. The
    second phrase (1.1 s: shorter than conversation_short_turn_s) stays English though the
    identifier scores Spanish top: source PREVIOUS_TURN, translated into Spanish. The longer phrases
    after it follow the identifier (Spanish beats English by far more than the margin)."""
    content, _ = shared_pcm(shared_audio, "jfk.flac")
    cut = int(2.8 * BYTES_PER_S)  # after the first phrase (0.3-2.3 s) and some of its silence
    call = spanish.stub.StreamingTranslate(timeout=120)
    await call.write(
        pb.StreamingTranslateRequest(
            config=pb.StreamingConfig(format=PCM16, conversation=talk("eng", "spa", stated="eng"))
        )
    )
    for m in audio_msgs(content[:cut]):
        await call.write(m)
    first = (await read_until(call, "segment")).segment
    assert direction(first) == ("eng", STATED, ["spa"])
    await call.write(update(talk("eng", "spa")))
    assert (await read_until(call, "updated")).updated.status.code == 0
    for m in audio_msgs(content[cut:]):
        await call.write(m)
    await call.done_writing()
    segments = [r.segment for r in await read_rest(call) if r.HasField("segment")]
    assert len(segments) == 3
    short = segments[0]
    assert short.end_ms - short.start_ms < 1500  # short, as the test needs
    assert direction(short) == ("eng", PREVIOUS, ["spa"]) and top_score(short) == "spa"
    for seg in segments[1:]:
        assert seg.end_ms - seg.start_ms >= 1500
        assert direction(seg) == ("spa", IDENTIFIED, ["eng"])


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def spanish_long_turns(
    test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LiveServer]:
    """As ``spanish``, with every turn short (limits.conversation_short_turn_s 30): each segment
    leans on its prior whatever its length, and waits for its voice where speaker labels are on."""
    from translate_svc.app import build_lid_test_checkpoint

    settings = make_settings(test_model_dir)
    settings.model.lid_path = build_lid_test_checkpoint(tmp_path_factory.mktemp("lid") / "spa", bias="spa")
    settings.limits.conversation_short_turn_margin = 1.0
    settings.limits.conversation_short_turn_s = 30.0
    async with serving(settings, warmup=False) as live:
        yield live


async def test_with_speaker_labels_a_turn_leans_on_its_own_speakers_language(
    spanish_long_turns: LiveServer, shared_audio: Path
) -> None:
    """Two voices take turns (jfk.flac's phrases, voice A; silero_test.wav's, voice B), each
    turn's result read before the next turn goes. A's first turn is stated English, B's stated
    Spanish; then the statement is cleared. With ``speakers`` on, each later turn leans on its
    own speaker's last language: A's stay English (PREVIOUS_TURN: the identifier scores Spanish
    top), B's Spanish; the stream's previous turn (B's Spanish, before each A turn) would have
    made A's Spanish, as the same turns without speaker labels show."""
    jfk = await vad_segments(read_16k(shared_audio / "jfk.flac"))
    other = await vad_segments(read_16k(shared_audio / "silero_test.wav"))
    silence = bytes(int(0.8 * BYTES_PER_S))
    turns = [("A", jfk[0]), ("B", other[0]), ("A", jfk[2]), ("B", other[2]), ("A", jfk[3]), ("B", other[4])]

    def pcm(seg: Any) -> bytes:
        return bytes(np.clip(np.round(seg.samples * 32767), -32768, 32767).astype("<i2").tobytes())

    async def run(speakers: int) -> list[tuple[str, pb.SegmentResult]]:
        call = spanish_long_turns.stub.StreamingTranslate(timeout=300)
        config = pb.StreamingConfig(format=PCM16, conversation=talk("eng", "spa", stated="eng"), speakers=speakers)
        await call.write(pb.StreamingTranslateRequest(config=config))
        await call.write(pb.StreamingTranslateRequest(audio=silence))
        got = []
        for i, (who, seg) in enumerate(turns):
            for m in audio_msgs(pcm(seg) + silence):
                await call.write(m)
            got.append((who, (await read_until(call, "segment")).segment))
            if i < 2:  # B's first turn stated Spanish, then no statement
                await call.write(update(talk("eng", "spa", stated="spa" if i == 0 else "")))
                assert (await read_until(call, "updated")).updated.status.code == 0
        await call.done_writing()
        rest = [r.segment for r in await read_rest(call) if r.HasField("segment")]
        assert not rest, f"a turn was cut in two: {rest}"
        return got

    labelled = await run(speakers=2)
    speaker_of = {who: seg.speaker for who, seg in labelled[:2]}
    assert speaker_of["A"] != speaker_of["B"] and 0 not in speaker_of.values()
    assert [seg.speaker for _, seg in labelled] == [speaker_of[who] for who, _ in labelled]  # the voices told apart
    assert [direction(seg)[:2] for _, seg in labelled] == [
        ("eng", STATED),
        ("spa", STATED),
        ("eng", PREVIOUS),  # A's own last language, though the previous turn (B's) was Spanish
        ("spa", IDENTIFIED),
        ("eng", PREVIOUS),
        ("spa", IDENTIFIED),
    ]
    plain = await run(speakers=0)  # the stream's previous turn only: after B's Spanish, A's turns too
    assert [direction(seg)[:2] for _, seg in plain][2:] == [("spa", IDENTIFIED)] * 4
