"""The client distribution against a real server of this checkout: its stubs under the protobuf and
grpcio of this environment, the SDK's four calls, a live stream, a refusal, and the client command
line translating jfk.flac. ``make client-matrix`` runs this file in one fresh virtualenv per
protobuf major (the versions are named in the Makefile and checked by the first test)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import grpc
import numpy as np
import pytest
from conftest import Server
from google import protobuf

from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.client import (
    AsyncTranslateClient,
    EndReason,
    Segment,
    SpeechEvent,
    SpeechEventType,
    StreamEnd,
    StreamEvent,
    TranslateClient,
    TranslateError,
)
from translate_svc.client_cli.decode import decode_audio
from translate_svc.languages import guess_model_code

#: what `make client-matrix` installed here (unset when run from the development environment)
MATRIX_PROTOBUF = os.environ.get("TRANSLATE_SVC_MATRIX_PROTOBUF")
MATRIX_GRPCIO = os.environ.get("TRANSLATE_SVC_MATRIX_GRPCIO")
#: the server's modules (translate_svc.audio wholly the server's since issue 58) and its heavy requirements
SERVER_ONLY = (
    "torch",
    "transformers",
    "onnxruntime",
    "aiortc",
    "aiohttp",
    "translate_svc.app",
    "translate_svc.cli",
    "translate_svc.audio",
)


@pytest.mark.skipif(MATRIX_PROTOBUF is None, reason="the matrix's pins are checked in `make client-matrix` only")
def test_this_environment_is_the_one_the_matrix_names() -> None:
    assert protobuf.__version__ == MATRIX_PROTOBUF
    assert grpc.__version__ == MATRIX_GRPCIO
    # the client from site-packages (a pip install of clients/python), none of the server beside it
    assert pb.__file__ is not None and Path(pb.__file__).is_relative_to(sysconfig.get_paths()["purelib"])
    assert [m for m in SERVER_ONLY if importlib.util.find_spec(m) is not None] == []
    # what both sides of the wire share is the client's translate_svc.wire; the tests' protobuf-level
    # helpers (tests/support/raw.py) are not shipped (issue 58)
    assert importlib.util.find_spec("translate_svc.wire.pcm") is not None
    assert importlib.util.find_spec("translate_svc.client.raw") is None


def test_the_stubs_build_parse_and_keep_presence_under_this_protobuf() -> None:
    request = pb.StreamingTranslateRequest(
        config=pb.StreamingConfig(
            format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000, channels=1),
            target_languages=["spa", "fra"],
            output=pb.OutputOptions(text=True, speech=False),
            vad=pb.VadOptions(threshold=0.4),
        )
    )
    back = pb.StreamingTranslateRequest.FromString(request.SerializeToString())
    assert back == request and back.WhichOneof("request") == "config"
    out = back.config.output
    assert out.HasField("speech") and not out.speech and not out.HasField("transcript")  # proto3 optional
    assert back.config.vad.HasField("threshold") and not back.config.vad.HasField("min_silence_ms")
    assert list(back.config.target_languages) == ["spa", "fra"]
    assert pb.StreamEnd.Reason.Name(pb.StreamEnd.QUOTA) == "QUOTA"


def test_languages_and_tags(server: Server) -> None:
    with TranslateClient(server.address) as c:
        got = c.languages()
    assert got.model.is_test_model and "spa" in got.codes and "eng" in got.codes
    assert got.limits.max_target_languages >= 1
    assert guess_model_code("es") == "spa" and guess_model_code("zh-TW") == "cmn_Hant"


def test_a_clip_and_texts(server: Server, jfk_path: Path) -> None:
    with TranslateClient(server.address) as c:
        clip = c.translate(jfk_path, targets=["spa", "fra"], source="eng", speech=False)
        texts = c.translate_text(["Good morning.", "Thank you."], source="eng", targets=["spa", "fra"], speech=False)
    assert clip.segments and 10_500 <= clip.audio_duration_ms <= 11_500  # jfk.flac: 11.0 s
    assert [s.segment_id for s in clip.segments] == list(range(len(clip.segments)))
    for seg in clip.segments:
        assert 0 <= seg.start_ms < seg.end_ms <= clip.audio_duration_ms and seg.error is None
        assert [t.target for t in seg.translations] == ["spa", "fra"]
        assert all(t.audio is None for t in seg.translations)  # speech=False is kept
    assert [r.text for r in texts.results] == ["Good morning.", "Thank you."]
    assert all([t.target for t in r.translations] == ["spa", "fra"] for r in texts.results)


async def test_a_live_stream_gives_speech_events_segments_and_its_end(server: Server, jfk_path: Path) -> None:
    data = await asyncio.to_thread(jfk_path.read_bytes)
    samples, rate = decode_audio(data, rate=16000)  # 44.1 kHz -> 16 kHz (soxr)
    assert rate == 16000
    pcm = np.round(samples * 32768).clip(-32768, 32767).astype("<i2")
    events: list[StreamEvent] = []
    async with AsyncTranslateClient(server.address) as c, c.stream(targets="spa", source="eng", speech=False) as s:
        for i in range(0, len(pcm), 1600):  # 100 ms chunks
            await s.send(pcm[i : i + 1600])
        await s.close()
        events = [ev async for ev in s]
    speech = [e.type for e in events if isinstance(e, SpeechEvent)]
    segments = [e for e in events if isinstance(e, Segment)]
    assert speech[:2] == [SpeechEventType.STARTED, SpeechEventType.ENDED] and segments
    assert [s.segment_id for s in segments] == list(range(len(segments)))
    end = events[-1]
    assert isinstance(end, StreamEnd) and end.reason is EndReason.HALF_CLOSE
    assert end.segments_total == len(segments) and end.audio_received_ms == round(len(pcm) / 16)


def test_a_refusal_is_a_typed_error_with_the_servers_reason(server: Server) -> None:
    with TranslateClient(server.address) as c, pytest.raises(TranslateError) as err:
        c.translate_text(["Hello."], source="eng", targets=["qqq"])
    assert err.value.code is grpc.StatusCode.INVALID_ARGUMENT and "qqq" in err.value.message


def test_the_client_command_translates_jfk(server: Server, jfk_path: Path, tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "translate-svc-client"  # what pip installed
    if MATRIX_PROTOBUF is not None:
        assert script.is_file(), "pip install of clients/python installs the translate-svc-client script"
    cli = [str(script)] if script.is_file() else [sys.executable, "-m", "translate_svc.client_cli"]
    r = subprocess.run(
        [*cli, "translate", str(jfk_path), "--from", "en", "--to", "es", "--server", server.address,
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "jfk.json").read_text())
    assert doc["format"] == "translate-svc.result.v1" and doc["target_languages"] == ["spa"]
    assert doc["segments"] and all(s["translations"][0]["target_language"] == "spa" for s in doc["segments"])
    assert (tmp_path / doc["files"]["spa"]["dub"]).is_file()  # the dub track, written by soundfile
