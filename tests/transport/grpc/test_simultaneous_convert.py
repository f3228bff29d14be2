"""Simultaneous mode on the wire (issue 33): the server's pb <-> domain conversion of the option,
the Commit event, ``speech_in_commits`` and the limits; the SDK's parsing of them, its resume
tracker's rule for commits, and the CLI's dub track made of the commits' speech."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.fake_runner import LANGUAGES
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.client import _convert as sdk
from translate_svc.client._tracker import StreamTracker
from translate_svc.client.types import Commit as SdkCommit
from translate_svc.client.types import Segment, Timing
from translate_svc.client.types import SimultaneousOptions as SdkSimultaneous
from translate_svc.client.types import Translation as SdkTranslation
from translate_svc.client_cli.common import CliError
from translate_svc.client_cli.files import commit_pieces
from translate_svc.client_cli.stream_run import simultaneous_options
from translate_svc.errors import InvalidInput
from translate_svc.session.events import StreamStarted
from translate_svc.settings import LimitsSettings
from translate_svc.transport.grpc import convert, server_info
from translate_svc.types import (
    AudioEncoding,
    AudioFormat,
    Commit,
    ModelCard,
    ModelInfo,
    OpusSpeech,
    SegmentResult,
    SimultaneousOptions,
    Translation,
    TranslationTask,
)
from translate_svc.vad.segmenter import SegmenterConfig

pytestmark = pytest.mark.unit

VAD = SegmenterConfig()
LIMITS = LimitsSettings()


def config(**simultaneous: int | bool) -> pb.StreamingConfig:
    msg = pb.StreamingConfig(
        format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000), target_languages=["spa"]
    )
    if simultaneous:
        msg.simultaneous.CopyFrom(pb.SimultaneousConfig(**simultaneous))  # type: ignore[arg-type]
    return msg


# -- the server: the option ---------------------------------------------------------------------


def test_the_option_is_off_unless_enabled_and_zeros_take_the_defaults() -> None:
    assert convert.stream_config(config(), VAD, LIMITS).simultaneous is None
    assert convert.stream_config(config(enabled=False), VAD, LIMITS).simultaneous is None
    assert convert.stream_config(config(enabled=True), VAD, LIMITS).simultaneous == SimultaneousOptions(1000, 2)
    got = convert.stream_config(config(enabled=True, step_ms=600, agreement=3), VAD, LIMITS).simultaneous
    assert got == SimultaneousOptions(step_ms=600, agreement=3)
    # ranges are the session's (task.py): a large step passes the door as it is
    assert convert.stream_config(config(enabled=True, step_ms=99_999), VAD, LIMITS).simultaneous == SimultaneousOptions(
        99_999, 2
    )


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"enabled": True, "step_ms": -1}, "config.simultaneous.step_ms is -1"),
        ({"enabled": True, "agreement": -2}, "config.simultaneous.agreement is -2"),
        ({"enabled": False, "step_ms": 500}, "enabled is false"),
    ],
)
def test_a_bad_option_is_refused_with_what_to_fix(fields: dict[str, int | bool], says: str) -> None:
    with pytest.raises(InvalidInput) as e:
        convert.stream_request(pb.StreamingTranslateRequest(config=config(**fields)), VAD, LIMITS)
    assert says in e.value.message
    assert "ServerLimits" in e.value.message or "enabled=true" in e.value.message


def test_the_limits_are_published() -> None:
    limits = LimitsSettings(
        min_simultaneous_step_ms=400,
        max_simultaneous_step_ms=5000,
        max_simultaneous_agreement=3,
        simultaneous_max_segment_ms=7_500,
    )
    msg = server_info.limits_to_pb(limits)
    assert (
        msg.min_simultaneous_step_ms,
        msg.max_simultaneous_step_ms,
        msg.max_simultaneous_agreement,
        msg.simultaneous_max_segment_ms,
    ) == (400, 5000, 3, 7_500)
    back = sdk.limits(msg)
    assert (
        back.min_simultaneous_step_ms,
        back.max_simultaneous_step_ms,
        back.max_simultaneous_agreement,
        back.simultaneous_max_segment_ms,
    ) == (400, 5000, 3, 7_500)
    assert server_info.limits_to_pb(LimitsSettings()).simultaneous_max_segment_ms == 6_000  # the default, filled


def started(simultaneous: SimultaneousOptions | None) -> StreamStarted:
    return StreamStarted(
        session_id="s",
        resume_token="0" * 32,
        format=AudioFormat(AudioEncoding.LINEAR16, 16000),
        task=TranslationTask(source_language="eng", target_languages=("spa",), simultaneous=simultaneous),
        vad=VAD,
        interim_interval_ms=0,
        resume=None,
        card=ModelCard(ModelInfo("fake", "none", True), LANGUAGES, num_speakers=2),
        limits=LimitsSettings(),
    )


def test_started_echoes_the_option_in_force_and_the_sdk_reads_it() -> None:
    on = convert.stream_event_to_pb(started(SimultaneousOptions(800, 3))).started
    assert on.config.simultaneous == pb.SimultaneousConfig(enabled=True, step_ms=800, agreement=3)
    assert sdk.simultaneous(on.config) == SdkSimultaneous(800, 3)
    off = convert.stream_event_to_pb(started(None)).started
    assert not off.config.HasField("simultaneous") and sdk.simultaneous(off.config) is None
    # what the server echoes parses back to the same option (a resumed call sends its original config)
    assert convert.stream_config(on.config, VAD, LIMITS).simultaneous == SimultaneousOptions(800, 3)


# -- the server: the event ----------------------------------------------------------------------


def test_a_commit_renders_its_delta_and_pcm_chunk_and_the_sdk_reads_it_back() -> None:
    chunk = np.linspace(-0.5, 0.5, 3200, dtype=np.float32)
    ev = Commit(3, Translation("spa", "hola que", chunk, 16000), source_ms=2400, final=False)
    msg = convert.stream_event_to_pb(ev)
    assert msg.WhichOneof("response") == "commit"
    c = msg.commit
    assert (c.segment_id, c.target_language, c.text, c.source_ms, c.final) == (3, "spa", "hola que", 2400, False)
    assert c.speech.encoding == pb.SPEECH_ENCODING_LINEAR16 and c.speech.sample_rate_hz == 16000
    assert (c.speech.num_samples, c.speech.duration_ms, len(c.speech.content)) == (3200, 200, 6400)

    got = sdk.commit(c)
    assert isinstance(got, SdkCommit)
    assert (got.segment_id, got.target, got.text, got.source_ms, got.final, got.restart) == (
        3,
        "spa",
        "hola que",
        2400,
        False,
        False,
    )
    assert got.has_speech and got.translation.audio is not None
    np.testing.assert_allclose(got.translation.audio, chunk, atol=1 / 16384)
    assert got.translation.duration_s == pytest.approx(0.2)


def test_a_commit_without_speech_has_no_speech_field() -> None:
    for audio in (None, np.zeros(0, np.float32)):
        c = convert.stream_event_to_pb(Commit(0, Translation("spa", "", audio), source_ms=900, final=True)).commit
        assert not c.HasField("speech") and c.final
        got = sdk.commit(c)
        assert not got.has_speech and got.text == "" and got.final


def test_an_opus_commit_carries_its_packets() -> None:
    opus = OpusSpeech(packets=(b"\x01", b"\x02"), pre_skip=312, num_samples=1500)
    ev = Commit(1, Translation("fra", "salut", np.zeros(1500, np.float32), 48000, opus), source_ms=1000)
    c = convert.commit_to_pb(ev)
    assert c.speech.encoding == pb.SPEECH_ENCODING_OPUS and c.speech.opus_pre_skip == 312
    assert [p.data for p in c.speech.opus_packets] == [b"\x01", b"\x02"] and c.speech.content == b""
    got = sdk.commit(c)
    assert got.translation.audio is None and [p.data for p in got.translation.opus_packets] == [b"\x01", b"\x02"]
    assert got.translation.opus_pre_skip == 312 and got.translation.num_samples == 1500


def test_speech_in_commits_is_carried_to_the_sdk() -> None:
    for flag in (False, True):
        r = SegmentResult(2, 0, 1000, translations=(Translation("spa", "hola"),), speech_in_commits=flag)
        msg = convert.stream_event_to_pb(r).segment
        assert msg.speech_in_commits is flag
        assert sdk.segment(msg).speech_in_commits is flag


def test_the_sdk_builds_the_option() -> None:
    assert sdk.simultaneous_pb(False) is None
    assert sdk.simultaneous_pb(True) == pb.SimultaneousConfig(enabled=True)
    assert sdk.simultaneous_pb(SdkSimultaneous(700, 3)) == pb.SimultaneousConfig(enabled=True, step_ms=700, agreement=3)
    with pytest.raises(ValueError, match="must not be negative"):
        SdkSimultaneous(step_ms=-1)
    with pytest.raises(ValueError, match="SimultaneousOptions"):
        sdk.simultaneous_pb(500)  # type: ignore[arg-type]


# -- the SDK's resume tracker --------------------------------------------------------------------


def sdk_commit(seg: int, text: str, target: str = "spa", final: bool = False) -> SdkCommit:
    return SdkCommit(seg, SdkTranslation(target, text), source_ms=0, final=final)


def sdk_segment(seg: int, end_ms: int) -> Segment:
    return Segment(seg, 0, end_ms, None, (), Timing())


def test_commits_of_delivered_segments_are_repeats_and_an_open_ones_restart_once_per_target() -> None:
    t = StreamTracker()
    assert t.commit(sdk_commit(0, "a ")) is not None
    assert t.segment(sdk_segment(0, 1000))
    assert t.commit(sdk_commit(0, "a ")) is None  # its final was delivered: a repeat
    first = t.commit(sdk_commit(1, "b ", "spa"))
    assert first is not None and not first.restart
    assert t.commit(sdk_commit(1, "b ", "fra")) is not None
    t.new_call()  # the call is lost and resumed: segment 1 is translated again from its start
    assert t.commit(sdk_commit(0, "a ")) is None
    again = t.commit(sdk_commit(1, "b "))
    assert again is not None and again.restart and again.text == "b "
    more = t.commit(sdk_commit(1, "c "))
    assert more is not None and not more.restart  # only the first one of the new call restarts
    fra = t.commit(sdk_commit(1, "b ", "fra"))
    assert fra is not None and fra.restart
    assert t.resume_offset_ms == 1000  # commits do not move the resume point: only finals do
    assert t.segment(sdk_segment(1, 2000))
    t.new_call()
    fresh = t.commit(sdk_commit(2, "d "))
    assert fresh is not None and not fresh.restart  # segment 2 had no commits before the resume


# -- the CLI: the dub track of the commits ------------------------------------------------------


def test_chunks_start_when_committed_or_when_the_chunk_before_ends() -> None:
    def chunk(seg: int, source_ms: int, ms: int, target: str = "spa") -> SdkCommit:
        audio = np.ones(ms * 16, np.float32)
        return SdkCommit(seg, SdkTranslation(target, "w ", audio, 16000, len(audio)), source_ms=source_ms)

    commits = [chunk(0, 1000, 300), chunk(0, 1200, 200), chunk(0, 2000, 100), chunk(0, 2000, 100, "fra")]
    pieces = commit_pieces(commits, [], "spa")
    assert [start for start, _, _ in pieces] == [1000, 1300, 2000]
    # a segment whose speech did not come in commits is placed at its start
    seg = Segment(1, 5000, 6000, None, (SdkTranslation("spa", "x", np.ones(160, np.float32), 16000, 160),), Timing())
    assert [start for start, _, _ in commit_pieces(commits, [seg], "spa")] == [1000, 1300, 2000, 5000]


def test_cli_option_checks() -> None:
    assert simultaneous_options(False, 0, 0) is None
    assert simultaneous_options(True, 0, 0) == SdkSimultaneous()
    assert simultaneous_options(True, 700, 3) == SdkSimultaneous(700, 3)
    with pytest.raises(CliError, match="--simultaneous"):
        simultaneous_options(False, 700, 0)
    with pytest.raises(CliError, match="negative"):
        simultaneous_options(True, -5, 0)
