"""The virtualenv these tests run in (Makefile: one plain pip install of pipecat-ai 1.14.0, the client
distribution clients/python and this package): pipecat-ai's own protobuf (< 7, its pin) under the
client's stubs, and none of the server beside them (the tests start servers from the project's
virtualenv, TRANSLATE_SVC_SERVER_PYTHON)."""

from __future__ import annotations

import importlib.util
import sysconfig
from importlib.metadata import requires, version
from pathlib import Path

from google.protobuf import __version__ as protobuf_version
from pipecat.frames.frames import InterruptionFrame, OutputAudioRawFrame, TextFrame
from pipecat.serializers.protobuf import ProtobufFrameSerializer

#: modules of the server distribution (and its heavy requirements) that a client environment lacks
#: translate_svc.audio: the server's own since issue 58 (the client's share is translate_svc.wire)
SERVER_ONLY = (
    "torch",
    "transformers",
    "aiortc",
    "translate_svc.app",
    "translate_svc.cli",
    "translate_svc.model",
    "translate_svc.audio",
)


def test_the_venv_has_pipecat_1_14_with_its_own_protobuf() -> None:
    assert version("pipecat-ai") == "1.14.0"
    # pipecat-ai's pin, as its metadata states it, holds: no override of it in this venv
    assert any(r.replace(" ", "").startswith("protobuf") and "<7" in r for r in requires("pipecat-ai") or [])
    assert int(protobuf_version.split(".")[0]) < 7
    from translate_svc.api.v1 import translate_pb2

    assert translate_pb2.DESCRIPTOR.package == "translate_svc.api.v1"
    request = translate_pb2.StreamingTranslateRequest(audio=b"\x00\x01")
    assert translate_pb2.StreamingTranslateRequest.FromString(request.SerializeToString()) == request


def test_the_client_comes_from_its_own_distribution_and_no_server_is_installed() -> None:
    from translate_svc import client

    assert version("translate-svc-client") == "0.1.0"
    assert client.__file__ is not None
    assert Path(client.__file__).is_relative_to(sysconfig.get_paths()["purelib"])
    assert [m for m in SERVER_ONLY if importlib.util.find_spec(m) is not None] == []


async def test_pipecats_own_protobuf_serializer_round_trips_frames() -> None:
    """pipecat-ai's one use of protobuf is its frame serializer (generated for protobuf 5.27)."""
    serializer = ProtobufFrameSerializer()
    text = await serializer.deserialize(await serializer.serialize(TextFrame("hola")))
    assert isinstance(text, TextFrame) and text.text == "hola"
    audio = OutputAudioRawFrame(audio=bytes(range(256)) * 2, sample_rate=8000, num_channels=1)
    back = await serializer.deserialize(await serializer.serialize(audio))
    assert back is not None and back.audio == audio.audio and back.sample_rate == 8000
    assert isinstance(await serializer.deserialize(await serializer.serialize(InterruptionFrame())), InterruptionFrame)
