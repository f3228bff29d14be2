"""``translate-svc-client listen`` (issue 59): a room's listener on the command line, run as a user
runs it (the installed script, in a subprocess) against a real server on loopback whose speaker
speaks through the SDK. It prints each event as a JSON line (``--json``) or a text line, writes
each speaker's speech (``--out``), stops on Ctrl-C with what arrived kept, and exits with the
documented code and one line naming the server's reason when refused or ended.

The server runs the stable test translator (model/testing/stable.py: every segment has words and speech):
asserted is structure (ids, spans, languages, speech lengths), never words.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import soundfile as sf

from tests.support.cli import EXIT_AUTH, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, Run
from tests.support.live_server import LiveServer
from tests.support.rooms import registry, serving_rooms, speak_through_sdk, wait_for
from tests.support.signals import default_signals
from tests.support.speech import speech_pcm16
from tests.support.tokens import replace
from translate_svc.client import AsyncTranslateClient, Room, Segment

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(60)]

CLIENT = Path(sys.executable).parent / "translate-svc-client"
EVERY, STREAM_ONLY, TALK_ONLY, GOES = "every-0a1b2c3d", "stream-4e5f6a7b", "talk-8c9d0e1f", "goes-2a3b4c5d"
TOKENS = f"{EVERY}\n{STREAM_ONLY} stream\n{TALK_ONLY} listen=talk\n{GOES} listen=*\n"


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli-room-tokens") / "tokens"
    path.write_text(TOKENS)
    return path


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def room_server(test_model_dir: Path, tokens: Path) -> AsyncIterator[LiveServer]:
    async with serving_rooms(test_model_dir, tokens) as live:
        yield live


def address(live: LiveServer) -> str:
    return f"127.0.0.1:{live.port}"


class Listening:
    """``translate-svc-client listen ...`` running: its stdout lines as they come (read on a thread)."""

    def __init__(self, live: LiveServer, token: str, *args: str | Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TRANSLATE_SVC_TOKEN", "TRANSLATE_SVC_TLS"))}
        self.proc = subprocess.Popen(
            default_signals([CLIENT, "listen", *map(str, args), "--server", address(live)]),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**env, "TRANSLATE_SVC_TOKEN": token, "COLUMNS": "200"},
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in list(self.lines)]

    async def interrupt(self) -> Run:
        """Ctrl-C, then its exit."""
        self.proc.send_signal(signal.SIGINT)
        return await self.finished()

    async def finished(self) -> Run:
        assert self.proc.stderr is not None
        err = await asyncio.to_thread(self.proc.stderr.read)
        code = await asyncio.to_thread(self.proc.wait, 60)
        await asyncio.to_thread(self._reader.join, 10)
        run = Run(code, "".join(self.lines), err)
        assert "Traceback" not in run.text, run.text
        return run


async def speak(live: LiveServer, room: Room, pcm: bytes) -> list[Segment]:
    async with AsyncTranslateClient(address(live), token=EVERY) as client:
        return await speak_through_sdk(client, room, pcm)


def segments(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["type"] == "segment"]


async def test_listen_prints_json_lines_of_the_speakers_segments_and_writes_its_speech(
    room_server: LiveServer, shared_audio: Path, tmp_path: Path
) -> None:
    pcm = speech_pcm16(shared_audio / "silero_test.wav", 20.0, 16000).tobytes()
    out = tmp_path / "speech"
    listener = Listening(room_server, EVERY, "talk", "--language", "es", "--json", "--out", out)
    await wait_for(lambda: any('"started"' in line for line in listener.lines), 120)
    own = await speak(room_server, Room("talk", "mayor"), pcm)
    await wait_for(lambda: len(segments(listener.records())) >= len(own), 120)
    run = await listener.interrupt()

    assert run.code == EXIT_INTERRUPTED, run.text
    records = [json.loads(line) for line in run.out.splitlines()]  # stdout holds JSON lines only
    started = records[0]
    assert started["type"] == "started" and started["format"] == "translate-svc.listen.v1"
    assert (started["room"], started["language"], started["backlog"]) == ("talk", "spa", 0)  # es -> spa
    segs = segments(records)
    assert [(r["segment_id"], r["start_ms"], r["end_ms"]) for r in segs] == [
        (s.segment_id, s.start_ms, s.end_ms) for s in own
    ]
    for r in segs:
        assert r["speaker"] == "mayor" and r["backlog"] is False
        (t,) = r["translations"]
        assert t["target_language"] == "spa" and t["speech"]["num_samples"] > 0
    summary = records[-1]
    assert summary["type"] == "summary" and summary["interrupted"] is True
    assert (summary["segments"], summary["backlog_segments"]) == (len(own), 0)
    assert all("t_ms" in r for r in records)
    # the speaker's speech: each segment's at its place from the first one, the track extended to the last
    info = sf.info(out / "talk.mayor.spa.wav")
    rate = segs[0]["translations"][0]["speech"]["sample_rate_hz"]
    assert info.samplerate == rate
    span_ms = own[-1].end_ms - own[0].start_ms
    assert info.frames >= span_ms * rate // 1000
    last = segs[-1]["translations"][0]["speech"]
    assert info.frames == max(
        span_ms * rate // 1000, (own[-1].start_ms - own[0].start_ms) * rate // 1000 + last["num_samples"]
    )


async def test_listen_prints_the_backlog_first_marked_as_text_lines(
    room_server: LiveServer, shared_audio: Path
) -> None:
    pcm = speech_pcm16(shared_audio / "silero_test.wav", 10.0, 16000).tobytes()
    rooms = registry(room_server)
    # a listener in German while the talk is given, so that the backlog has it in German
    early = Listening(room_server, EVERY, "talk-b", "--language", "deu", "--json")
    await wait_for(lambda: rooms.listener_counts().get("deu", 0) == 1, 120)
    own = await speak(room_server, Room("talk-b", "ann"), pcm)
    await wait_for(lambda: len(segments(early.records())) >= len(own), 120)
    await early.interrupt()

    late = Listening(room_server, EVERY, "talk-b", "--language", "deu")
    await wait_for(lambda: sum("[backlog]" in line for line in late.lines) >= len(own), 120)
    run = await late.interrupt()
    assert run.code == EXIT_INTERRUPTED, run.text
    lines = run.out.splitlines()
    assert f"{len(own)} backlog segment(s) follow" in lines[0], lines[0]
    backlog = [line for line in lines if "[backlog]" in line]
    assert len(backlog) == len(own)
    for line, s in zip(backlog, own, strict=True):  # in order, with the speaker's ids and spans
        assert f"[backlog] ann {s.segment_id} [{s.start_ms}-{s.end_ms} ms]" in line, line
    assert f"heard {len(own)} segment(s) ({len(own)} from the backlog)" in lines[-1], lines[-1]


@pytest.mark.parametrize(
    ("token", "args", "code", "needles"),
    [
        (STREAM_ONLY, ("talk", "-l", "spa"), EXIT_AUTH, ("PERMISSION_DENIED", "may listen to no room")),
        (TALK_ONLY, ("hall", "-l", "spa", "--no-lang-check"), EXIT_AUTH, ("PERMISSION_DENIED", "room 'hall'")),
        ("unknown-token-0000", ("talk", "-l", "spa"), EXIT_AUTH, ("UNAUTHENTICATED",)),
        (EVERY, ("bad room", "-l", "spa"), EXIT_USAGE, ("room name",)),
        (EVERY, ("talk", "-l", "xx-nonsense"), EXIT_USAGE, ("unknown language (--language)",)),
    ],
    ids=["no-listen-right", "other-room", "unknown-token", "bad-room", "unknown-language"],
)
async def test_a_refused_listen_exits_with_its_code_and_the_servers_reason(
    room_server: LiveServer, token: str, args: tuple[str, ...], code: int, needles: tuple[str, ...]
) -> None:
    run = await Listening(room_server, token, *args).finished()
    assert run.code == code, run.text
    (line,) = [line for line in run.err.splitlines() if line.startswith("error: ")]
    for n in needles:
        assert n in line, line
    assert run.out == ""


async def test_a_listen_the_server_ends_exits_1_naming_the_reason(room_server: LiveServer, tokens: Path) -> None:
    listener = Listening(room_server, GOES, "quiet", "--language", "spa", "--json")
    await wait_for(lambda: any('"started"' in line for line in listener.lines), 120)
    replace(tokens, TOKENS.replace(f"{GOES} listen=*\n", ""))
    run = await listener.finished()
    assert run.code == EXIT_FAILED, run.text
    line = run.error_line()
    assert "listen ended: revoked (UNAUTHENTICATED)" in line and "revoked" in line.split("—")[1], line
    records = [json.loads(x) for x in run.out.splitlines()]
    assert [r["type"] for r in records] == ["started", "end", "summary"]
    assert records[1]["reason"] == "revoked" and records[1]["code"] == "UNAUTHENTICATED"
    assert records[2]["interrupted"] is False
