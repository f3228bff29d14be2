"""Issue 87 J1: a live stream's noise suppression and speaker embeddings run on the ear's own
pools (``session/stream/ear.py``), never on the event loop, nor on the loop's default executor (which clip
decodes and TBX imports share). Before the fix every chunk's suppression (soxr, RNNoise, soxr) ran
inline on the loop's thread and each embedding on the default executor's (``asyncio_N``).

A real server on loopback (the fake runner as its model), a real gRPC client streaming jfk.flac
with RNNoise and speaker labels: the threads that did the ear's work, and the stream's results
labelled as before; and a stream cancelled while its chunks are on the pool leaves no RNNoise state
behind (the pool's threads let go of it)."""

from __future__ import annotations

import gc
import threading
import weakref
from pathlib import Path

import numpy as np
import pytest

from tests.support.fake_runner import FakeRunner
from tests.support.live_server import make_settings, serving
from tests.support.stepped_call import NO_MODEL, Call, call_config, jfk_then_silence, segments
from tests.support.waiting import until
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.audio.denoise import Denoiser
from translate_svc.speakers.encoder import Embedding, SpeakerEncoder

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="function")]


async def test_noise_suppression_and_speaker_embeddings_run_on_the_ears_pools(
    monkeypatch: pytest.MonkeyPatch, shared_audio: Path
) -> None:
    threads: dict[str, list[str]] = {"denoise": [], "embed": []}
    process, embed = Denoiser.process, SpeakerEncoder.embed

    def traced_process(self: Denoiser, samples16k: np.ndarray, *, last: bool = False) -> np.ndarray:
        threads["denoise"].append(threading.current_thread().name)
        return process(self, samples16k, last=last)

    def traced_embed(self: SpeakerEncoder, wav16k: np.ndarray) -> Embedding:
        threads["embed"].append(threading.current_thread().name)
        return embed(self, wav16k)

    monkeypatch.setattr(Denoiser, "process", traced_process)
    monkeypatch.setattr(SpeakerEncoder, "embed", traced_embed)
    runner = FakeRunner()
    async with serving(make_settings(NO_MODEL), warmup=False, runner_factory=lambda: runner) as live:
        cfg = call_config()
        cfg.noise_suppression = pb.NOISE_SUPPRESSION_RNNOISE
        cfg.speakers = 2
        call = Call(live.stub, cfg)
        call.send(jfk_then_silence(shared_audio), chunk_ms=20)  # a live client's 20 ms messages
        call.close()
        got = await call.result()
    assert got[-1].HasField("ended")
    results = segments(got)
    assert len(results) >= 3 and all(r.speaker >= 1 for r in results), [r.speaker for r in results]
    loop_thread = threading.main_thread().name
    assert len(threads["denoise"]) > 100 and loop_thread not in threads["denoise"]
    assert {n.rsplit("_", 1)[0] for n in threads["denoise"]} == {"ear-denoise"}, set(threads["denoise"])
    assert len(threads["embed"]) == len(results)
    assert {n.rsplit("_", 1)[0] for n in threads["embed"]} == {"ear-speakers"}, set(threads["embed"])


async def test_a_stream_cancelled_while_its_chunks_are_suppressed_leaves_no_rnnoise_state(
    monkeypatch: pytest.MonkeyPatch, shared_audio: Path
) -> None:
    made: list[weakref.ref[Denoiser]] = []
    init = Denoiser.__init__

    def traced_init(self: Denoiser, *args: object, **kwargs: object) -> None:
        init(self, *args, **kwargs)  # type: ignore[arg-type]
        made.append(weakref.ref(self))

    monkeypatch.setattr(Denoiser, "__init__", traced_init)
    runner = FakeRunner()
    async with serving(make_settings(NO_MODEL), warmup=False, runner_factory=lambda: runner) as live:
        cfg = call_config()
        cfg.noise_suppression = pb.NOISE_SUPPRESSION_RNNOISE
        calls = [Call(live.stub, cfg) for _ in range(4)]
        for call in calls:
            call.send(jfk_then_silence(shared_audio), chunk_ms=20)
        await until(lambda: all(len(c.got) >= 2 for c in calls), 30)  # started, and speech heard
        for call in calls:
            call.cancel()
        ear = live.server.app.sessions.ear
        await until(lambda: ear.streams == 0, 30)

        def freed() -> bool:
            gc.collect()
            return len(made) == 4 and all(r() is None for r in made)

        await until(freed, 30)
