"""The SDK's lasting-stream cases through the service, in a real pipeline (issue 48, item 3), as
the SDK's own tests (tests/client/test_lasting_stream.py) and the LiveKit plugin's run them:
a refused stream retried after the server's delay with the audio kept, and a stream cut at
MAX_STREAM_DURATION going on in a new one with nothing lost. (The third, a drain moved to a
second server inside one stream, is test_connection.py's first test.)

"Nothing lost" is read from the server's own count of the audio it took (/metrics), never from
the model's words; the server runs its stable test translator.
"""

from __future__ import annotations

import asyncio
import itertools

import numpy as np
import pytest
from conftest import LIMITED_S, LiveServer
from pipecat.frames.frames import ErrorFrame, TranscriptionFrame, TranslationFrame
from pipecat.utils.errors import ErrorCategory
from pipeline_harness import Run, assert_no_errors, check_speech_brackets, chunks, run_pipeline

from pipecat_translate_svc import TranslateSvcSTTService
from translate_svc.client import AsyncStream, AsyncTranslateClient, RetryPolicy

AUDIO_S = "translate_svc_tenant_audio_seconds_total"  # audio the server received
STREAMS = "translate_svc_streams_started_total"


def stream_numbers(run: Run) -> list[int]:
    return [f.metadata["translate_svc"]["stream"] for f in run.down.of(TranscriptionFrame)]


async def test_a_refused_stream_is_retried_after_the_servers_delay_and_the_audio_kept(
    limited_server: LiveServer, speech16k: np.ndarray
) -> None:
    """The server's one stream is taken: the service's stream is refused (RESOURCE_EXHAUSTED, a
    RetryInfo of 1 s). The service reports it (an ErrorFrame of a transient category, the
    service stays usable), holds the audio, and opens once the stream is free, after the
    server's delay: the server receives every second of the audio, and the results come."""
    audio = chunks(speech16k, 16000, seconds=3)  # within one stream (LIMITED_S)
    before = limited_server.metric(AUDIO_S)
    # one attempt per open: the lasting stream, not the client, waits after a refusal
    async with AsyncTranslateClient(limited_server.address, retry=RetryPolicy(max_attempts=1)) as client:
        holder: AsyncStream = client.stream(targets="spa", speech=False)
        await holder.start()  # the server's one stream
        freeing: list[asyncio.Task[None]] = []

        async def free_after_refusal(sent_ms: int, run: Run) -> None:
            if not freeing:  # the refusal comes in its own time (the server reads a refused call a while)

                async def free() -> None:
                    await run.up.wait_for(lambda r: bool(r.of(ErrorFrame)), timeout_s=30)
                    await holder.aclose()

                freeing.append(asyncio.create_task(free()))

        translate = TranslateSvcSTTService(client=client, source_language="en", target_languages=["es"])
        run = await run_pipeline(translate, audio, pace=4.0, hook=free_after_refusal)
        await freeing[0]  # a refusal came (or this raises)
    errors = [*run.errors, *run.up.of(ErrorFrame)]
    refusals = run.errors
    assert refusals and all(e.category is ErrorCategory.RATE_LIMIT for e in refusals), [str(e) for e in errors]
    assert "RESOURCE_EXHAUSTED" in refusals[0].error and "next try in 1.0 s" in refusals[0].error
    assert translate.is_usable
    assert stream_numbers(run) and set(stream_numbers(run)) == {1}  # a refused open is no stream
    assert limited_server.metric(AUDIO_S) - before == pytest.approx(len(audio) * 0.02)  # none dropped


async def test_a_stream_at_its_longest_goes_on_in_a_new_one_and_nothing_is_lost(
    limited_server: LiveServer, speech16k: np.ndarray
) -> None:
    """Streams of at most LIMITED_S: the server cuts each; the audio the cut stream did not take
    opens the next one, and the pipeline sees no error. The server receives every second of
    the audio once, in three streams; each stream's segments lie on its own timeline."""
    audio = chunks(speech16k, 16000, seconds=10)
    before_audio, before_streams = limited_server.metric(AUDIO_S), limited_server.metric(STREAMS)
    translate = TranslateSvcSTTService(address=limited_server.address, source_language="en", target_languages=["es"])
    run = await run_pipeline(translate, audio, pace=4.0)
    assert_no_errors(run)
    assert limited_server.metric(STREAMS) - before_streams == 3
    assert limited_server.metric(AUDIO_S) - before_audio == pytest.approx(len(audio) * 0.02)  # once each
    numbers = stream_numbers(run)
    assert numbers == sorted(numbers) and set(numbers) >= {1, 2}  # results of each stream, in order
    for _, group in itertools.groupby(run.down.of(TranscriptionFrame), lambda f: f.metadata["translate_svc"]["stream"]):
        segs = [f.result for f in group]
        assert [s.segment_id for s in segs] == list(range(len(segs)))  # ids from 0 in each stream
        assert all(s.end_ms <= LIMITED_S * 1000 for s in segs)
    assert len(run.down.of(TranslationFrame)) == len(numbers)
    check_speech_brackets(run.down.frames)
