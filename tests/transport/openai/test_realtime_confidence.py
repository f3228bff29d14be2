"""Confidence on the realtime translation session's events (issue 91, point 5): the transcription
sessions carried the transcript's log-probabilities (``include``), the translation sessions
nothing. OpenAI's translation events have no field for it, so ``x_avg_logprob`` carries the
model's own mean token log-probability (docs/api.md "Confidence") on the transcript and
translation deltas and the done events, the same value the gRPC door gives for the same audio.

A real server on the test checkpoint (its random weights compute confidence, though what they say
may be empty: the done events carry it whatever the text), the real ``openai`` SDK's realtime
client, and openai-node's ``OpenAIRealtimeWebSocket`` on Node 22 (``make node``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
import trustme
from openai import AsyncOpenAI

from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.paths import REPO
from tests.support.speech import speech_pcm16
from translate_svc.api.v1 import translate_pb2 as pb

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(60)]

TOKEN = "rt91-confidence-token-2b7e"
MODEL = "gpt-realtime-translate"
CHUNK = 4800  # 200 ms at 24 kHz
SECONDS = 12
NODE_DIR = REPO / ".node" / "node_modules"
NODE_SCRIPT = REPO / "tests" / "support" / "node" / "realtime_translation.cjs"
#: the two doors' values for one segment agree to float rounding (docs/api.md "Confidence")
CLOSE = 1e-3


@pytest.fixture(scope="module")
def pcm24k(shared_audio: Path) -> np.ndarray:
    return speech_pcm16(shared_audio / "silero_test.wav", SECONDS, 24000)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def door(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    tokens = tmp_path_factory.mktemp("tokens") / "tokens"
    tokens.write_text(f"{TOKEN} stream\n")
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    settings.auth.tokens_file = tokens
    async with serving(settings) as live:
        yield live


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA and a certificate for 127.0.0.1: openai-node's client takes ``wss://`` URLs only."""
    tmp = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(tmp / "tls.crt")
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(tmp / "tls.crt", append=True)
    cert.private_key_pem.write_to_path(tmp / "tls.key")
    ca.cert_pem.write_to_path(tmp / "ca.pem")
    return {"cert": tmp / "tls.crt", "key": tmp / "tls.key", "ca": tmp / "ca.pem"}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def tls_door(
    test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory, tls_files: dict[str, Path]
) -> AsyncIterator[LiveServer]:
    tokens = tmp_path_factory.mktemp("tokens") / "tokens"
    tokens.write_text(f"{TOKEN} stream\n")
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    settings.server.tls_cert_file = tls_files["cert"]
    settings.server.tls_key_file = tls_files["key"]
    settings.auth.tokens_file = tokens
    async with serving(settings) as live:
        yield live


def http_port(live: LiveServer) -> int:
    assert live.server.http is not None
    return int(live.server.http.port)


async def grpc_segments(live: LiveServer, pcm24k: np.ndarray) -> dict[int, pb.SegmentResult]:
    """The same 24 kHz audio through the gRPC door, by segment id: the reference."""
    cfg = pb.StreamingConfig(
        format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=24000, channels=1),
        source_language="eng",
        target_languages=["spa"],
        output=pb.OutputOptions(text=True, speech=False, transcript=True),
    )
    msgs = [pb.StreamingTranslateRequest(config=cfg)]
    msgs += [pb.StreamingTranslateRequest(audio=pcm24k[i : i + CHUNK].tobytes()) for i in range(0, len(pcm24k), CHUNK)]
    call = live.stub.StreamingTranslate(iter(msgs), timeout=120, metadata=(("authorization", f"Bearer {TOKEN}"),))
    return {r.segment.segment_id: r.segment async for r in call if r.HasField("segment")}


async def sdk_session(live: LiveServer, pcm24k: np.ndarray, session: dict[str, Any]) -> list[Any]:
    """``pcm24k`` through the Python SDK's realtime client as fast as it takes it, then
    ``session.close``: every event up to ``session.closed``."""
    events: list[Any] = []
    client = AsyncOpenAI(base_url=f"http://127.0.0.1:{http_port(live)}/v1", api_key=TOKEN, max_retries=0)
    async with client.realtime.translations.connect(model=MODEL) as conn:
        assert (await conn.recv()).type == "session.created"
        await conn.session.update(session=session)  # type: ignore[arg-type]
        for at in range(0, len(pcm24k), CHUNK):
            chunk = pcm24k[at : at + CHUNK].tobytes()
            await conn.session.input_audio_buffer.append(audio=base64.b64encode(chunk).decode())
        await conn.session.close()
        async with asyncio.timeout(120):
            async for ev in conn:
                events.append(ev)
                if ev.type == "session.closed":
                    break
    kinds = [e.type for e in events]
    assert kinds[-1] == "session.closed" and "error" not in kinds, kinds
    return events


def logprob(ev: Any) -> float:
    value = ev.model_extra.get("x_avg_logprob")
    assert isinstance(value, float) and value <= 0.0, (ev.type, ev.model_extra)
    return value


async def test_segment_mode_events_carry_the_grpc_doors_confidence(door: LiveServer, pcm24k: np.ndarray) -> None:
    session = {
        "audio": {"output": {"language": "es"}, "input": {"language": "en", "transcription": {"model": "x"}}},
        "x_simultaneous_step_ms": 0,
    }
    events = await sdk_session(door, pcm24k, session)
    want = await grpc_segments(door, pcm24k)
    assert len(want) >= 2
    done = {e.x_segment["segment_id"]: e for e in events if e.type == "session.output_transcript.done"}
    heard = {e.x_segment["segment_id"]: e for e in events if e.type == "session.input_transcript.done"}
    assert sorted(done) == sorted(want) == sorted(heard), (sorted(done), sorted(want), sorted(heard))
    for sid, seg in want.items():
        assert seg.translations[0].HasField("avg_logprob") and seg.transcript.HasField("avg_logprob")
        assert abs(logprob(done[sid]) - seg.translations[0].avg_logprob) < CLOSE, sid
        assert abs(logprob(heard[sid]) - seg.transcript.avg_logprob) < CLOSE, sid
    # each delta of a segment's text carries the same value as its done event
    outs = [e for e in events if e.type == "session.output_transcript.delta" and e.delta]
    ins = [e for e in events if e.type == "session.input_transcript.delta" and e.delta]
    for e in outs:
        assert logprob(e) == logprob(done[e.x_segment["segment_id"]])
    for e in ins:
        assert logprob(e) == logprob(heard[e.x_segment["segment_id"]])


async def test_simultaneous_mode_events_carry_confidence(door: LiveServer, pcm24k: np.ndarray) -> None:
    session = {"audio": {"output": {"language": "es"}}, "x_simultaneous_step_ms": 500}
    events = await sdk_session(door, pcm24k, session)
    done = {e.x_segment["segment_id"]: e for e in events if e.type == "session.output_transcript.done"}
    assert len(done) >= 2
    for e in done.values():
        logprob(e)
    # the delta that ends a segment with commits: the whole text's value, as its done event's
    for e in events:
        if e.model_extra.get("x_done") is not None:
            assert logprob(e) == logprob(done[e.x_segment["segment_id"]])
        elif e.model_extra.get("x_commit") is not None and e.type == "session.output_transcript.delta" and e.delta:
            logprob(e)  # a commit that adds words: the mean over the tokens it adds


async def test_openai_node_reads_confidence_on_node_22(
    tls_door: LiveServer, tls_files: dict[str, Path], pcm24k: np.ndarray, tmp_path: Path
) -> None:
    binary = NODE_DIR / ".bin" / "node"
    if not binary.exists() or not (NODE_DIR / "openai").is_dir():
        pytest.fail("this test needs Node 22 and the openai npm package in .node/: run `make node` (npm)")
    pcm = tmp_path / "speech24k.pcm"
    pcm.write_bytes(pcm24k.tobytes())
    url = f"wss://127.0.0.1:{http_port(tls_door)}/v1/realtime/translations?model={MODEL}"
    proc = await asyncio.create_subprocess_exec(
        binary,
        str(NODE_SCRIPT),
        url,
        TOKEN,
        str(pcm),
        "es",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "NODE_EXTRA_CA_CERTS": str(tls_files["ca"]), "NODE_PATH": str(NODE_DIR)},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 150)
    assert proc.returncode == 0 and out, err.decode()[-2000:]
    got: dict[str, Any] = json.loads(out)
    assert got["opened"] and got["errors"] == [] and got["close"] == 1000, got
    done = [e for e in got["events"] if e["type"] == "session.output_transcript.done"]
    assert len(done) >= 2, got["events"]
    for e in done:
        value = e.get("x_avg_logprob")  # JSON again: a whole value reads as an int
        assert isinstance(value, (int, float)) and not isinstance(value, bool) and value <= 0.0, e
