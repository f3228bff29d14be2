"""A session whose process is killed still gets its one ``session.ended`` (issue 61), ``ending:
lost`` from its last checkpoint (the audio it had received by then):

- ``translate-svc serve`` (its webhooks set through the environment, as an operator sets them) is
  killed with SIGKILL mid-stream: the next start on the same data dir ends the session;
- ``serve --workers 2``: the worker that holds the stream is killed (its pid read from the data
  dir's heartbeats): the node's other worker, or the one the supervisor starts in its place, ends
  the session while the node keeps serving.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from tests.support.raw import channel
from tests.support.server_process import ServerProcess
from tests.support.speech import speech_pcm16
from tests.support.webhook_receiver import Receiver, new_secret, receiving
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(80)]

LEASE_S = 0.5


def env_for(receiver: Receiver, data_dir: Path) -> dict[str, str]:
    return {
        "TRANSLATE_SVC_WEBHOOKS__ENDPOINTS": json.dumps([{"url": receiver.url, "secret": receiver.secrets[0]}]),
        "TRANSLATE_SVC_WEBHOOKS__DATA_DIR": str(data_dir),
        "TRANSLATE_SVC_WEBHOOKS__ALLOW_HTTP": "true",  # the receiver on loopback
        "TRANSLATE_SVC_WEBHOOKS__LEASE_S": str(LEASE_S),
        "TRANSLATE_SVC_WEBHOOKS__FIRST_BACKOFF_S": "0.2",
        "TRANSLATE_SVC_WEBHOOKS__MAX_BACKOFF_S": "1",
    }


def serve_args(model: Path, *more: str) -> list[str]:
    return ["--model", str(model), "--host", "127.0.0.1", "--port", "0", "--test-translator", "stable", *more]


async def stream_then_kill(address: str, pcm: np.ndarray, receiver: Receiver, kill: Any) -> None:
    """A real-time stream open with over a second of its audio charged and checkpointed, then
    ``kill()``: the stream fails (its process is gone)."""
    ch = channel(address)
    try:
        cfg = pb.StreamingConfig(
            format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000), target_languages=["spa"]
        )

        async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
            yield pb.StreamingTranslateRequest(config=cfg)
            for at in range(0, len(pcm), 1600):
                await asyncio.sleep(0.1)
                yield pb.StreamingTranslateRequest(audio=pcm[at : at + 1600].tobytes())

        call = pb_grpc.TranslatorStub(ch).StreamingTranslate(requests(), timeout=60)
        assert (await asyncio.wait_for(call.read(), 30)).HasField("started")
        await receiver.wait_for(lambda r: len(r.events("session.started")) == 1)
        await asyncio.sleep(2.5 + 2 * LEASE_S)
        await kill()
        with pytest.raises(grpc.aio.AioRpcError):
            while await call.read() is not grpc.aio.EOF:
                pass
    finally:
        await ch.close()


def check_lost(receiver: Receiver) -> None:
    (started,) = receiver.events("session.started")
    (ended,) = receiver.events("session.ended")
    data = ended["data"]
    assert data["session_id"] == started["data"]["session_id"]
    assert data["door"] == "StreamingTranslate"
    assert (data["ending"], data["reason"]) == ("lost", "process_exited")
    assert data["usage"]["audio_in_s"] >= 1.0  # what it had received at its last checkpoint


async def test_a_killed_servers_open_session_is_ended_as_lost_by_the_next_start(
    test_model_dir: Path, shared_audio: Path, tmp_path: Path
) -> None:
    pcm = speech_pcm16(shared_audio / "silero_test.wav", 8.0, 16000)
    async with receiving(new_secret()) as receiver:
        env = env_for(receiver, tmp_path / "data")
        first = await asyncio.to_thread(ServerProcess, serve_args(test_model_dir), env)

        async def kill() -> None:
            first.proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(first.proc.wait, 30)

        try:
            await stream_then_kill(first.address, pcm, receiver, kill)
        finally:
            first.stop()
        assert receiver.events("session.ended") == []
        second = await asyncio.to_thread(ServerProcess, serve_args(test_model_dir), env)
        try:
            await receiver.wait_for(lambda r: len(r.events("session.ended")) == 1, 60)
            await asyncio.sleep(4 * LEASE_S)  # more beats and sweeps: nothing more comes
        finally:
            await asyncio.to_thread(second.stop)
    check_lost(receiver)


async def test_a_killed_workers_open_session_is_ended_as_lost_by_the_node(
    test_model_dir: Path, shared_audio: Path, tmp_path: Path
) -> None:
    pcm = speech_pcm16(shared_audio / "silero_test.wav", 8.0, 16000)
    data_dir = tmp_path / "data"
    async with receiving(new_secret()) as receiver:
        node = await asyncio.to_thread(
            ServerProcess, serve_args(test_model_dir, "--workers", "2"), env_for(receiver, data_dir)
        )

        async def kill() -> None:
            with sqlite3.connect(data_dir / "events.sqlite3") as db:  # the stream's worker, by its heartbeat
                (pid,) = db.execute("SELECT o.pid FROM open_sessions s JOIN owners o ON o.owner = s.owner").fetchone()
            assert pid != node.proc.pid
            os.kill(pid, signal.SIGKILL)

        try:
            await stream_then_kill(node.address, pcm, receiver, kill)
            await receiver.wait_for(lambda r: len(r.events("session.ended")) == 1, 60)
            await asyncio.sleep(4 * LEASE_S)
            assert node.proc.poll() is None  # the node serves on
        finally:
            await asyncio.to_thread(node.stop)
    check_lost(receiver)
