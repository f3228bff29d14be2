"""What the SDK brings to the service, in a real pipeline: a stream that moves to another server
when its server drains, and bearer tokens (with what a refused one does to the service).

As in test_pipeline.py the servers run the random-weight checkpoint: only structure is checked.
"""

from __future__ import annotations

import asyncio
import itertools
import signal

import numpy as np
from conftest import TOKEN, translate_server
from pipecat.frames.frames import InputAudioRawFrame, TranscriptionFrame, TranslationFrame, TTSAudioRawFrame
from pipecat.utils.errors import ErrorCategory
from pipeline_harness import Run, assert_no_errors, chunks, run_pipeline, segment_of, speech_by_context

from pipecat_translate_svc import TranslateSvcSTTService
from translate_svc.client import Segment

DRAIN_AT_MS = 6000  # audio sent when the first server is told to stop


def segments(run: Run) -> list[Segment]:
    return [f.result for f in run.down.of(TranscriptionFrame)]


def overlaps(a: Segment, others: list[Segment]) -> bool:
    return any(a.start_ms < b.end_ms and b.start_ms < a.end_ms for b in others)


def assert_every_segment_spoke(run: Run, segs: list[Segment], target: str) -> None:
    """One TranslationFrame per segment, and all of each segment's speech, in one stream."""
    assert sorted(segment_of(f) for f in run.down.of(TranslationFrame)) == [s.segment_id for s in segs]
    speech = speech_by_context(run.down.frames)
    for s in segs:
        pieces = speech.get(f"translate-svc-1-{s.segment_id}-{target}", [])
        assert sum(p.num_frames for p in pieces) == s.translation(target).num_samples


async def test_a_draining_server_hands_the_stream_to_another_without_losing_or_repeating_speech(
    server: str, speech16k: np.ndarray
) -> None:
    """The service is given two servers. The first gets SIGTERM in the middle of the stream: it
    drains (1 s), ends the stream with "resume elsewhere" and exits; the SDK resumes the stream on
    the second, sending again the audio no final result covered. The pipeline sees one stream
    whose segments go on: ids without a gap, no two segments over the same audio, every speech
    region of a run on one server translated, and no error."""
    audio = chunks(speech16k, 16000, seconds=16)
    reference = segments(
        await run_pipeline(
            TranslateSvcSTTService(address=server, source_language="en", target_languages=["es"], speech=False),
            audio,
            pace=8.0,
        )
    )

    with translate_server(env={"TRANSLATE_SVC_SERVER__DRAIN_S": "1"}) as draining:

        async def drain_midway(sent_ms: int, run: Run) -> None:
            if sent_ms == DRAIN_AT_MS:
                draining.process.send_signal(signal.SIGTERM)
                # the next audio goes on once the first server is gone: the stream has moved
                assert await asyncio.to_thread(draining.process.wait, 120) == 0

        translate = TranslateSvcSTTService(
            address=[draining.address, server], source_language="en", target_languages=["es"]
        )
        run = await run_pipeline(translate, audio, pace=4.0, hook=drain_midway)

    assert_no_errors(run)
    assert len(run.down.of(InputAudioRawFrame)) == len(audio)
    segs = segments(run)
    assert {f.metadata["translate_svc"]["stream"] for f in run.down.of(TranscriptionFrame)} == {1}
    assert [s.segment_id for s in segs] == list(range(len(segs)))  # ids go on across the move
    assert all(a.end_ms <= b.start_ms for a, b in itertools.pairwise(segs))  # nothing twice
    assert any(s.start_ms >= DRAIN_AT_MS for s in segs)  # results after the move
    assert [r for r in reference if not overlaps(r, segs)] == []  # nothing lost
    assert [s for s in segs if not overlaps(s, reference)] == []  # nothing made up
    assert_every_segment_spoke(run, segs, "spa")


async def test_a_token_opens_the_stream_and_a_refused_one_is_an_authentication_error(
    token_server: str, speech16k: np.ndarray
) -> None:
    """With the server's token the pipeline gets its frames. With another, the stream is refused
    as it opens: one ErrorFrame (AUTHENTICATION, a permanent category, so pipecat marks the
    service unusable and stops giving it audio), no results, and the pipeline goes on (the
    audio still passes through) and ends."""
    audio = chunks(speech16k, 16000, seconds=5)
    good = TranslateSvcSTTService(address=token_server, token=TOKEN, source_language="en", target_languages=["es"])
    run = await run_pipeline(good, audio, pace=8.0)
    assert_no_errors(run)
    segs = segments(run)
    assert segs
    assert_every_segment_spoke(run, segs, "spa")

    refused = TranslateSvcSTTService(
        address=token_server, token="not-" + TOKEN, source_language="en", target_languages=["es"]
    )
    run = await run_pipeline(refused, audio, pace=8.0)
    assert [e.category for e in run.errors] == [ErrorCategory.AUTHENTICATION], [str(e) for e in run.errors]
    assert not refused.is_usable
    assert run.down.of((TranscriptionFrame, TranslationFrame, TTSAudioRawFrame)) == []
    assert len(run.down.of(InputAudioRawFrame)) == len(audio)
