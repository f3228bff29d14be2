"""Endings that are told (issue 32): a stream the server ends other than cleanly -- a tenant's audio
budget (QUOTA), a revoked token (REVOKED), a message it cannot use (ERROR), its limits (IDLE_TIMEOUT,
MAX_STREAM_DURATION) -- reaches the SDK with its reason, status, message and request id, and is
raised (``StreamEndedError``) after the ``StreamEnd``; the CLI writes what arrived and exits 1 with
one line naming the reason and the server's message.

One real server on loopback with the test checkpoint and a tokens file (a token, or a tenant, per
test: a spent budget and a revoked token stay so), and one with a fake model and short limits. The
CLI runs in this process on a worker thread while the server serves on the test's loop. Nothing
here reads what the random-weight model says.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import pytest_asyncio
import soundfile as sf

from tests.support.cli import EXIT_FAILED, Run, check_summary, fails, read_jsonl, run_cli
from tests.support.fake_runner import FakeRunner
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.paths import REPO
from translate_svc.client import (
    AsyncStream,
    AsyncTranslateClient,
    EndReason,
    Segment,
    StreamEnd,
    StreamEndedError,
    TranslateClient,
    TranslateError,
)
from translate_svc.client_cli.decode import load_pcm16k

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(15)]

OK_TOKEN = "endings-ok-4b1d9e7a3c"
QUOTA = {"sdk": "endings-quota-sdk-8e2f", "cli": "endings-quota-cli-1a7c", "translate": "endings-quota-tr-5c9d"}
REVOKE = {"sdk": "endings-revoke-sdk-6d3b", "cli": "endings-revoke-cli-0f5e"}
BUDGET_S = 2  # each quota tenant's audio seconds per minute
CHUNK = 1600  # 100 ms at 16 kHz


class Tokens:
    """The server's tokens file; ``revoke`` rewrites it without a token, atomically (as a Secret
    volume swaps files), and the server ends that token's streams within about a second."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines = {OK_TOKEN: f"{OK_TOKEN} *"}
        for who, token in QUOTA.items():
            self.lines[token] = f"{token} * tenant=quota-{who} audio_seconds_per_minute={BUDGET_S}"
        for token in REVOKE.values():
            self.lines[token] = f"{token} *"
        self.write()

    def write(self) -> None:
        tmp = self.path.with_suffix(".new")
        tmp.write_text("".join(line + "\n" for line in self.lines.values()))
        os.replace(tmp, self.path)

    def revoke(self, token: str) -> None:
        del self.lines[token]
        self.write()


class Endings:
    def __init__(self, live: LiveServer, tokens: Tokens) -> None:
        self.live = live
        self.tokens = tokens
        self.address = f"127.0.0.1:{live.port}"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def endings(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Endings]:
    tokens = Tokens(tmp_path_factory.mktemp("endings") / "tokens")
    settings = make_settings(test_model_dir)
    settings.auth.tokens_file = tokens.path
    async with serving(settings) as live:
        yield Endings(live, tokens)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def limited() -> AsyncIterator[str]:
    """A fake model and short limits: a stream idle for 1 s, or longer than 1.5 s, is ended."""
    settings = make_settings(REPO / "model_cache" / "unused-fake-runner")
    settings.limits.idle_timeout_s = 1.0
    settings.limits.max_stream_seconds = 1.5
    async with serving(settings, warmup=False, runner_factory=FakeRunner) as live:
        yield f"127.0.0.1:{live.port}"


@pytest.fixture(scope="module")
def jfk(shared_audio: Path) -> np.ndarray:
    return load_pcm16k(shared_audio / "jfk.flac")


def chunks(pcm: np.ndarray) -> Iterator[np.ndarray]:
    return (pcm[i : i + CHUNK] for i in range(0, len(pcm), CHUNK))


def nan_float32(jfk: np.ndarray, before_s: float) -> tuple[bytes, bytes]:
    """FLOAT32 audio: ``before_s`` of speech, then a chunk holding a NaN (the server refuses it)."""
    speech = (jfk[: int(16000 * before_s)].astype(np.float32) / 32768.0).astype("<f4")
    bad = np.zeros(CHUNK, "<f4")
    bad[100] = np.nan
    return speech.tobytes(), bad.tobytes()


async def send_all(s: AsyncStream, data: Any) -> None:
    """Send and half-close; a send may already meet the end (then it raises StreamEndedError)."""
    try:
        for c in data:
            await s.send(c)
        await s.close()
    except StreamEndedError:
        pass


async def until_ended(s: AsyncStream) -> tuple[list[object], StreamEndedError]:
    events: list[object] = []
    with pytest.raises(StreamEndedError) as raised:
        async for ev in s:
            events.append(ev)
    return events, raised.value


def check_ended(
    s: AsyncStream, events: list[object], err: StreamEndedError, reason: EndReason, code: grpc.StatusCode, *words: str
) -> StreamEnd:
    """The StreamEnd came last (yielded before the raise), with the call's status, and the error
    carries the same; every segment before it was delivered."""
    end = events[-1]
    assert isinstance(end, StreamEnd), events[-3:]
    assert end.reason is reason and end.code is code and not end.clean, end
    for w in words:
        assert w in end.message, end.message
    assert end.request_id == s.request_id and s.ended == end
    assert isinstance(err, TranslateError) and err.end == end
    assert (err.reason, err.code, err.message, err.request_id) == (reason, code, end.message, s.request_id)
    assert reason.value in str(err) and end.message in str(err)
    assert end.segments_total == sum(isinstance(e, Segment) for e in events)
    assert not [e for e in events[:-1] if isinstance(e, StreamEnd)]
    return end


async def check_send_raises(s: AsyncStream, err: StreamEndedError) -> None:
    """After such an end, ``send`` and ``flush`` raise the same error, not a generic closed one."""
    with pytest.raises(StreamEndedError) as sent:
        await s.send(np.zeros(CHUNK, np.int16))
    assert sent.value is err
    with pytest.raises(StreamEndedError):
        await s.flush()


# -- the SDK ----------------------------------------------------------------------------------------


async def test_a_spent_audio_budget_is_raised_with_the_servers_message(endings: Endings, jfk: np.ndarray) -> None:
    async with AsyncTranslateClient(endings.address, token=QUOTA["sdk"]) as client:
        async with client.stream(targets="spa", speech=False) as s:
            sender = asyncio.create_task(send_all(s, chunks(jfk[: 16000 * 4])))
            events, err = await until_ended(s)
            await sender
            end = check_ended(
                s, events, err, EndReason.QUOTA, grpc.StatusCode.RESOURCE_EXHAUSTED, "tenant 'quota-sdk'", "per minute"
            )
            assert BUDGET_S * 1000 <= end.audio_received_ms < 4000  # stopped at the budget
            assert err.retry_delay_s is not None and err.retry_delay_s > 0  # the server's RetryInfo
            await check_send_raises(s, err)
            with pytest.raises(StopAsyncIteration):  # raised once; then the iteration is over
                await s.__anext__()


async def test_a_revoked_token_is_raised_with_the_servers_message(endings: Endings, jfk: np.ndarray) -> None:
    async with AsyncTranslateClient(endings.address, token=REVOKE["sdk"]) as client:
        async with client.stream(targets="spa", speech=False) as s:
            for c in chunks(jfk[: 16000 * 2]):  # and the stream stays open
                await s.send(c)
            endings.tokens.revoke(REVOKE["sdk"])
            events, err = await asyncio.wait_for(until_ended(s), 20)
            check_ended(s, events, err, EndReason.REVOKED, grpc.StatusCode.UNAUTHENTICATED, "revoked")
            await check_send_raises(s, err)


async def test_a_message_the_server_refuses_is_raised_with_its_message(endings: Endings, jfk: np.ndarray) -> None:
    speech, bad = nan_float32(jfk, 1.0)
    async with AsyncTranslateClient(endings.address, token=OK_TOKEN) as client:
        async with client.stream(targets="spa", speech=False, encoding="float32") as s:
            await send_all(s, [speech, bad, speech])
            events, err = await until_ended(s)
            end = check_ended(s, events, err, EndReason.ERROR, grpc.StatusCode.INVALID_ARGUMENT, "non-finite")
            assert end.audio_received_ms == 1000  # up to the refused chunk; the rest was dropped


async def test_the_blocking_stream_yields_the_end_then_raises(endings: Endings, jfk: np.ndarray) -> None:
    speech, bad = nan_float32(jfk, 0.5)

    def blocking() -> tuple[list[object], list[object], StreamEndedError, Any]:
        with TranslateClient(endings.address, token=OK_TOKEN) as client:
            with client.stream(targets="spa", speech=False, encoding="float32") as s:
                s.send(speech)
                s.send(bad)
                polled: list[object] = []
                while not any(isinstance(e, StreamEnd) for e in polled):
                    polled += s.poll(timeout=None)  # returns the StreamEnd; raises next time
                with pytest.raises(StreamEndedError) as raised:
                    s.poll(timeout=None)
                with pytest.raises(StreamEndedError):
                    s.send(speech)
                return polled, list(s), raised.value, s.ended

    polled, after, err, ended = await asyncio.to_thread(blocking)
    assert after == []  # the iteration is over once it raised
    end = polled[-1]
    assert isinstance(end, StreamEnd) and ended == end == err.end
    assert end.reason is EndReason.ERROR and err.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "non-finite" in err.message and end.audio_received_ms == 500


async def test_idle_and_duration_limits_are_raised_and_a_half_close_is_clean(limited: str) -> None:
    """IDLE_TIMEOUT and MAX_STREAM_DURATION end the call with OUT_OF_RANGE: the server cut the
    stream short, so they raise; HALF_CLOSE (OK) is the one clean end."""
    silence = np.zeros(CHUNK, np.int16)
    async with AsyncTranslateClient(limited) as client:
        async with client.stream(targets="spa") as s:  # 0.2 s, then nothing for over a second
            await s.send(np.zeros(2 * CHUNK, np.int16))
            events, err = await asyncio.wait_for(until_ended(s), 10)
            check_ended(s, events, err, EndReason.IDLE_TIMEOUT, grpc.StatusCode.OUT_OF_RANGE, "no message for")
        async with client.stream(targets="spa") as s:  # 2 s against a 1.5 s limit
            await send_all(s, [silence] * 20)
            events, err = await until_ended(s)
            end = check_ended(s, events, err, EndReason.MAX_STREAM_DURATION, grpc.StatusCode.OUT_OF_RANGE, "maximum")
            assert end.audio_received_ms == 1500
        async with client.stream(targets="spa") as s:
            await send_all(s, [silence] * 5)
            events = [ev async for ev in s]  # no raise
            clean = events[-1]
            assert isinstance(clean, StreamEnd) and clean.clean and s.ended == clean
            assert (clean.reason, clean.code, clean.message, clean.request_id) == (
                EndReason.HALF_CLOSE,
                grpc.StatusCode.OK,
                "",
                s.request_id,
            )


# -- the CLI ----------------------------------------------------------------------------------------


def check_cli_ended(r: Run, jsonl: Path, reason: str, code: str, *words: str) -> dict[str, Any]:
    """Exit 1, one error line naming the reason and the server's message; what arrived written:
    the segments, the end line with its status, and the summary last."""
    line = fails(r, EXIT_FAILED, f"stream ended: {reason} ({code})", *words)
    lines = read_jsonl(jsonl)
    ends = [x for x in lines if x["type"] == "end"]
    assert len(ends) == 1, lines
    end = ends[0]
    assert (end["reason"], end["code"]) == (reason, code) and end["message"] in line
    assert end["segments_total"] == sum(x["type"] == "segment" for x in lines)
    check_summary(lines, interrupted=False)
    assert f"ended ({reason}):" in r.out
    return end


def wav(path: Path, pcm: np.ndarray) -> Path:
    sf.write(path, pcm, 16000, subtype="PCM_16")
    return path


async def test_the_cli_exits_1_when_the_budget_is_spent(endings: Endings, jfk: np.ndarray, tmp_path: Path) -> None:
    src, jsonl = wav(tmp_path / "five.wav", jfk[: 16000 * 5]), tmp_path / "quota.jsonl"
    args = ("stream", src, "--to", "spa", "--jsonl", jsonl, "--server", endings.address, "--token", QUOTA["cli"])
    r = await asyncio.to_thread(run_cli, *args)
    end = check_cli_ended(r, jsonl, "quota", "RESOURCE_EXHAUSTED", "tenant 'quota-cli'", "per minute")
    assert BUDGET_S * 1000 <= end["audio_received_ms"] < 5000


async def test_the_cli_exits_1_when_the_server_refuses_its_input(
    endings: Endings, jfk: np.ndarray, tmp_path: Path
) -> None:
    """Headerless FLOAT32 with a NaN inside: the server ends the stream there (ERROR)."""
    speech, bad = nan_float32(jfk, 1.0)
    src, jsonl = tmp_path / "bad.f32", tmp_path / "bad.jsonl"
    src.write_bytes(speech + bad + speech)
    r = await asyncio.to_thread(
        run_cli,
        *("stream", src, "--raw-rate", "16000", "--raw-encoding", "float32", "--to", "spa", "--jsonl", jsonl),
        *("--server", endings.address, "--token", OK_TOKEN),
    )
    end = check_cli_ended(r, jsonl, "error", "INVALID_ARGUMENT", "non-finite")
    assert end["audio_received_ms"] == 1000


async def test_the_cli_exits_1_when_its_token_is_revoked(endings: Endings, jfk: np.ndarray, tmp_path: Path) -> None:
    """A real-time stream of 10 s; its token is removed once it started."""
    src, jsonl = wav(tmp_path / "ten.wav", jfk[: 16000 * 10]), tmp_path / "revoked.jsonl"
    args = ("stream", src, "--to", "spa", "--realtime", "--jsonl", jsonl, "--server", endings.address)
    done = threading.Event()

    def run() -> Run:
        try:
            return run_cli(*args, "--token", REVOKE["cli"], timeout=60)
        finally:
            done.set()

    cli = asyncio.create_task(asyncio.to_thread(run))
    while not (jsonl.exists() and '"type": "started"' in jsonl.read_text()):
        assert not done.is_set(), (await cli).text
        await asyncio.sleep(0.05)
    endings.tokens.revoke(REVOKE["cli"])
    r = await asyncio.wait_for(cli, 30)
    end = check_cli_ended(r, jsonl, "revoked", "UNAUTHENTICATED", "revoked")
    assert end["audio_received_ms"] < 10_000  # cut short, not the whole file


async def test_translate_via_a_stream_writes_what_arrived_and_exits_1(
    endings: Endings, jfk: np.ndarray, tmp_path: Path
) -> None:
    src, out = wav(tmp_path / "five.wav", jfk[: 16000 * 5]), tmp_path / "out"
    r = await asyncio.to_thread(
        run_cli,
        *("translate", src, "--to", "spa", "--no-speech", "--via", "stream", "--out", out),
        *("--server", endings.address, "--token", QUOTA["translate"]),
    )
    fails(r, EXIT_FAILED, "stream ended: quota (RESOURCE_EXHAUSTED)", "tenant 'quota-translate'")
    doc = json.loads((out / "five.json").read_text())  # the segments that arrived, up to the budget
    assert BUDGET_S * 1000 <= doc["audio_duration_ms"] < 5000
    assert all(s["end_ms"] <= doc["audio_duration_ms"] for s in doc["segments"])
