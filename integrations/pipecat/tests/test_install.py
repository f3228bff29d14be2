"""The virtualenv this integration installs (Makefile, requirements.txt): pipecat-ai 1.14.0 beside
protobuf 7, against pipecat-ai's own pin (protobuf<7). Both sides of that choice work here."""

from __future__ import annotations

from importlib.metadata import version

from google.protobuf import __version__ as protobuf_version
from pipecat.frames.frames import InterruptionFrame, OutputAudioRawFrame, TextFrame
from pipecat.serializers.protobuf import ProtobufFrameSerializer


def test_the_venv_has_pipecat_1_14_and_protobuf_7() -> None:
    assert version("pipecat-ai") == "1.14.0"
    assert int(protobuf_version.split(".")[0]) == 7
    from translate_svc.api.v1 import translate_pb2  # checks its runtime: refuses protobuf < 7.35.1

    assert translate_pb2.DESCRIPTOR.package == "translate_svc.api.v1"


async def test_pipecats_own_protobuf_serializer_still_round_trips_frames() -> None:
    """pipecat-ai's one use of protobuf is its frame serializer (generated for protobuf 5.27): it
    still loads, writes and reads frames under protobuf 7."""
    serializer = ProtobufFrameSerializer()
    text = await serializer.deserialize(await serializer.serialize(TextFrame("hola")))
    assert isinstance(text, TextFrame) and text.text == "hola"
    audio = OutputAudioRawFrame(audio=bytes(range(256)) * 2, sample_rate=8000, num_channels=1)
    back = await serializer.deserialize(await serializer.serialize(audio))
    assert back is not None and back.audio == audio.audio and back.sample_rate == 8000
    assert isinstance(await serializer.deserialize(await serializer.serialize(InterruptionFrame())), InterruptionFrame)
