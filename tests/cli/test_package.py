"""The CLI package without a server: what loading it costs, how flag groups become typer options and
the SDK's typed option objects, and the SDK's one-signature blocking client."""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys
import typing
from typing import Annotated

import pytest
import typer
import typer.main
from typer.testing import CliRunner

from translate_svc.cli import app
from translate_svc.client import AsyncTranslateClient, AudioFormat, OutputOptions, TranslateClient, VadOptions
from translate_svc.client.aio._client import _output, _stream_format
from translate_svc.client.types import OutputFields
from translate_svc.client_cli.common import CliError
from translate_svc.client_cli.flags import RawFlags, VadFlags, VoiceFlags, flag_groups

pytestmark = pytest.mark.unit


def test_loading_the_cli_loads_no_torch_and_no_server() -> None:
    code = (
        "import sys, translate_svc.cli; "
        "heavy = ('torch', 'transformers', 'translate_svc.model', 'translate_svc.app', 'translate_svc.session', "
        "'translate_svc.engine', 'translate_svc.transport', 'translate_svc.vad', 'onnxruntime'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m.startswith(heavy)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_bench_and_its_load_generator_load_no_torch_and_no_server() -> None:
    """What ``translate-svc-client bench`` loads when it runs (its command, its work modules and the
    WebSocket client of its openai mode): the client distribution's only (issue 57)."""
    code = (
        "import sys, translate_svc.client_cli.app, translate_svc.client_cli.load.ramp, "
        "translate_svc.client_cli.load.metrics, websockets.asyncio.client; "
        "server = ('translate_svc.cli', 'translate_svc.model', 'translate_svc.app', 'translate_svc.session', "
        "'translate_svc.engine', 'translate_svc.transport', 'translate_svc.vad', 'translate_svc.settings', "
        "'translate_svc.observability'); "
        "heavy = ('torch', 'transformers', 'onnxruntime', 'aiohttp', 'aiortc', 'prometheus_client'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy "
        "or any(m == s or m.startswith(s + '.') for s in server)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_command_is_registered() -> None:
    group = typer.main.get_command(app)
    names = set(group.commands)  # type: ignore[attr-defined]
    assert names == {
        "serve", "translate", "text", "stream", "languages", "make-test-model", "download-model",
        "make-test-lid-model", "download-lid-model", "phone-config",  # phone-config: issue 44
        "bench",  # issue 46: the capacity bench; since issue 57 the client distribution's (translate-svc-client)
        "listen",  # issue 59: a room's listener, the client distribution's
        "recordings",  # issue 61: recordings decrypt
        "usage",  # issue 61: each tenant's use, from the webhooks' usage records
        "glossaries",  # issue 73: stored glossaries, the client distribution's
        "job",  # issue 73: background jobs, the client distribution's
        "dub",  # issue 90: a video dubbed as a job, the client distribution's
        "detect",  # issue 103: does a file carry the speech watermark, the client distribution's
    }  # fmt: skip


@dataclasses.dataclass(frozen=True)
class _Pair:
    first: Annotated[str, typer.Option("--first")]
    second: Annotated[int, typer.Option("--second")] = 2


def test_flag_groups_become_options_and_come_back_as_dataclasses() -> None:
    got: list[tuple[str, _Pair, float]] = []

    @flag_groups
    def command(name: Annotated[str, typer.Argument()], *, pair: _Pair, scale: float = 1.0) -> None:
        got.append((name, pair, scale))

    params = inspect.signature(command).parameters
    assert list(params) == ["name", "first", "second", "scale"]
    assert params["first"].default is inspect.Parameter.empty  # a field without default: required
    cli = typer.Typer()
    cli.command()(command)
    cli.command("other")(lambda: None)
    r = CliRunner().invoke(cli, ["command", "x", "--first", "a", "--scale", "3"])
    assert r.exit_code == 0, r.output
    assert got == [("x", _Pair("a", 2), 3.0)]
    r = CliRunner().invoke(cli, ["command", "x"])
    assert r.exit_code == 2 and "--first" in r.output


def test_flag_groups_build_the_sdks_option_objects() -> None:
    assert VadFlags().options() is None
    assert VadFlags(vad_threshold=0.4, vad_max_segment_ms=2000).options() == VadOptions(
        threshold=0.4, max_segment_ms=2000
    )
    # every --vad-* flag is one VadOptions field, by name
    assert [f.name.removeprefix("vad_") for f in dataclasses.fields(VadFlags)] == [
        f.name for f in dataclasses.fields(VadOptions)
    ]
    assert RawFlags().format() is None
    assert RawFlags(raw_rate=8000, raw_channels=2, raw_encoding="S16LE").format() == AudioFormat("linear16", 8000, 2)
    with pytest.raises(CliError, match="--raw-rate 1000"):
        RawFlags(raw_rate=1000).format()
    with pytest.raises(CliError, match="--raw-encoding 'mp3'"):
        RawFlags(raw_rate=16000, raw_encoding="mp3").format()
    out = VoiceFlags(speaker_id=1, speech_rate=8000).output(speech=True, transcript=False)
    assert out == OutputOptions(speech=True, transcript=False, speech_sample_rate=8000, speaker_id=1)
    with pytest.raises(CliError, match="--speech-rate 100"):
        VoiceFlags(speech_rate=100).output(speech=True, transcript=True)


def test_output_options_and_their_keyword_form_agree() -> None:
    assert set(typing.get_type_hints(OutputFields)) == {f.name for f in dataclasses.fields(OutputOptions)}
    assert _output(None, {}) == OutputOptions()
    base = OutputOptions(speech=False, speaker_id=2)
    assert _output(base, {"speaker_id": 3}) == OutputOptions(speech=False, speaker_id=3)  # keywords win
    with pytest.raises(ValueError, match="speech encoding"):
        OutputOptions(speech_encoding="mp3")  # type: ignore[arg-type]


def test_stream_formats() -> None:
    assert _stream_format(None, None, None, None) == (AudioFormat("linear16", 16000, 1), "linear16")
    assert _stream_format(None, "opus", 16000, None) == (AudioFormat("opus", 48000, 1), "opus")
    assert _stream_format(AudioFormat("mulaw", 8000, 2), None, None, None)[0].frame_bytes == 2
    with pytest.raises(ValueError, match="not both"):
        _stream_format(AudioFormat(), "linear16", None, None)
    with pytest.raises(ValueError, match="container"):
        _stream_format(AudioFormat("container"), None, None, None)
    with pytest.raises(ValueError, match="channels"):
        AudioFormat(channels=3)


def test_the_blocking_client_has_the_async_signatures() -> None:
    for name in ("languages", "translate", "stream"):
        blocking = inspect.signature(getattr(TranslateClient, name))
        asynchronous = inspect.signature(getattr(AsyncTranslateClient, name))
        assert list(blocking.parameters) == list(asynchronous.parameters)
    client = AsyncTranslateClient("127.0.0.1:1")
    stream = client.stream(targets="spa", format=AudioFormat("float32", 24000), speech=False)
    assert stream._config.format.sample_rate_hz == 24000 and not stream._config.output.speech
