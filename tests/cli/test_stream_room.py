"""``translate-svc-client stream --room`` (issue 59): a room's speaker on the command line, run as a
user runs it (the installed script, in a subprocess) against a real server on loopback, with a
listener through the SDK. The listener gets the command's segments (its ids and spans, named by
its ``--participant``) in the listener's language, while the command shows its own ``--to`` only;
a speaker the server refuses exits with the documented code and the server's reason.

The server runs the stable test translator (model/testing/stable.py): asserted is structure (ids, spans,
languages), never words.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import soundfile as sf

from tests.support.cli import EXIT_AUTH, EXIT_USAGE, Run, fails
from tests.support.live_server import LiveServer
from tests.support.rooms import serving_rooms
from tests.support.speech import speech_pcm16
from translate_svc.client import AsyncTranslateClient, ListenStarted, RoomSegment

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(40)]

CLIENT = Path(sys.executable).parent / "translate-svc-client"
EVERY, LISTEN_ONLY = "every-0a1b2c3d", "listen-4e5f6a7b"
TOKENS = f"{EVERY}\n{LISTEN_ONLY} listen=*\n"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def room_server(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    """A rooms server whose tokens are ``TOKENS``."""
    tokens = tmp_path_factory.mktemp("cli-stream-room") / "tokens"
    tokens.write_text(TOKENS)
    async with serving_rooms(test_model_dir, tokens) as live:
        yield live


@pytest.fixture(scope="module")
def talk(shared_audio: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli-stream-room-audio") / "talk.wav"
    sf.write(path, speech_pcm16(shared_audio / "silero_test.wav", 20.0, 16000), 16000, subtype="PCM_16")
    return path


def address(live: LiveServer) -> str:
    return f"127.0.0.1:{live.port}"


async def stream(live: LiveServer, token: str, *args: str | Path) -> Run:
    """``translate-svc-client stream ... --server`` in a subprocess, to its end."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRANSLATE_SVC_TOKEN", "TRANSLATE_SVC_TLS"))}
    argv = [str(CLIENT), "stream", *map(str, args), "--server", address(live)]
    p = await asyncio.to_thread(
        subprocess.run,
        argv,
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "TRANSLATE_SVC_TOKEN": token, "COLUMNS": "200"},
    )
    run = Run(p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in run.text, run.text
    return run


async def test_stream_room_is_heard_by_a_listener_with_its_ids_and_spans(room_server: LiveServer, talk: Path) -> None:
    async with (
        AsyncTranslateClient(address(room_server), token=EVERY) as client,
        client.listen("town", "fra") as listener,
    ):
        started = await asyncio.wait_for(anext(listener), 30)
        assert isinstance(started, ListenStarted) and started.backlog == 0
        run = await stream(
            room_server,
            EVERY,
            *(talk, "--from", "en", "--to", "es", "--room", "town", "--participant", "mayor", "--jsonl", "-"),
        )
        assert run.code == 0, run.text
        records = [json.loads(line) for line in run.out.splitlines()]
        own = [r for r in records if r["type"] == "segment"]
        assert len(own) >= 5
        for r in own:  # the command shows its own target only, not the room's French
            assert [t["target_language"] for t in r["translations"]] == ["spa"], r
        heard: list[RoomSegment] = []
        while len(heard) < len(own):
            ev = await asyncio.wait_for(anext(listener), 30)
            if isinstance(ev, RoomSegment):
                assert ev.speaker == "mayor"
                heard.append(ev)
    assert [(h.segment.segment_id, h.segment.start_ms, h.segment.end_ms) for h in heard] == [
        (r["segment_id"], r["start_ms"], r["end_ms"]) for r in own
    ]
    for h in heard:
        assert not h.backlog and [t.target for t in h.segment.translations] == ["fra"]


async def test_a_room_speaker_the_server_refuses_exits_with_its_reason(room_server: LiveServer, talk: Path) -> None:
    no_source = await stream(room_server, EVERY, talk, "--to", "es", "--room", "town")
    fails(no_source, EXIT_USAGE, "source_language")
    may_not = await stream(room_server, LISTEN_ONLY, talk, "--from", "en", "--room", "town", "--asr-only")
    fails(may_not, EXIT_AUTH, "may not publish")
