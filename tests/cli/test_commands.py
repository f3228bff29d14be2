"""The translate-svc CLI as a user runs it: the ``translate-svc`` app (in this process through typer's
runner; the installed script in a subprocess where stdin, signals or the entry point matter),
against a real ``translate-svc serve`` subprocess (the test checkpoint, loopback, port 0), checking
the exit codes, stdout/stderr and every file written (JSON shape, SRT/VTT parsed with the ``srt``
and ``webvtt`` libraries, dub tracks of the source's length with the speech at its offsets).

Every mistake gives one ``error:`` line and its documented exit code, never a traceback; text the
server, the model or the user chose (``[/x]``, ``:smile:``) is printed as it is, not as markup.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import soundfile as sf
import srt
import trustme
import webvtt
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.cli import (
    EXIT_AUTH,
    EXIT_CONNECT,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    check_summary,
    fails,
    read_jsonl,
    run_cli,
)
from tests.support.paths import REPO
from tests.support.proc import free_port
from tests.support.server_process import CLI, ServerProcess
from tests.support.signals import default_signals
from translate_svc.client import TranslateClient
from translate_svc.client.types import Language
from translate_svc.client_cli.lang import UnknownLanguage, resolve_language
from translate_svc.client_cli.output import dub_track, latency_summary, nearest_rank, output_bases
from translate_svc.languages import guess_model_code
from translate_svc.subtitles import vtt_document

pytestmark = [pytest.mark.integration, pytest.mark.slow(75)]  # seconds, for the schedule (conftest.py)

DEMO = REPO / "clients" / "python" / "src" / "translate_svc" / "samples" / "demo_eng.wav"
TOKEN_ALL = "cli-all-7d1f3b5a9c2e"
TOKEN_LANGUAGES = "cli-lang-4e6a8c0b2d1f"
TOKEN_TRANSLATE = "cli-tr-9a7c5e3b1d0f"


# -- servers and running the CLI --------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(test_model_dir: Path) -> Iterator[str]:
    srv = ServerProcess(["--model", str(test_model_dir), "--host", "127.0.0.1", "--port", "0"])
    try:
        yield srv.address
    finally:
        srv.stop()


@dataclass(frozen=True)
class Secure:
    address: str
    ca: Path
    tokens_dir: Path


@pytest.fixture(scope="module")
def secure_server(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secure]:
    """A TLS server that requires tokens (one with every permission, one for ListLanguages only,
    one for Translate only), on the made-up stable translator (model/testing/stable.py; no torch):
    what is tested on it is TLS and tokens, which no model call takes part in."""
    d = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    (d / "ca.pem").write_bytes(ca.cert_pem.bytes())
    (d / "server.pem").write_bytes(b"".join(b.bytes() for b in cert.cert_chain_pems))
    (d / "server.key").write_bytes(cert.private_key_pem.bytes())
    (d / "tokens").write_text(f"{TOKEN_ALL}\n{TOKEN_LANGUAGES} languages\n{TOKEN_TRANSLATE} translate\n")
    srv = ServerProcess(
        [
            *("--model", str(test_model_dir), "--host", "127.0.0.1", "--port", "0"),
            *("--tls-cert", str(d / "server.pem"), "--tls-key", str(d / "server.key")),
            *("--tokens-file", str(d / "tokens")),
            *("--test-translator", "stable"),
        ]
    )
    try:
        yield Secure(srv.address, d / "ca.pem", d)
    finally:
        srv.stop()


# -- serve's ready file ---------------------------------------------------------------------------


def test_serve_writes_its_ready_file_in_place_of_a_stale_one(test_model_dir: Path, tmp_path: Path) -> None:
    """``--ready-file``: a file left there is replaced by this run's (its pid), which names ports
    a real client reaches; the file goes when the server exits, and nothing else is left beside it."""
    path = tmp_path / "ready.json"
    path.write_text('{"port": 1, "pid": 1} and a previous run\'s garbage')
    args = ["--model", str(test_model_dir), "--host", "127.0.0.1", "--port", "0", "--health-port", "0"]
    # the made-up stable translator (model/testing/stable.py; no torch): the ready file is what is
    # tested (the file's other servers run the test checkpoint)
    srv = ServerProcess([*args, "--http-port", "0", "--test-translator", "stable"], ready_file=path)
    try:
        doc = json.loads(path.read_text())  # one JSON object, read without the SDK's reader
        assert doc["pid"] == srv.proc.pid, doc
        assert doc["host"] == "127.0.0.1" and "workers" not in doc and "engine_pid" not in doc, doc
        ports = [doc["port"], doc["health_port"], doc["http_port"]]
        assert all(isinstance(p, int) and p > 0 for p in ports) and len(set(ports)) == 3, doc
        with TranslateClient(f"127.0.0.1:{doc['port']}") as c:
            assert "spa" in c.languages().codes
        with grpc.insecure_channel(f"127.0.0.1:{doc['health_port']}") as ch:
            reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        with socket.create_connection(("127.0.0.1", doc["http_port"]), timeout=10) as conn:
            conn.sendall(b"GET /demo HTTP/1.0\r\n\r\n")
            assert conn.recv(64).startswith(b"HTTP/1.")  # the OpenAI-compatible door answers
    finally:
        srv.stop()
    assert srv.proc.returncode == 0
    assert list(tmp_path.iterdir()) == []  # removed at exit; no temporary file beside it


@pytest.mark.parametrize("why", ["no model", "no directory"])
def test_serve_that_cannot_start_leaves_no_ready_file(tmp_path: Path, test_model_dir: Path, why: str) -> None:
    """A file left at --ready-file is removed before anything that can fail; a place it cannot be
    written stops the start (exit 2), not the first write after serving."""
    if why == "no model":
        path = tmp_path / "ready.json"
        path.write_text('{"port": 50051, "pid": 1}')
        r = run_cli("serve", "--model", tmp_path / "missing", "--port", "0", "--ready-file", path, process=True)
        assert not path.exists()
    else:
        path = tmp_path / "missing" / "ready.json"
        r = run_cli("serve", "--model", test_model_dir, "--port", "0", "--ready-file", path, process=True)
        assert "--ready-file" in r.out and "does not exist" in r.out, r.text
    assert r.code == EXIT_USAGE and "cannot start:" in r.out, r.text


def load_json(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def spans(doc: dict[str, Any]) -> list[tuple[int, int]]:
    return [(s["start_ms"], s["end_ms"]) for s in doc["segments"]]


def pcm16(path: Path) -> tuple[bytes, int]:
    x, rate = sf.read(path, dtype="int16")
    return np.asarray(x).tobytes(), int(rate)


def check_result_shape(doc: dict[str, Any], targets: Sequence[str], source: str | None) -> None:
    assert doc["format"] == "translate-svc.result.v1"
    assert doc["target_languages"] == list(targets) and doc["source_language"] == source
    assert isinstance(doc["audio_duration_ms"], int) and doc["audio_duration_ms"] > 0
    assert set(doc["model"]) == {"name", "revision", "is_test_model", "num_speakers"}
    assert doc["model"]["is_test_model"] is True
    assert doc["segments"], "the sample has speech"
    for i, seg in enumerate(doc["segments"]):
        assert seg["segment_id"] == i
        assert isinstance(seg["start_ms"], int) and isinstance(seg["end_ms"], int)
        assert 0 <= seg["start_ms"] < seg["end_ms"] <= doc["audio_duration_ms"]
        assert seg["status"] == {"code": "OK", "message": ""}
        assert (seg["transcript"] is not None) == (source is not None)
        assert [t["target_language"] for t in seg["translations"]] == list(targets)
        for t in seg["translations"]:
            assert isinstance(t["text"], str)
            sp = t["speech"]
            if sp is not None:
                assert isinstance(sp["sample_rate_hz"], int) and isinstance(sp["num_samples"], int)
                assert sp["duration_ms"] == pytest.approx(sp["num_samples"] * 1000 / sp["sample_rate_hz"], abs=1e-3)
        assert set(seg["timing"]) == {"queue_ms", "model_ms", "total_ms", "vad_wait_ms", "speech_ms", "language_id_ms"}
        assert all(isinstance(v, int | float) for v in seg["timing"].values())


# -- translate ----------------------------------------------------------------------------------------


def test_the_demo_command_line(server: str, tmp_path: Path) -> None:
    out = tmp_path / "out" / "demo"
    # the installed script, as README's demo runs it
    r = run_cli("translate", DEMO, "--from", "eng", "--to", "spa,fra", "--server", server, "--out", out, process=True)
    assert r.code == 0, r.text
    assert "demo_eng.wav" in r.out and "segments" in r.out
    assert "noise" in r.err  # the test checkpoint is announced
    names = sorted(p.name for p in out.iterdir())
    assert names == ["demo_eng.fra.wav", "demo_eng.json", "demo_eng.spa.wav"]
    for name in names:
        assert f"wrote {out / name}" in r.out
    doc = load_json(out / "demo_eng.json")
    check_result_shape(doc, ["spa", "fra"], "eng")
    assert doc["input"] == str(DEMO) and doc["via"] == "Translate"
    assert doc["audio_duration_ms"] == pytest.approx(sf.info(DEMO).duration * 1000, abs=1)
    for target in ("spa", "fra"):
        info = sf.info(out / f"demo_eng.{target}.wav")
        assert info.samplerate == 16000
        assert info.frames == round(doc["audio_duration_ms"] * 16)  # the dub track is the source's length
        assert doc["files"][target]["dub"] == f"demo_eng.{target}.wav"

    # run again: nothing is overwritten without --overwrite
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.iterdir()}
    again = run_cli("translate", DEMO, "--from", "eng", "--to", "spa,fra", "--server", server, "--out", out)
    fails(again, EXIT_USAGE, "demo_eng", "already exists", "--overwrite")
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.iterdir()} == before
    forced = run_cli(
        "translate", DEMO, "--from", "eng", "--to", "spa,fra", "--server", server, "--out", out, "--overwrite"
    )
    assert forced.code == 0, forced.text
    assert sorted(p.name for p in out.iterdir()) == names  # no temporary files left


def test_inputs_that_share_a_stem_do_not_collide(server: str, tmp_path: Path) -> None:
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        shutil.copy(DEMO, tmp_path / d / "x.wav")
    r = run_cli("translate", "a/x.wav", "b/x.wav", "--to", "spa", "--server", server, "--out", "out", cwd=tmp_path)
    assert r.code == 0, r.text
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["a_x.json", "a_x.spa.wav", "b_x.json", "b_x.spa.wav"]
    assert load_json(tmp_path / "out" / "a_x.json")["input"] == "a/x.wav"
    assert load_json(tmp_path / "out" / "b_x.json")["input"] == "b/x.wav"


def test_subtitles_and_the_dub_track(server: str, shared_audio: Path, tmp_path: Path) -> None:
    src = shared_audio / "jfk.flac"  # 44.1 kHz stereo: the dub track is still the source's length
    r = run_cli(
        *("translate", src, "--from", "eng", "--to", "spa", "--format", "json,srt,vtt", "--concat"),
        *("--server", server, "--out", tmp_path),
    )
    assert r.code == 0, r.text
    doc = load_json(tmp_path / "jfk.json")
    check_result_shape(doc, ["spa"], "eng")
    segs = doc["segments"]
    expected = [
        (s["start_ms"], s["end_ms"], s["translations"][0]["text"].strip())
        for s in segs
        if s["translations"][0]["text"].strip()
    ]
    subs = list(srt.parse((tmp_path / "jfk.spa.srt").read_text()))
    assert [
        (round(c.start.total_seconds() * 1000), round(c.end.total_seconds() * 1000), c.content) for c in subs
    ] == expected

    def ms(stamp: str) -> int:
        h, m, s = stamp.split(":")
        return round((int(h) * 3600 + int(m) * 60 + float(s)) * 1000)

    vtt = webvtt.from_string((tmp_path / "jfk.spa.vtt").read_text())
    assert [(ms(c.start), ms(c.end)) for c in vtt] == [(a, b) for a, b, _ in expected]
    assert doc["files"]["spa"] == {
        "dub": "jfk.spa.wav",
        "segments": "jfk.spa.segments.wav",
        "srt": "jfk.spa.srt",
        "vtt": "jfk.spa.vtt",
        "sample_rate_hz": 16000,
        "speech_cut_ms": doc["files"]["spa"]["speech_cut_ms"],
    }

    dub, rate = sf.read(tmp_path / "jfk.spa.wav", dtype="int16")
    assert rate == 16000
    assert len(dub) == round(sf.info(src).duration * 16000)
    concat, _ = sf.read(tmp_path / "jfk.spa.segments.wav", dtype="int16")
    # each segment's speech starts at its start_ms: compare with the back-to-back track
    first, second = segs[0], segs[1]
    n0 = first["translations"][0]["speech"]["num_samples"]
    off0, off1 = first["start_ms"] * 16, second["start_ms"] * 16
    assert not dub[:off0].any()  # silence before the first segment
    take = min(n0, off1 - off0)
    assert np.array_equal(dub[off0 : off0 + take], concat[:take])
    n1 = second["translations"][0]["speech"]["num_samples"]
    start1 = n0 + 300 * 16  # the segments-only track: 300 ms between segments
    if off0 + n0 <= off1:  # no overlap from segment 0: segment 1 sits alone at its offset
        take1 = min(n1, (segs[2]["start_ms"] * 16 if len(segs) > 2 else len(dub)) - off1)
        assert np.array_equal(dub[off1 : off1 + take1], concat[start1 : start1 + take1])


def test_word_cues_hold_the_words_inside_their_times(server: str, shared_audio: Path, tmp_path: Path) -> None:
    """--word-cues: SRT and WebVTT (parsed by ``srt`` and ``webvtt-py``) whose every cue has at most
    two lines of at most 42 characters (a longer word alone on its line) and whose text is exactly
    the words of one segment that lie inside its times (from the JSON's word timings: the
    transcript's on the stream's timeline, a translation's from its segment's start); every word
    is in a cue, in order."""
    src = shared_audio / "jfk.flac"
    for flags, name, key in (
        (("--to", "spa"), "jfk.spa", "translation"),
        (("--asr-only",), "jfk.transcript", "transcript"),
    ):
        out = tmp_path / key
        r = run_cli(
            *("translate", src, "--from", "eng", *flags, "--format", "json,srt,vtt", "--word-cues"),
            *("--server", server, "--out", out),
        )
        assert r.code == 0, r.text
        doc = load_json(out / "jfk.json")
        groups = []
        for s in doc["segments"]:
            if key == "transcript":
                groups.append([(w["start_ms"], w["end_ms"], w["word"]) for w in s.get("transcript_words", [])])
            else:
                t = s["translations"][0]
                groups.append(
                    [
                        (s["start_ms"] + w["start_ms"], s["start_ms"] + w["end_ms"], w["word"])
                        for w in t.get("words", [])
                    ]
                )
        every = [w for g in groups for w in g if w[2].strip()]
        assert every, "no timed word: nothing was checked"

        def ms(stamp: str) -> int:
            h, m, sec = stamp.split(":")
            return round((int(h) * 3600 + int(m) * 60 + float(sec)) * 1000)

        subs = [
            (round(c.start.total_seconds() * 1000), round(c.end.total_seconds() * 1000), c.content)
            for c in srt.parse((out / f"{name}.srt").read_text())
        ]
        vtt = [(ms(c.start), ms(c.end), c.text) for c in webvtt.from_string((out / f"{name}.vtt").read_text())]
        for cues in (subs, vtt):
            assert [w for _, _, text in cues for w in text.split()] == [w[2] for w in every]
            for start, end, text in cues:
                lines = text.split("\n")
                assert 1 <= len(lines) <= 2
                assert all(len(line) <= 42 or " " not in line for line in lines)
                inside = [[w[2] for w in g if start <= w[0] and w[1] <= end and w[2].strip()] for g in groups]
                assert text.split() in inside, (start, end, text)


def test_a_long_file_shows_progress_and_gives_the_same_segments(
    server: str, shared_audio: Path, tmp_path: Path
) -> None:
    src = shared_audio / "silero_test.wav"  # 60 s: --via auto takes the stream (real progress)
    r = run_cli(
        *("translate", src, "--to", "es", "--no-speech", "--server", server, "--out", tmp_path / "a"),
        env={"TTY_COMPATIBLE": "1"},  # let rich draw the bar although stderr is a pipe
        process=True,  # rich's live display, as a user's terminal gets it
    )
    assert r.code == 0, r.text
    assert re.search(r"\d+%", r.err), r.err
    streamed = load_json(tmp_path / "a" / "silero_test.json")
    assert streamed["via"] == "StreamingTranslate"
    check_result_shape(streamed, ["spa"], None)
    one = run_cli(
        *("translate", src, "--to", "spa", "--no-speech", "--via", "translate"),
        *("--server", server, "--out", tmp_path / "b"),
    )
    assert one.code == 0, one.text
    unary = load_json(tmp_path / "b" / "silero_test.json")
    assert unary["via"] == "Translate"
    assert spans(streamed) == spans(unary) and len(spans(unary)) > 10
    assert streamed["audio_duration_ms"] == unary["audio_duration_ms"] == 60000

    # the same audio as headerless PCM gives the same segments
    data, rate = pcm16(src)
    (tmp_path / "talk.raw").write_bytes(data)
    raw = run_cli(
        *("translate", tmp_path / "talk.raw", "--raw-rate", str(rate), "--to", "spa", "--no-speech"),
        *("--via", "translate", "--server", server, "--out", tmp_path / "c"),
    )
    assert raw.code == 0, raw.text
    assert spans(load_json(tmp_path / "c" / "talk.json")) == spans(unary)


def test_bcp47_languages_map_to_the_models_codes(server: str, tmp_path: Path) -> None:
    r = run_cli(
        *("translate", DEMO, "--from", "en", "--to", "es-ES,pt-BR", "--format", "srt"),
        *("--server", server, "--out", tmp_path),
    )
    assert r.code == 0, r.text
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "demo_eng.por.srt",
        "demo_eng.por.wav",
        "demo_eng.spa.srt",
        "demo_eng.spa.wav",
    ]
    text_only = run_cli(
        *("translate", DEMO, "--to", "zh-Hans", "--no-speech", "--format", "json"),
        *("--server", server, "--out", tmp_path),
    )
    assert text_only.code == 0, text_only.text
    assert load_json(tmp_path / "demo_eng.json")["target_languages"] == ["cmn"]
    fails(
        run_cli("translate", DEMO, "--to", "zh", "--server", server, "--out", tmp_path / "x"),
        EXIT_USAGE,
        "cmn",
        "text output only",
        "--no-speech",
    )
    fails(
        run_cli("translate", DEMO, "--to", "spansh", "--server", server, "--out", tmp_path / "x"),
        EXIT_USAGE,
        "'spansh'",
        "did you mean spa (Spanish)?",
    )
    fails(
        run_cli("translate", DEMO, "--from", "klingon", "--to", "es", "--server", server, "--out", tmp_path / "x"),
        EXIT_USAGE,
        "source language",
        "'klingon'",
        "translate-svc languages",
    )
    assert not (tmp_path / "x").exists()


def test_markup_in_names_and_messages_is_printed_verbatim(server: str, tmp_path: Path) -> None:
    (tmp_path / "[bold]x[").mkdir()
    shutil.copy(DEMO, tmp_path / "[bold]x[" / "b] :smile:.wav")  # the path reads "[bold]x[/b] :smile:.wav"
    r = run_cli("translate", "[bold]x[/b] :smile:.wav", "--to", "spa", "--server", server, "--out", "o", cwd=tmp_path)
    assert r.code == 0, r.text
    assert "[bold]x[/b] :smile:.wav" in r.out
    assert "wrote o/b] :smile:.spa.wav" in r.out and "😄" not in r.text
    assert (tmp_path / "o" / "b] :smile:.json").is_file()

    mine = fails(
        run_cli("translate", DEMO, "--to", "[/x]", "--server", server, "--out", tmp_path / "y"), EXIT_USAGE, "'[/x]'"
    )
    assert mine.startswith("error: unknown target language")
    theirs = fails(
        run_cli(*("translate", DEMO, "--to", "[/x]", "--no-lang-check", "--server", server, "--out", tmp_path / "y")),
        EXIT_USAGE,
        "the server refused the request: unknown target language '[/x]': use a code from ListLanguages",
    )
    assert theirs
    emoji = fails(
        run_cli("translate", DEMO, "--to", ":smile:", "--no-lang-check", "--server", server, "--out", tmp_path / "y"),
        EXIT_USAGE,
        "':smile:'",
    )
    assert "😄" not in emoji


def test_voice_rate_and_vad_flags(server: str, shared_audio: Path, tmp_path: Path) -> None:
    src = shared_audio / "jfk.flac"  # four phrases, two over 2 s
    common = ("--to", "spa", "--via", "translate", "--server", server)
    default = run_cli("translate", src, *common, "--no-speech", "--out", tmp_path / "a")
    assert default.code == 0, default.text
    r = run_cli(
        *("translate", src, *common, "--out", tmp_path / "b", "--speech-rate", "8000", "--voice", "1"),
        *("--vad-max-segment-ms", "2000", "--vad-min-silence-ms", "50", "--vad-threshold", "0.4"),
        *("--vad-speech-pad-ms", "20", "--vad-min-speech-ms", "200"),
    )
    assert r.code == 0, r.text
    doc = load_json(tmp_path / "b" / "jfk.json")
    assert len(doc["segments"]) > len(load_json(tmp_path / "a" / "jfk.json")["segments"])
    assert max(e - s for s, e in spans(doc)) <= 2000
    assert {t["speech"]["sample_rate_hz"] for s in doc["segments"] for t in s["translations"]} == {8000}
    info = sf.info(tmp_path / "b" / "jfk.spa.wav")
    assert info.samplerate == 8000 and info.frames == round(sf.info(src).duration * 8000)

    fails(run_cli("translate", src, *common, "--voice", "99", "--out", tmp_path / "c"), EXIT_USAGE, "--speaker-id 99")
    fails(
        run_cli("translate", src, *common, "--vad-threshold", "2", "--out", tmp_path / "c"),
        EXIT_USAGE,
        "the server refused the request: invalid VAD options",
    )
    fails(run_cli("translate", src, *common, "--speech-rate", "100", "--out", tmp_path / "c"), EXIT_USAGE, "8000")
    assert not (tmp_path / "c").exists()


def test_translate_mistakes(server: str, tmp_path: Path) -> None:
    out = ("--server", server, "--out", tmp_path / "o")
    fails(run_cli("translate", tmp_path / "missing.wav", "--to", "spa", *out), EXIT_USAGE, "missing.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    fails(run_cli("translate", tmp_path / "empty.wav", "--to", "spa", *out), EXIT_USAGE, "empty")
    (tmp_path / "notes.wav").write_text("not audio\n")
    fails(run_cli("translate", tmp_path / "notes.wav", "--to", "spa", *out), EXIT_USAGE, "cannot decode")
    fails(run_cli("translate", DEMO, "--to", "spa", "--format", "pdf", *out), EXIT_USAGE, "--format 'pdf'")
    fails(run_cli("translate", DEMO, "--to", "spa", "--raw-rate", "16000", "--raw-encoding", "mp3", *out), 2)
    fails(run_cli("translate", DEMO, "--to", "spa", "--raw-rate", "1000", *out), EXIT_USAGE, "--raw-rate 1000")
    fails(run_cli("translate", DEMO, "--to", "spa", "--tls-cert", DEMO, *out), EXIT_USAGE, "--tls-key")
    fails(run_cli("translate", DEMO, "--to", "spa", "--token", "a", "--token-file", DEMO, *out), EXIT_USAGE)
    # a token in the clear to another machine: refused unless asked for by name
    remote = ("translate", DEMO, "--to", "spa", "--server", "10.255.255.1:50051", "--token", "t0k3n")
    line = fails(run_cli(*remote, "--out", tmp_path / "o"), EXIT_USAGE, "in the clear", "--allow-plaintext-token")
    assert "t0k3n" not in line
    assert not (tmp_path / "o").exists()


def test_asr_only_and_language_detection_flags(server: str, tmp_path: Path) -> None:
    out = tmp_path / "asr"
    args = ("--server", server, "--out", out)
    r = run_cli("translate", DEMO, "--asr-only", "--from", "en", "--format", "json,srt", *args)
    assert r.code == 0, r.text
    doc = load_json(out / "demo_eng.json")
    assert doc["target_languages"] == [] and doc["source_language"] == "eng" and doc["segments"]
    for seg in doc["segments"]:
        assert seg["translations"] == [] and seg["transcript_language"] == "eng" and seg["transcript"] is not None
        assert seg["timing"]["speech_ms"] == 0
    cues = (out / "demo_eng.transcript.srt").read_text().count(" --> ")
    assert cues == sum(bool(seg["transcript"].strip()) for seg in doc["segments"])  # (random weights: maybe none)
    assert not list(out.glob("*.wav"))  # no speech, no dub track
    fails(run_cli("translate", DEMO, "--asr-only", "--from", "en", "--to", "spa", *args), EXIT_USAGE, "drop --to")
    fails(run_cli("translate", DEMO, "--asr-only", *args), EXIT_USAGE, "--from en, or --from auto")
    fails(run_cli("translate", DEMO, *args), EXIT_USAGE, "--to is empty", "--asr-only")
    # this server has no language identifier: --from auto says what the server needs
    fails(run_cli("translate", DEMO, "--to", "spa", "--from", "auto:en,es", *args), EXIT_USAGE, "download-lid-model")
    # a term list: a boost pulls the text towards its phrase; a bad line is named
    terms = tmp_path / "terms.txt"
    terms.write_text("# product names\nboost 10: kwq\nkeep: Acme Cloud\n")
    r = run_cli("translate", DEMO, "--to", "spa", "--from", "en", "--terms", terms, "--no-speech", *args, "--overwrite")
    assert r.code == 0, r.text
    boosted = load_json(out / "demo_eng.json")
    assert any("kw" in t["text"] for seg in boosted["segments"] for t in seg["translations"]), boosted
    terms.write_text("keep: Acme\nboost x: Acme Cloud\n")
    fails(run_cli("translate", DEMO, "--to", "spa", "--terms", terms, *args), EXIT_USAGE, "terms.txt:2", "not a number")


def test_cannot_connect(tmp_path: Path) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    fails(run_cli("languages", "--server", nowhere, process=True), EXIT_CONNECT, "cannot connect to " + nowhere)
    fails(run_cli("translate", DEMO, "--to", "es", "--server", nowhere, "--out", tmp_path), EXIT_CONNECT)
    fails(run_cli("stream", DEMO, "--to", "es", "--server", nowhere), EXIT_CONNECT)


def test_languages(server: str) -> None:
    r = run_cli("languages", "--server", server)
    assert r.code == 0 and "spa" in r.out and "Spanish" in r.out
    doc = json.loads(run_cli("languages", "--json", "--server", server).out)
    assert {"code": "cmn", "name": "Mandarin Chinese", "speech_input": True, "text_output": True} | {
        "speech_output": False
    } in doc["languages"]
    r = run_cli("languages", env={"TRANSLATE_SVC_ADDRESS": server})
    assert r.code == 0 and "spa" in r.out


def test_tls_and_tokens(secure_server: Secure, tmp_path: Path) -> None:
    s = secure_server
    tls = ("--server", s.address, "--tls-ca", s.ca)
    r = run_cli("languages", *tls, "--token", TOKEN_ALL)
    assert r.code == 0 and "spa" in r.out, r.text
    (tmp_path / "tok").write_text(TOKEN_ALL + "\n")
    env = {"TRANSLATE_SVC_TLS_CA": str(s.ca), "TRANSLATE_SVC_TOKEN_FILE": str(tmp_path / "tok")}
    r = run_cli("translate", DEMO, "--to", "es", "--server", s.address, "--out", tmp_path / "a", env=env)
    assert r.code == 0, r.text
    assert (tmp_path / "a" / "demo_eng.spa.wav").is_file()

    fails(run_cli("languages", *tls), EXIT_AUTH, "UNAUTHENTICATED", "requires a token")
    fails(run_cli("languages", *tls, "--token", "wrong-token-123"), EXIT_AUTH, "UNAUTHENTICATED")
    out = ("--out", tmp_path / "b")
    fails(run_cli("stream", DEMO, "--to", "es", *tls, "--token", TOKEN_LANGUAGES), EXIT_AUTH, "PERMISSION_DENIED")
    # a token that may translate but not list languages: the codes go unchecked, and it works
    r = run_cli("translate", DEMO, "--to", "spa", *tls, "--token", TOKEN_TRANSLATE, *out)
    assert r.code == 0, r.text
    assert "may not list languages" in r.err
    fails(run_cli("languages", "--server", s.address, "--token", TOKEN_ALL), EXIT_CONNECT)  # plaintext to TLS
    other = trustme.CA()
    (tmp_path / "other.pem").write_bytes(other.cert_pem.bytes())
    fails(
        run_cli("languages", "--server", s.address, "--tls-ca", tmp_path / "other.pem", "--token", TOKEN_ALL),
        EXIT_CONNECT,
    )
    assert TOKEN_ALL not in r.text


# -- stream -------------------------------------------------------------------------------------------


def test_stream_a_file(server: str, shared_audio: Path, tmp_path: Path) -> None:
    src = shared_audio / "jfk.flac"
    r = run_cli(
        *("stream", src, "--from", "en", "--to", "es,fr", "--jsonl", tmp_path / "jfk.jsonl"),
        *("--out", tmp_path, "--server", server, "--interim-ms", "500"),
    )
    assert r.code == 0, r.text
    assert "nan" not in r.text and "latency over 4 segments: p50" in r.out
    lines = read_jsonl(tmp_path / "jfk.jsonl")
    assert lines[0]["type"] == "started" and lines[0]["target_languages"] == ["spa", "fra"]
    segs = [x for x in lines if x["type"] == "segment"]
    assert [s["segment_id"] for s in segs] == list(range(len(segs))) and len(segs) == 4
    for s in segs:
        assert isinstance(s["start_ms"], int) and s["status"]["code"] == "OK" and s["transcript"] is not None
        assert [t["target_language"] for t in s["translations"]] == ["spa", "fra"]
        assert s["latency_ms"] >= 0
    end = next(x for x in lines if x["type"] == "end")
    assert end["segments_total"] == 4 and end["audio_received_ms"] == 11000
    check_summary(lines, interrupted=False)
    for target in ("spa", "fra"):
        info = sf.info(tmp_path / f"jfk.{target}.wav")
        assert info.frames == 11000 * 16  # the source's length
    again = run_cli("stream", src, "--to", "es", "--jsonl", tmp_path / "jfk.jsonl", "--server", server)
    fails(again, EXIT_USAGE, "jfk.jsonl already exists", "--overwrite")


def test_stream_raw_pcm_from_stdin(server: str, shared_audio: Path, tmp_path: Path) -> None:
    data, rate = pcm16(shared_audio / "silero_test.wav")
    r = run_cli("stream", "-", "--raw-rate", str(rate), "--to", "spa", "--jsonl", "-", "--server", server, stdin=data)
    assert r.code == 0, r.text
    lines = [json.loads(line) for line in r.out.splitlines()]  # stdout holds JSON lines only
    segs = [x for x in lines if x["type"] == "segment"]
    assert len(segs) > 10 and "ended:" in r.err
    check_summary(lines, interrupted=False)
    unary = run_cli(
        *("translate", shared_audio / "silero_test.wav", "--to", "spa", "--no-speech", "--via", "translate"),
        *("--server", server, "--out", tmp_path),
    )
    assert spans({"segments": segs}) == spans(load_json(tmp_path / "silero_test.json")), unary.text

    silence = np.zeros(16000 * 2, np.int16).tobytes()
    quiet = run_cli(
        "stream", "-", "--raw-rate", "16000", "--to", "spa", "--jsonl", "-", "--server", server, stdin=silence
    )
    assert quiet.code == 0, quiet.text
    assert "no segments" in quiet.err and "nan" not in quiet.text
    check_summary([json.loads(line) for line in quiet.out.splitlines()], interrupted=False)


def test_stream_mistakes(server: str, tmp_path: Path) -> None:
    s = ("--to", "spa", "--server", server)
    (tmp_path / "empty.wav").write_bytes(b"")
    fails(run_cli("stream", tmp_path / "empty.wav", *s), EXIT_USAGE, "empty.wav is empty")
    (tmp_path / "text.wav").write_text("hello\n")
    fails(run_cli("stream", tmp_path / "text.wav", *s), EXIT_USAGE, "cannot decode", "text.wav")
    fails(run_cli("stream", "-", "--raw-rate", "16000", *s, stdin=b""), EXIT_USAGE, "no audio")
    fails(run_cli("stream", "-", *s, stdin=b"\0\0"), EXIT_USAGE, "--raw-rate")
    fails(run_cli("stream", tmp_path / "nope.flac", *s), EXIT_USAGE, "nope.flac")
    fails(run_cli("stream", DEMO, "--to", "es", "--chunk-ms", "0", "--server", server), EXIT_USAGE, "--chunk-ms")


def wait_for(predicate: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("timed out")
        time.sleep(0.1)


def segment_lines(path: Path) -> int:
    if not path.exists():
        return 0
    return sum('"type": "segment"' in line for line in path.read_text().splitlines())


def test_ctrl_c_keeps_what_was_done(server: str, shared_audio: Path, tmp_path: Path) -> None:
    jsonl = tmp_path / "live.jsonl"
    p = subprocess.Popen(
        default_signals(  # SIGINT may be ignored here (a background job): not in the CLI
            [
                *CLI,
                *("stream", shared_audio / "silero_test.wav", "--to", "spa", "--realtime"),
                *("--jsonl", jsonl, "--out", tmp_path, "--server", server),
            ]
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    wait_for(lambda: segment_lines(jsonl) >= 1)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=20)
    assert p.returncode == EXIT_INTERRUPTED, (out + err).decode()
    assert b"Traceback" not in out + err and b"interrupted" in err
    lines = read_jsonl(jsonl)
    summary = check_summary(lines, interrupted=True)
    assert 1 <= summary["segments"] < 19
    dub = sf.info(tmp_path / "silero_test.spa.wav")  # the speech so far, over the audio sent
    assert 0 < dub.frames < 60 * 16000

    # stdin that stays open (a live pipe): Ctrl-C still ends the command at once
    data, _ = pcm16(shared_audio / "silero_test.wav")
    live = tmp_path / "pipe.jsonl"
    q = subprocess.Popen(
        default_signals(
            [*CLI, "stream", "-", "--raw-rate", "16000", "--to", "spa", "--jsonl", live, "--server", server]
        ),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert q.stdin is not None
    q.stdin.write(data[: 16000 * 2 * 5])  # 5 s, and the pipe stays open
    q.stdin.flush()
    wait_for(lambda: segment_lines(live) >= 1)
    q.send_signal(signal.SIGINT)
    out, err = q.communicate(timeout=20)
    assert q.returncode == EXIT_INTERRUPTED, (out + err).decode()
    assert b"Traceback" not in out + err
    check_summary(read_jsonl(live), interrupted=True)


# -- serve's start-up mistakes ---------------------------------------------------------------------------


def test_serve_on_a_busy_port_says_so(test_model_dir: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        # the made-up stable translator (no torch): the port is what is tested
        args = ("--model", test_model_dir, "--host", "127.0.0.1", "--port", str(port), "--test-translator", "stable")
        r = run_cli("serve", *args, process=True)
    assert r.code == EXIT_USAGE, r.text
    assert "cannot start:" in r.out and "in use" in r.out


def test_serve_with_cuda_where_there_is_none(test_model_dir: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    r = run_cli("serve", "--model", test_model_dir, "--port", "0", "--device", "cuda", process=True)
    assert r.code == EXIT_USAGE, r.text
    assert "cannot start:" in r.out and "CUDA is not available" in r.out


# -- the pure parts -------------------------------------------------------------------------------------


def _model_languages() -> list[Language]:
    from translate_svc.model.stages.languages import _NAMES

    return [Language(code, name, True, True, True) for code, name in _NAMES.items()]


@pytest.mark.parametrize(
    ("given", "code"),
    [
        ("es", "spa"),
        ("es-ES", "spa"),
        ("ES", "spa"),
        ("spa", "spa"),
        ("Spanish", "spa"),
        ("pt-BR", "por"),
        ("zh", "cmn"),
        ("zh-Hans", "cmn"),
        ("zh-Hant", "cmn_Hant"),
        ("zh-TW", "cmn_Hant"),
        ("cmn-hant", "cmn_Hant"),
        ("yue", "yue"),
        ("ar", "arb"),
        ("fa", "pes"),
        ("sw", "swh"),
        ("no", "nob"),
        ("nn", "nno"),
        ("ms", "zsm"),
        ("tl", "tgl"),
        ("iw", "heb"),
        ("uz", "uzn"),
        ("en_US", "eng"),
    ],
)
def test_bcp47_to_model_codes(given: str, code: str) -> None:
    assert resolve_language(given, _model_languages()).code == code


def test_unknown_languages_say_what_was_meant() -> None:
    langs = _model_languages()
    with pytest.raises(UnknownLanguage, match=r"did you mean spa \(Spanish\)"):
        resolve_language("spanich", langs)
    with pytest.raises(UnknownLanguage, match=r"neither a model code"):
        resolve_language("[/x]", langs)
    assert guess_model_code("es-MX") == "spa" and guess_model_code("zh-TW") == "cmn_Hant"
    assert guess_model_code("[/x]") == "[/x]" and guess_model_code("xyz") == "xyz"


def test_output_bases() -> None:
    assert output_bases([Path("a/x.wav"), Path("b/x.wav"), Path("y.wav")]) == ["a_x", "b_x", "y"]
    assert output_bases([Path("d/x.wav"), Path("d/x.flac")]) == ["x.wav", "x.flac"]
    assert output_bases([Path("p/a/x.wav"), Path("q/a/x.wav")]) == ["p_a_x", "q_a_x"]


def test_dub_track_overlaps_and_cuts() -> None:
    one = np.full(1000, 0.25, np.float32)
    track, cut = dub_track(200, 10000, [(0, one), (50, one), (120, one)])  # 2000 samples
    assert len(track) == 2000 and cut == 200  # the last piece ends 200 samples past the source
    quarter, half = round(0.25 * 32768), round(0.5 * 32768)
    assert track[0] == quarter and track[600] == half  # pieces 0 and 1 overlap and mix
    assert track[1100] == quarter and track[1300] == half  # piece 2 starts at its offset, not later
    assert track[1999] == quarter
    extended, cut = dub_track(200, 10000, [(150, one)], extend=True)
    assert len(extended) == 2500 and cut == 0


def test_latency_summary_and_vtt_escaping() -> None:
    assert latency_summary([]) == "no segments: no latency to report"
    assert latency_summary([float("nan")]) == "no segments: no latency to report"
    values = sorted([10.0, 20.0, 30.0])
    assert nearest_rank(values, 0.95) == 30.0 <= max(values)
    assert "p95 30 ms, max 30 ms" in latency_summary(values)
    doc = vtt_document([(0, 1000, "a <b>x</b> & --> y\n\nz")])
    caption = webvtt.from_string(doc).captions[0]
    assert caption.text == "a &lt;b&gt;x&lt;/b&gt; &amp; --&gt; y\nz"


def test_text_prints_translations_and_writes_speech(server: str, tmp_path: Path) -> None:
    out = tmp_path / "speech"
    r = run_cli(
        "text", "Hello there.", "Second text.", "--from", "en", "--to", "es,fr", "--out", out, "--server", server
    )
    assert r.code == 0, r.text
    lines = [line for line in r.out.splitlines() if line.startswith("[")]
    assert [line.split(":")[0] for line in lines] == ["[1] spa", "[1] fra", "[2] spa", "[2] fra"]
    assert sorted(p.name for p in out.iterdir()) == sorted(f"text{k}.{t}.wav" for k in (1, 2) for t in ("spa", "fra"))
    for wav in out.iterdir():
        info = sf.info(wav)
        assert info.samplerate == 16000 and info.frames > 0
    docs = [
        json.loads(line)
        for line in run_cli(
            "text", "Hello.", "--from", "eng", "--to", "spa", "--no-speech", "--json", "--server", server
        ).out.splitlines()
        if line.startswith("{")
    ]
    assert docs == [
        {"text": 1, "target_language": "spa", "text_out": docs[0]["text_out"], "speech": None, "status": "OK"}
    ]
    # the same outputs again: refused before calling, unless --overwrite
    again = ("text", "Hello there.", "Second text.", "--from", "en", "--to", "es,fr", "--out", out, "--server", server)
    fails(run_cli(*again), EXIT_USAGE, "already exists", "--overwrite")
    assert run_cli(*again, "--overwrite").code == 0


def test_text_takes_a_glossary_file(server: str, tmp_path: Path) -> None:
    """--glossary's entries reach the server: the text that says the phrase comes back with the
    translation (as tests/service/test_glossary_paths.py shows generate does with the entry); a
    bad line is named before the texts are sent."""
    glossary = tmp_path / "glossary.tsv"
    glossary.write_text("# names\nreport\tnube acme\n")
    base = ("text", "Please send the report to me.", "--from", "en", "--no-speech", "--json", "--server", server)
    r = run_cli(*base, "--to", "es", "--glossary", glossary)
    assert r.code == 0, r.text
    (doc,) = [json.loads(line) for line in r.out.splitlines() if line.startswith("{")]
    assert "nube acme" in doc["text_out"], doc
    fails(run_cli(*base, "--to", "es,fr", "--glossary", glossary), EXIT_USAGE, "glossary.tsv:2", "third field")


def test_text_mistakes(server: str, tmp_path: Path) -> None:
    s = ("--server", server)
    fails(run_cli("text", "Hello.", "--to", "spa", *s), EXIT_USAGE, "--from is required")
    fails(run_cli("text", "Hello.", "--from", "auto", "--to", "spa", *s), EXIT_USAGE, "--from is required")
    fails(run_cli("text", "Hello.", "--from", "en", *s), EXIT_USAGE, "--to is empty")
    fails(run_cli("text", "Hello.", "--from", "en", "--to", "xx-bogus", *s), EXIT_USAGE, "xx-bogus")
    fails(run_cli("text", "  ", "--from", "en", "--to", "es", *s), EXIT_USAGE, "texts[0] is blank")
    fails(
        run_cli("text", "Hi.", "--from", "en", "--to", "es", "--no-speech", "--out", tmp_path, *s), EXIT_USAGE, "--out"
    )
