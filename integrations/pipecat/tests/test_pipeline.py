"""The service in a real Pipecat pipeline against a real translate_svc server.

The server runs the random-weight test checkpoint (its words are noise, so nothing here looks at
words: texts may be empty) or, for simultaneous mode, its stable test translator. What is checked
is structure: which frames come, how many, for which segments and languages, at which rates, and
what an interruption stops.
"""

from __future__ import annotations

import base64
import itertools
import json
from types import SimpleNamespace

import numpy as np
from pipecat.frames.frames import (
    ErrorFrame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    InterruptionFrame,
    STTUpdateSettingsFrame,
    TranscriptionFrame,
    TranslationFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from pipecat.transcriptions.language import Language
from pipeline_harness import (
    Run,
    assert_no_errors,
    check_speech_brackets,
    chunks,
    run_pipeline,
    segment_of,
    speech_by_context,
)

from pipecat_translate_svc import TranslateSvcSTTService
from translate_svc.client import Interim, Segment, VadOptions

#: how long an EndFrame waits for the results of the audio already sent (the service's default is
#: 10 s, for a live call): these tests count every result, and on a machine shared with other work
#: the server may trail the audio, fed faster than real time, by more than that
END_S = 120.0


def transcripts(run: Run) -> list[TranscriptionFrame]:
    return run.down.of(TranscriptionFrame)


def segments(run: Run) -> list[Segment]:
    return [f.result for f in transcripts(run)]


async def test_a_pipeline_gets_transcripts_translations_and_translated_speech(
    server: str, speech16k: np.ndarray
) -> None:
    audio = chunks(speech16k, 16000)  # the whole minute
    translate = TranslateSvcSTTService(
        end_timeout_s=END_S,
        address=server,
        source_language=Language.EN,
        target_languages=[Language.ES, "fra"],
        interim_ms=250,
    )
    # at real time, as a call's transport gives it: at 6x a loaded server (four busy loops beside
    # the suite) fell more than the 30 s of audio the service holds unsent behind, and it dropped some
    run = await run_pipeline(translate, audio, rate=16000, out_rate=24000, pace=1.0)
    assert_no_errors(run)
    frames = run.down.frames

    # the audio went on downstream (audio_passthrough), every frame of it
    assert len(run.down.of(InputAudioRawFrame)) == len(audio)

    # one final TranscriptionFrame per segment, in the source language, segments in order
    segs = segments(run)
    assert len(segs) >= 10  # 19 speech regions in the minute
    assert [s.segment_id for s in segs] == list(range(len(segs)))
    assert all(0 <= s.start_ms < s.end_ms <= 60_000 for s in segs)
    assert all(a.end_ms <= b.start_ms for a, b in itertools.pairwise(segs))
    for f in transcripts(run):
        assert f.finalized and f.language == Language.EN and isinstance(f.text, str)

    # one TranslationFrame per segment and target, in the target's language, after its transcript
    by_segment: dict[int, list[TranslationFrame]] = {}
    for f in run.down.of(TranslationFrame):
        by_segment.setdefault(segment_of(f), []).append(f)
    assert sorted(by_segment) == [s.segment_id for s in segs]
    for s in segs:
        assert [f.language for f in by_segment[s.segment_id]] == [Language.ES, Language.FR]
        assert [f.text for f in by_segment[s.segment_id]] == [t.text for t in s.translations]
        first = frames.index(by_segment[s.segment_id][0])
        assert frames.index(next(f for f in transcripts(run) if f.result is s)) < first

    # live captions of open speech (best effort: some, not all, intervals get one): interim
    # transcripts of the segments that then closed, each before its segment's final
    interims = run.down.of(InterimTranscriptionFrame)
    assert interims, "no live caption came"
    finals = {s.segment_id: frames.index(f) for s, f in zip(segs, transcripts(run), strict=True)}
    for f in interims:
        assert f.language == Language.EN and isinstance(f.result, Interim)
        if f.result.segment_id in finals:  # else: speech too short to become a segment
            assert frames.index(f) < finals[f.result.segment_id]
    assert len({f.result.segment_id for f in interims} & finals.keys()) >= 2

    # the first target's speech, and only its: PCM16 mono at the pipeline's output rate, bracketed
    # by TTSStarted/Stopped frames, all of each segment's speech and nothing else
    check_speech_brackets(frames)
    speech = speech_by_context(frames)
    assert speech, "no translated speech came"
    for s in segs:
        spa = s.translation("spa")
        pieces = speech.get(f"translate-svc-1-{s.segment_id}-spa", [])
        assert sum(p.num_frames for p in pieces) == spa.num_samples
        assert all(p.sample_rate == 24000 == spa.sample_rate and p.num_channels == 1 for p in pieces)
        assert all(p.metadata["translate_svc"]["target"] == "spa" for p in pieces)
    assert not any(c.endswith("-fra") for c in speech)
    assert len(run.down.of(TTSStartedFrame)) == len(run.down.of(TTSStoppedFrame)) == len(speech)
    assert translate.interrupted_speech_pieces == 0


async def test_two_targets_speak_to_their_own_output_destinations(server: str, speech16k: np.ndarray) -> None:
    """``audio_destinations``: each target's speech goes to its output destination (pipecat's
    ``transport_destination``: a transport's second audio track, say), all of it, each context
    between its own start and stop."""
    translate = TranslateSvcSTTService(
        end_timeout_s=END_S,
        address=server,
        source_language="en",
        target_languages=["es", "fr"],
        audio_destinations={"es": None, Language.FR: "french-line"},
    )
    run = await run_pipeline(translate, chunks(speech16k, 16000, seconds=7), pace=8.0)
    assert_no_errors(run)
    segs = segments(run)
    assert len(segs) >= 2
    speech = speech_by_context(run.down.frames)
    for s in segs:
        for target, destination in (("spa", None), ("fra", "french-line")):
            pieces = speech.get(f"translate-svc-1-{s.segment_id}-{target}", [])
            assert sum(p.num_frames for p in pieces) == s.translation(target).num_samples
            assert all(p.transport_destination == destination for p in pieces)
    brackets = run.down.of((TTSStartedFrame, TTSStoppedFrame))
    assert len(brackets) == 2 * len(speech)
    for f in brackets:
        assert f.transport_destination == ("french-line" if f.context_id.endswith("-fra") else None)
    check_speech_brackets(run.down.frames)


async def test_an_interruption_drops_the_speech_of_the_interrupted_turn(server: str, speech16k: np.ndarray) -> None:
    """The interruption comes at 2.3 s of audio, after the first speech region (0-2.0 s) ended and
    before the server can have closed it (it needs 600 ms of silence, and gets no audio past the
    interruption before the service has taken it): the first segment ends before the cut and its
    result comes after it, so its texts come and its speech does not; the speech of every later
    segment (the new turn) comes as usual."""
    cut_ms = 2300

    async def interrupt(sent_ms: int, run: Run) -> None:
        if sent_ms == cut_ms:
            await run.queue(InterruptionFrame())

    translate = TranslateSvcSTTService(
        end_timeout_s=END_S,
        address=server,
        source_language="en",
        target_languages=["es"],
        vad=VadOptions(min_silence_ms=600),
    )
    run = await run_pipeline(translate, chunks(speech16k, 16000, seconds=16), pace=4.0, hook=interrupt)
    assert_no_errors(run)
    frames = run.down.frames
    cut = frames.index(run.down.of(InterruptionFrame)[0])

    segs = segments(run)
    assert len(segs) >= 3
    first = segs[0]
    assert first.end_ms <= cut_ms  # it ended before the interruption...
    assert frames.index(transcripts(run)[0]) > cut  # ...and its result came after it
    assert len(run.down.of(TranslationFrame)) == len(segs)  # texts are never dropped

    speech = speech_by_context(frames)
    assert f"translate-svc-1-{first.segment_id}-spa" not in speech  # no speech of the interrupted turn
    assert translate.interrupted_speech_pieces == 1
    assert translate.interrupted_speech_ms == first.translation("spa").num_samples * 1000 // 24000
    for s in segs[1:]:  # the new turn speaks, all of it
        pieces = speech.get(f"translate-svc-1-{s.segment_id}-spa", [])
        assert sum(p.num_frames for p in pieces) == s.translation("spa").num_samples
        assert all(frames.index(p) > cut for p in pieces)
    assert len(speech) >= 1
    check_speech_brackets(frames)


async def test_simultaneous_speech_comes_while_the_speaker_talks_and_stops_at_an_interruption(
    stable_server: str, speech16k: np.ndarray
) -> None:
    """Simultaneous mode on the stable test translator, whose commits come at known points. With
    min_silence 2 s the first segment runs over the first three speech regions (0-6.9 s). Sending
    stops at 3 s until the first commit's speech has come (the server never closes open speech for
    a pause here), then an interruption: the rest of that segment's speech (its final commit, at
    its close near 8.9 s) is dropped, and the later segments' commits speak as usual."""
    paused_at = 3000
    state = {"interrupted": False}

    async def interrupt_after_first_speech(sent_ms: int, run: Run) -> None:
        if sent_ms == paused_at:
            await run.down.wait_for(lambda r: bool(r.of(TTSAudioRawFrame)), timeout_s=60)
            await run.queue(InterruptionFrame())
            state["interrupted"] = True

    translate = TranslateSvcSTTService(
        address=stable_server,
        source_language=Language.EN,
        target_languages=[Language.ES],
        simultaneous=True,
        vad=VadOptions(min_silence_ms=2000),
    )
    run = await run_pipeline(
        translate, chunks(speech16k, 16000, seconds=16), pace=4.0, out_rate=16000, hook=interrupt_after_first_speech
    )
    assert state["interrupted"]
    assert_no_errors(run)
    frames = run.down.frames
    cut = frames.index(run.down.of(InterruptionFrame)[0])
    segs = segments(run)
    assert len(segs) >= 2 and segs[0].speech_in_commits
    speech = speech_by_context(frames)

    first = speech["translate-svc-1-0-spa"]
    assert first and all(frames.index(p) < cut for p in first)  # it spoke before the cut, not after
    assert sum(p.num_frames for p in first) < segs[0].translation("spa").num_samples
    assert translate.interrupted_speech_pieces >= 1
    assert frames.index(transcripts(run)[0]) > cut  # its texts still came

    for s in segs[1:]:  # the later segments speak in full, after the cut
        pieces = speech[f"translate-svc-1-{s.segment_id}-spa"]  # the stable translator always speaks
        assert sum(p.num_frames for p in pieces) == s.translation("spa").num_samples
        assert all(p.sample_rate == 16000 and frames.index(p) > cut for p in pieces)
    check_speech_brackets(frames)


async def test_telephone_rates_and_a_twilio_serializer(server: str, speech16k: np.ndarray) -> None:
    """An 8 kHz pipeline (what a phone call's serializer gives): the service streams 8 kHz audio,
    asks for 8 kHz speech, and Pipecat's Twilio serializer turns that speech into media messages."""
    from pipecat.serializers.twilio import TwilioFrameSerializer

    translate = TranslateSvcSTTService(
        end_timeout_s=END_S, address=server, source_language=Language.EN, target_languages=[Language.DE]
    )
    run = await run_pipeline(translate, chunks(speech16k, 8000, seconds=8), rate=8000, out_rate=8000, pace=6.0)
    assert_no_errors(run)
    assert len(segments(run)) >= 2
    speech = run.down.of(TTSAudioRawFrame)
    assert speech and all(p.sample_rate == 8000 and p.num_channels == 1 for p in speech)
    assert {f.language for f in run.down.of(TranslationFrame)} == {Language.DE}

    serializer = TwilioFrameSerializer(stream_sid="MZ0", params=TwilioFrameSerializer.InputParams(auto_hang_up=False))
    await serializer.setup(SimpleNamespace(audio_in_sample_rate=8000))  # type: ignore[arg-type]
    messages = [json.loads(m) for m in [await serializer.serialize(p) for p in speech] if m]
    assert messages and all(m["event"] == "media" and m["streamSid"] == "MZ0" for m in messages)
    mulaw = b"".join(base64.b64decode(m["media"]["payload"]) for m in messages)
    assert 0 < len(mulaw) <= sum(p.num_frames for p in speech)  # 8 kHz mu-law: a byte per sample


def translation_languages(run: Run) -> list[list[Language | str]]:
    """Each segment's TranslationFrames' languages, in segment order."""
    out: dict[tuple[int, int], list[Language | str]] = {}
    for f in run.down.of(TranslationFrame):
        meta = f.metadata["translate_svc"]
        out.setdefault((meta["stream"], meta["segment_id"]), []).append(f.language)
    return [out[k] for k in sorted(out)]


async def test_a_target_change_updates_the_running_stream(server: str, speech16k: np.ndarray) -> None:
    """``STTUpdateSettingsFrame`` with new targets: the stream goes on (one stream, its segment ids
    in order), the segments before the change are in the old language, the later ones in the new,
    each in one of the two, and the change happens once. An update the server refuses (an
    unknown language) before it is reported upstream and changes nothing."""

    async def retarget(sent_ms: int, run: Run) -> None:
        if sent_ms == 3000:
            await run.queue(
                STTUpdateSettingsFrame(delta=TranslateSvcSTTService.Settings(target_languages=["xx-unknown"]))
            )
        if sent_ms == 6000:
            await run.queue(
                STTUpdateSettingsFrame(delta=TranslateSvcSTTService.Settings(target_languages=[Language.DE]))
            )

    translate = TranslateSvcSTTService(
        end_timeout_s=END_S, address=server, source_language=Language.EN, target_languages=[Language.ES]
    )
    run = await run_pipeline(translate, chunks(speech16k, 16000, seconds=14), pace=4.0, hook=retarget)
    errors = [*run.errors, *run.up.of(ErrorFrame)]
    assert len(run.errors) == 1 and "refused the update" in run.errors[0].error, [str(e) for e in errors]
    assert translate.is_usable

    segs = segments(run)
    assert [s.segment_id for s in segs] == list(range(len(segs)))
    assert {t.metadata["translate_svc"]["stream"] for t in transcripts(run)} == {1}  # no restart
    languages = translation_languages(run)
    assert languages[0] == [Language.ES] and languages[-1] == [Language.DE]
    assert all(p in ([Language.ES], [Language.DE]) for p in languages)
    switch = languages.index([Language.DE])
    assert all(p == [Language.DE] for p in languages[switch:])
    assert run.down.of(TTSAudioRawFrame)[-1].context_id.endswith("-deu")  # the speech follows the first target
    assert translate.settings.target_languages == ["deu"]


async def test_a_source_language_change_restarts_the_stream(server: str, speech16k: np.ndarray) -> None:
    """A new source language cannot be sent to a running stream: the stream is restarted (the old
    one half-closed, its last results still delivered), and the transcripts of the new stream are
    in the new language."""

    async def new_source(sent_ms: int, run: Run) -> None:
        if sent_ms == 6000:
            await run.queue(STTUpdateSettingsFrame(delta=TranslateSvcSTTService.Settings(language=Language.DE)))

    translate = TranslateSvcSTTService(
        end_timeout_s=END_S, address=server, source_language=Language.EN, target_languages=[Language.ES]
    )
    run = await run_pipeline(translate, chunks(speech16k, 16000, seconds=14), pace=4.0, hook=new_source)
    assert_no_errors(run)
    tagged = [(t.metadata["translate_svc"]["stream"], t.language) for t in transcripts(run)]
    assert tagged[0] == (1, Language.EN) and tagged[-1] == (2, Language.DE)
    assert tagged == sorted(tagged, key=lambda x: x[0])
    assert all(lang == (Language.EN if stream == 1 else Language.DE) for stream, lang in tagged)
    assert len(translation_languages(run)) == len(tagged)
