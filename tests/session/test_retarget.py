"""Targets that change mid-stream (issue 35): a real server, silero_test.wav, a stock gRPC stub.

The stream starts with one target, adds a second, later drops the first; an update the server
cannot use is answered with INVALID_ARGUMENT and the stream goes on. Each answer (``updated``)
names the first segment that uses it: every segment before it carries the old targets, every one
from it the new, exactly, in the order asked. Segment ids and the timeline run on through every
update, and the engine encodes each segment once whatever its targets (its batches).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from google.rpc import code_pb2

from tests.support.live_server import make_settings, serving
from tests.support.speech import speech_pcm16
from translate_svc.api.v1 import translate_pb2 as pb

pytestmark = [pytest.mark.integration, pytest.mark.slow(40)]

CHUNK = 3200  # 100 ms of 16 kHz LINEAR16


def _config() -> pb.StreamingConfig:
    return pb.StreamingConfig(
        format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000, channels=1),
        source_language="eng",
        target_languages=["spa"],
        output=pb.OutputOptions(speech=False),
    )


def _update(*targets: str) -> pb.StreamingTranslateRequest:
    return pb.StreamingTranslateRequest(update=pb.StreamUpdate(targets=pb.TargetLanguages(languages=targets)))


async def test_targets_added_and_dropped_mid_stream_apply_from_the_segment_named(
    test_model_dir: Path, shared_audio: Path
) -> None:
    pcm = speech_pcm16(shared_audio / "silero_test.wav", 60.0, 16000).tobytes()
    thirds = [pcm[i * len(pcm) // 3 // CHUNK * CHUNK : (i + 1) * len(pcm) // 3 // CHUNK * CHUNK] for i in range(3)]
    thirds[2] = pcm[2 * len(pcm) // 3 // CHUNK * CHUNK :]
    answers: asyncio.Queue[pb.StreamUpdated] = asyncio.Queue()

    async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield pb.StreamingTranslateRequest(config=_config())
        for i, part in enumerate(thirds):
            half = len(part) // 2 // CHUNK * CHUNK
            for k in range(0, len(part), CHUNK):
                if i == 1 and k == half:
                    yield _update("xxx")  # a language the model lacks: refused, the stream goes on
                    await answers.get()
                yield pb.StreamingTranslateRequest(audio=part[k : k + CHUNK])
            if i < 2:  # add fra after the first third, drop spa after the second
                yield _update("spa", "fra") if i == 0 else _update("fra")
                await answers.get()  # its answer before any more audio

    async with serving(make_settings(test_model_dir)) as live:
        batches_before = len(live.batches)
        segments: list[pb.SegmentResult] = []
        updated: list[pb.StreamUpdated] = []
        started = 0
        async for msg in live.stub.StreamingTranslate(requests()):
            kind = msg.WhichOneof("response")
            if kind == "updated":
                updated.append(msg.updated)
                answers.put_nowait(msg.updated)
            elif kind == "segment":
                segments.append(msg.segment)
            elif kind == "started":
                started += 1
            elif kind == "ended":
                ended = msg.ended
        batches = live.batches[batches_before:]

    assert started == 1 and ended.reason == pb.StreamEnd.HALF_CLOSE
    assert [u.status.code for u in updated] == [code_pb2.OK, code_pb2.INVALID_ARGUMENT, code_pb2.OK]
    add, bad, drop = updated
    assert list(add.config.target_languages) == ["spa", "fra"] and list(drop.config.target_languages) == ["fra"]
    assert "xxx" in bad.status.message and list(bad.config.target_languages) == ["spa", "fra"]
    assert add.config.source_language == "eng" and add.config.format.sample_rate_hz == 16000  # resolved, whole
    # the unknown language changed nothing: the boundary it names is where the stream already was
    assert add.first_segment_id <= bad.first_segment_id <= drop.first_segment_id

    # ids and the timeline run on through every update
    assert [s.segment_id for s in segments] == list(range(len(segments))) == list(range(ended.segments_total))
    assert all(a.end_ms <= b.start_ms for a, b in itertools.pairwise(segments))
    assert ended.audio_received_ms == len(pcm) // 32

    def expected(segment_id: int) -> list[str]:
        if segment_id < add.first_segment_id:
            return ["spa"]
        return ["spa", "fra"] if segment_id < drop.first_segment_id else ["fra"]

    phases = [expected(s.segment_id) for s in segments]
    assert phases.count(["spa"]) and phases.count(["spa", "fra"]) and phases.count(["fra"]), phases
    for s in segments:
        assert s.status.code == code_pb2.OK
        assert [t.target_language for t in s.translations] == expected(s.segment_id), s.segment_id

    # one encoder pass per segment: each segment is one row of one batch, its languages decoded beside it
    assert sum(b.size for b in batches) == len(segments)
    assert sum(b.text_rows for b in batches) == sum(len(expected(s.segment_id)) + 1 for s in segments)


async def test_an_update_before_any_audio_and_the_voice(test_model_dir: Path, shared_audio: Path) -> None:
    """An update may come at once (no segment yet: it names segment 0) and may change the voice
    alone (targets unset: kept); a voice out of range, or an update that sets nothing, is refused
    and the stream goes on."""
    pcm = speech_pcm16(shared_audio / "silero_test.wav", 8.0, 16000).tobytes()
    answers: asyncio.Queue[pb.StreamUpdated] = asyncio.Queue()

    async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield pb.StreamingTranslateRequest(config=_config())
        yield pb.StreamingTranslateRequest(update=pb.StreamUpdate(speaker_id=1))
        await answers.get()
        yield pb.StreamingTranslateRequest(update=pb.StreamUpdate(speaker_id=10_000))
        await answers.get()
        yield pb.StreamingTranslateRequest(update=pb.StreamUpdate())
        await answers.get()
        for k in range(0, len(pcm), CHUNK):
            yield pb.StreamingTranslateRequest(audio=pcm[k : k + CHUNK])

    async with serving(make_settings(test_model_dir)) as live:
        updated: list[pb.StreamUpdated] = []
        segments = []
        async for msg in live.stub.StreamingTranslate(requests()):
            if msg.WhichOneof("response") == "updated":
                updated.append(msg.updated)
                answers.put_nowait(msg.updated)
            elif msg.WhichOneof("response") == "segment":
                segments.append(msg.segment)
    voice, bad, empty = updated
    assert voice.status.code == code_pb2.OK and voice.first_segment_id == 0
    assert voice.config.output.speaker_id == 1 and list(voice.config.target_languages) == ["spa"]
    assert bad.status.code == code_pb2.INVALID_ARGUMENT and "speaker_id" in bad.status.message
    assert bad.config.output.speaker_id == 1  # unchanged
    assert empty.status.code == code_pb2.INVALID_ARGUMENT and "sets nothing" in empty.status.message
    assert segments and all(s.status.code == code_pb2.OK for s in segments)
    assert np.all([[t.target_language for t in s.translations] == ["spa"] for s in segments])


async def test_the_sdks_update_is_answered_and_survives_a_drain(test_model_dir: Path, shared_audio: Path) -> None:
    """``AsyncStream.update`` through the SDK: the answer is a ``StreamUpdated`` event; when the
    stream's server then drains, the SDK resumes on the next one with the updated targets, so the
    segments after the move carry them too."""
    from translate_svc.client import AsyncTranslateClient, Segment, StreamEnd, StreamUpdated

    pcm = speech_pcm16(shared_audio / "silero_test.wav", 40.0, 16000)
    step = 1600  # 100 ms
    settings = make_settings(test_model_dir)
    settings.server.drain_s = 0.5
    async with serving(make_settings(test_model_dir), warmup=False) as second, serving(settings) as first:
        stopping: list[asyncio.Task[None]] = []
        events: list[object] = []
        client = AsyncTranslateClient([f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}"])
        async with client, client.stream(targets="spa", source="eng", speech=False) as s:

            async def send() -> None:
                for at in range(0, len(pcm), step):
                    if at == 10 * 16000:
                        await s.update(target_languages=["spa", "fra"])
                    if at == 20 * 16000:  # what SIGTERM runs on the first server
                        stopping.append(asyncio.create_task(first.server.stop(grace=5)))
                    await s.send(pcm[at : at + step])
                    await asyncio.sleep(0.01)
                await s.close()

            sender = asyncio.create_task(send())
            events = [ev async for ev in s]
            await sender
            assert s.resumes == 1 and s.info is not None and s.info.address.endswith(str(second.port))
        await asyncio.gather(*stopping)
    updates = [e for e in events if isinstance(e, StreamUpdated)]
    assert len(updates) == 1 and updates[0].error is None and updates[0].target_languages == ("spa", "fra")
    first_id = updates[0].first_segment_id
    segments = [e for e in events if isinstance(e, Segment)]
    assert [x.segment_id for x in segments] == list(range(len(segments)))
    assert any(x.segment_id < first_id for x in segments) and any(x.segment_id >= first_id for x in segments)
    for x in segments:
        want = ["spa"] if x.segment_id < first_id else ["spa", "fra"]
        assert [t.target for t in x.translations] == want, x.segment_id
    assert isinstance(events[-1], StreamEnd) and events[-1].audio_received_ms == 40_000
