"""Simultaneous mode through the real stream core (issue 33): an in-memory door drives
``StreamDriver`` on a real server whose model is the stable translator (``model/testing/stable.py``: exact
commit points), so commits, their order, their text and their speech can be checked exactly."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.live_server import LiveServer
from tests.support.lockstep import Lockstep
from tests.support.memory_door import HOLD_S, check_commits, config, drive, stable_server, steps
from tests.support.speech import speech_pcm16
from translate_svc.engine.client import EngineClient
from translate_svc.engine.results import EngineResult, EngineStats
from translate_svc.errors import InvalidInput
from translate_svc.model.testing.stable import StableTranslator
from translate_svc.model_api.requests import ModelInput
from translate_svc.observability import metrics
from translate_svc.session import (
    AudioIn,
    Flush,
    SegmentResult,
    SpeechEvent,
    StreamEnded,
    StreamRequest,
)
from translate_svc.types import (
    Commit,
    OutputOptions,
    SimultaneousOptions,
    SpeechEncoding,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(20)]

CHUNK = 1600  # 100 ms at 16 kHz


def jfk_chunks(shared_audio: Path) -> list[bytes]:
    data = speech_pcm16(shared_audio / "jfk.flac", 60, 16000).tobytes()
    return [data[i : i + 2 * CHUNK] for i in range(0, len(data), 2 * CHUNK)]


def summary(events: list[Any]) -> list[Any]:
    out: list[Any] = []
    for ev in events:
        if isinstance(ev, SpeechEvent):
            out.append(("speech", ev.started, ev.offset_ms))
        elif isinstance(ev, SegmentResult):
            out.append(
                (
                    "segment",
                    ev.segment_id,
                    ev.start_ms,
                    ev.end_ms,
                    ev.transcript,
                    ev.speech_in_commits,
                    tuple(
                        (t.target_language, t.text, None if t.audio is None else t.audio.tobytes())
                        for t in ev.translations
                    ),
                )
            )
        elif isinstance(ev, StreamEnded):
            out.append(("ended", ev.segments_total, ev.audio_received_ms))
        elif isinstance(ev, Commit):
            out.append(("commit", ev.segment_id))
    return out


def in_order(events: list[Any]) -> tuple[list[Any], list[Any]]:
    """A stream's ``summary`` as the two sequences whose order the product keeps: its speech events
    (the VAD's order), and its commits, results and end (jobs.py). Between the two, docs/api.md
    (StreamingTranslate, 4) promises only what ``check_order`` checks: a result goes out as soon as
    it and those before it are ready, so whether it comes before or after a later speech event
    (the next region's SPEECH_STARTED) is a matter of timing, not of the stream."""
    s = summary(events)
    return [e for e in s if e[0] == "speech"], [e for e in s if e[0] != "speech"]


def check_order(events: list[Any]) -> None:
    """What is promised between a stream's speech events and its results, for a stream whose every
    segment ends its speech region (no length cap cut one): each result comes after its region's
    SPEECH_ENDED (at the segment's ``end_ms``), and StreamEnded is last."""
    ended = {ev.offset_ms: n for n, ev in enumerate(events) if isinstance(ev, SpeechEvent) and not ev.started}
    for n, ev in enumerate(events):
        if isinstance(ev, SegmentResult):
            assert ended.get(ev.end_ms, n) < n, f"segment {ev.segment_id}'s result is not after its SPEECH_ENDED"
    assert isinstance(events[-1], StreamEnded)


async def test_commits_come_while_speech_is_open_and_add_up_to_each_result(
    test_model_dir: Path, shared_audio: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chunks = jfk_chunks(shared_audio)
    async with stable_server(test_model_dir) as live:
        opts = SimultaneousOptions(step_ms=500, agreement=2)
        requests: list[StreamRequest] = [config(live, opts), *(AudioIn(c) for c in chunks)]
        events = await drive(live, requests, settle=Lockstep(live, monkeypatch))
    by_seg = check_commits(events, OutputOptions())
    assert by_seg, "no commits"
    # commits before the segment's end: while its speech was open
    open_commits = 0
    seg = 0
    for ev in events:
        if isinstance(ev, SpeechEvent) and not ev.started:
            seg += 1
        elif isinstance(ev, Commit) and not ev.final and ev.segment_id == seg:
            open_commits += 1
    assert open_commits > 0
    assert all(ev.source_ms <= len(chunks) * 100 for ev in events if isinstance(ev, Commit))
    ended = events[-1]
    assert isinstance(ended, StreamEnded) and ended.segments_total == len(
        [e for e in events if isinstance(e, SegmentResult)]
    )


@pytest.mark.parametrize(
    "output",
    [
        OutputOptions(speech_sample_rate_hz=24000),
        OutputOptions(speech_encoding=SpeechEncoding.OPUS, speech_sample_rate_hz=48000),
        OutputOptions(speech=False),
    ],
    ids=["pcm24k", "opus", "text"],
)
async def test_commits_in_the_streams_output_format(
    test_model_dir: Path, shared_audio: Path, output: OutputOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    chunks = jfk_chunks(shared_audio)
    async with stable_server(test_model_dir) as live:
        cfg = config(live, SimultaneousOptions(step_ms=500, agreement=1))
        # jfk's pauses do not end its speech: one long segment, whose early words are spoken in it
        cfg = dataclasses.replace(cfg, output=output, vad=dataclasses.replace(cfg.vad, min_silence_ms=2000))
        events = await drive(live, [cfg, *(AudioIn(c) for c in chunks), Flush()], settle=Lockstep(live, monkeypatch))
    by_seg = check_commits(events, output)
    assert by_seg
    if output.speech:  # speech spoken while the segment was open (5 words make 50 units: a chunk)
        assert any(c.translation.audio is not None for cs in by_seg.values() for c in cs if not c.final)
    else:
        assert all(c.translation.audio is None for cs in by_seg.values() for c in cs)


async def test_a_step_longer_than_the_segments_gives_segment_modes_events(
    test_model_dir: Path, shared_audio: Path
) -> None:
    chunks = jfk_chunks(shared_audio)
    async with stable_server(test_model_dir) as live:
        plain = await drive(live, [config(live, None), *(AudioIn(c) for c in chunks)], pace_s=0.005)
        most = live.server.app.sessions.limits.max_simultaneous_step_ms
        simul = await drive(
            live, [config(live, SimultaneousOptions(step_ms=most)), *(AudioIn(c) for c in chunks)], pace_s=0.005
        )
    assert not any(isinstance(ev, Commit) for ev in simul)
    # the same speech events and the same results and end, each in its order (how the two
    # interleave is timing: see in_order), and each result after its region's SPEECH_ENDED
    assert in_order(simul) == in_order(plain)
    for events in (plain, simul):
        check_order(events)
    assert any(isinstance(ev, SegmentResult) for ev in plain)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (SimultaneousOptions(step_ms=100), "simultaneous.step_ms is 100: use 500..10000"),
        (SimultaneousOptions(step_ms=20_000), "simultaneous.step_ms is 20000: use 500..10000"),
        (SimultaneousOptions(agreement=0), "simultaneous.agreement is 0: use 1..4"),
        (SimultaneousOptions(agreement=5), "simultaneous.agreement is 5: use 1..4"),
    ],
)
async def test_a_bad_step_or_agreement_is_refused_with_the_range(
    live: LiveServer, options: SimultaneousOptions, words: str
) -> None:
    with pytest.raises(InvalidInput, match=words.replace(".", r"\.")):
        await drive(live, [config(live, options)])


async def test_simultaneous_asr_only_is_refused(live: LiveServer) -> None:
    cfg = config(live, SimultaneousOptions())
    cfg = dataclasses.replace(cfg, target_languages=())
    with pytest.raises(InvalidInput, match="ASR only"):
        await drive(live, [cfg])


async def test_steps_are_skipped_while_the_reader_is_behind_and_nothing_is_lost(
    test_model_dir: Path, shared_audio: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chunks = jfk_chunks(shared_audio)
    async with stable_server(test_model_dir) as live:
        plain = await drive(live, [config(live, None), *(AudioIn(c) for c in chunks)])
        skipped = steps("skipped")
        # the reader takes nothing after StreamStarted until a step was skipped (the first one due
        # finds SPEECH_STARTED unread): certain, where a sleep of the reader made it likely
        skipped_one = asyncio.Event()
        engine = live.server.app.engine
        waiting: list[int] = []  # jobs in the engine's queue at each skip
        count = metrics.simultaneous_step

        def counted(ran: bool) -> None:
            count(ran)
            if not ran:
                waiting.append(engine.stats().queued)
                skipped_one.set()

        monkeypatch.setattr(metrics, "simultaneous_step", counted)
        opts = SimultaneousOptions(step_ms=500)
        events = await drive(live, [config(live, opts), *(AudioIn(c) for c in chunks)], read_when=skipped_one)
    # skipped with nothing waiting in the engine: because the reader was behind
    assert waiting and waiting[0] == 0 and steps("skipped") > skipped
    check_commits(events, OutputOptions())
    segments = [ev for ev in events if isinstance(ev, SegmentResult)]
    assert [(s.segment_id, s.start_ms, s.end_ms) for s in segments] == [
        (s.segment_id, s.start_ms, s.end_ms) for s in plain if isinstance(s, SegmentResult)
    ]
    # same words and speech as segment mode, however much was committed early
    want = {s.segment_id: s for s in plain if isinstance(s, SegmentResult)}
    for s in segments:
        for t, w in zip(s.translations, want[s.segment_id].translations, strict=True):
            assert t.text == w.text
            assert t.audio is not None and w.audio is not None and np.array_equal(t.audio, w.audio)


class HeldFinal(StableTranslator):
    """The stable translator, whose first batch with a final in it once ``armed`` stays in the
    model until ``refused`` is set (the test's watch on the engine: a step was refused meanwhile).
    The next segment's final then waits in the queue behind it whatever the machine's pace, so a
    step that comes due is refused because a final waits: certain, not likely (a sleep made it a
    race between the model and the audio). Every other batch runs at once."""

    def __init__(self, model_dir: Path) -> None:
        super().__init__(model_dir)
        self.armed = threading.Event()  # the next batch with a final is held
        self.holding = threading.Event()  # a batch with a final is held in the model now
        self.refused = threading.Event()  # the engine refused a step while it was held

    def run(self, inputs: Sequence[ModelInput]) -> list[Any]:
        if self.armed.is_set() and any(i.simul is None or i.simul.final for i in inputs):
            self.armed.clear()
            self.holding.set()
            self.refused.wait(HOLD_S)
            self.holding.clear()
        return super().run(inputs)


async def test_steps_are_skipped_while_a_final_waits_and_every_result_comes(
    test_model_dir: Path, shared_audio: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chunks = jfk_chunks(shared_audio)
    runner = HeldFinal(test_model_dir)
    async with stable_server(test_model_dir, lambda: runner) as live:
        engine: EngineClient = live.server.app.engine
        submit = engine.submit_droppable
        refused: list[EngineStats] = []  # the queue as the engine refused a step, a final held

        def watched(owner: str, item: ModelInput) -> asyncio.Future[EngineResult] | None:
            fut = submit(owner, item)
            if fut is None and item.simul is not None and runner.holding.is_set():
                refused.append(engine.stats())
                runner.refused.set()
            return fut

        monkeypatch.setattr(engine, "submit_droppable", watched)
        skipped, ran = steps("skipped"), steps("run")
        requests: list[StreamRequest] = [config(live, SimultaneousOptions(step_ms=500))]
        for n, c in enumerate(chunks):
            requests.append(AudioIn(c))
            if n % 15 == 14:
                requests.append(Flush())  # a final every 1.5 s of audio
        lockstep = Lockstep(live, monkeypatch)
        held: list[bool] = []  # the first FLUSH's final was held in the model

        async def settle(request: StreamRequest) -> None:
            """In lockstep, but for the hold: from the first FLUSH (the door waits until its final
            is held in the model) until a step was refused, the door waits for the VAD alone."""
            await lockstep.scored()
            if isinstance(request, Flush) and not held:
                held.append(await asyncio.to_thread(runner.holding.wait, HOLD_S))
            if not held or runner.refused.is_set():
                await lockstep.computed()

        runner.armed.set()
        events = await drive(live, requests, settle=settle)
    # refused for the final waiting behind the held one, not for a full queue
    assert held == [True]
    assert refused and all(0 < s.queued < s.max_queued for s in refused)
    assert steps("run") > ran and steps("skipped") > skipped
    by_seg = check_commits(events, OutputOptions())
    assert by_seg
    ended = events[-1]
    assert isinstance(ended, StreamEnded) and ended.limit is None
    assert ended.segments_total == len([ev for ev in events if isinstance(ev, SegmentResult)]) > 4
