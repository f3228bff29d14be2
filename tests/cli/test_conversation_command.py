"""``--conversation`` on the client commands (``translate``, ``stream``), run as the installed
script in a subprocess against a real server (``translate-svc serve`` with the test checkpoint and
the test identifier biased so that Spanish wins wherever it is a candidate).

A conversation takes the place of ``--to`` and ``--from``: each segment is identified among its
languages and translated into the others; each result is shown with its source language (the
table's ``from`` column, the stream's line, the JSON's ``transcript_language``), and each language
gets its dub track. Asserted: the mechanics the biased identifier sets, never the words of random
weights; ``--conversation`` beside ``--to`` or ``--from`` is refused naming both, before any call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile as sf

from tests.support.cli import EXIT_USAGE, fails, read_jsonl, run_cli
from tests.support.server_process import ServerProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow(40)]


@pytest.fixture(scope="module")
def server(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from translate_svc.app import build_lid_test_checkpoint

    lid = build_lid_test_checkpoint(tmp_path_factory.mktemp("lid") / "spa", bias="spa")
    srv = ServerProcess(
        ["--model", str(test_model_dir), "--host", "127.0.0.1", "--port", "0"],
        env={"TRANSLATE_SVC_MODEL__LID_PATH": str(lid)},
    )
    try:
        yield srv.address
    finally:
        srv.stop()


def test_translate_shows_each_segments_source_and_writes_each_languages_track(
    server: str, shared_audio: Path, tmp_path: Path
) -> None:
    r = run_cli(
        *("translate", shared_audio / "jfk.flac", "--conversation", "en,es", "--format", "json,vtt"),
        *("--out", tmp_path, "--server", server),
        process=True,
    )
    assert r.code == 0, r.text
    doc = json.loads((tmp_path / "jfk.json").read_text())
    assert doc["conversation"] == ["eng", "spa"] and doc["target_languages"] == []
    assert len(doc["segments"]) == 4
    for seg in doc["segments"]:  # the biased identifier's choice: Spanish, into English
        assert seg["transcript_language"] == "spa" and seg["transcript"] is not None, seg
        assert [t["target_language"] for t in seg["translations"]] == ["eng"]
    header = next(line for line in r.out.splitlines() if "span (ms)" in line)
    assert "from" in header
    rows = [line for line in r.out.splitlines() if line.startswith("│ ") and "-" in line.split("│")[2]]
    assert len(rows) == 4 and all(line.split("│")[3].strip() == "spa" for line in rows), r.out
    for lang in ("eng", "spa"):  # Spanish's track is silent: nothing was translated into it
        assert sf.info(tmp_path / f"jfk.{lang}.wav").frames == 11000 * 16
    assert (tmp_path / "jfk.eng.vtt").read_text().count("-->") == 4


def test_stream_prints_each_segments_source(server: str, shared_audio: Path, tmp_path: Path) -> None:
    r = run_cli(
        *("stream", shared_audio / "jfk.flac", "--conversation", "eng,spa", "--jsonl", tmp_path / "jfk.jsonl"),
        *("--server", server),
        process=True,
    )
    assert r.code == 0, r.text
    lines = read_jsonl(tmp_path / "jfk.jsonl")
    assert lines[0]["type"] == "started" and lines[0]["conversation"] == ["eng", "spa"]
    assert lines[0]["target_languages"] == []
    segs = [x for x in lines if x["type"] == "segment"]
    assert len(segs) == 4
    for seg in segs:
        assert seg["transcript_language"] == "spa" and set(seg["language_scores"]) == {"eng", "spa"}
        assert [t["target_language"] for t in seg["translations"]] == ["eng"]
    said = [line for line in r.out.splitlines() if re.search(r" segment \d+ \[", line)]
    assert len(said) == 4 and all("| spa: " in line and " -> eng: " in line for line in said), r.out


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (("--to", "fra"), "--conversation and --to are both set: drop --to"),
        (("--from", "en"), "--conversation and --from are both set: drop --from"),
        (("--to", "fra", "--from", "auto"), "drop --to and --from"),
    ],
)
def test_a_conversation_beside_targets_is_refused_naming_both(
    server: str, shared_audio: Path, tmp_path: Path, flags: tuple[str, ...], words: str
) -> None:
    r = run_cli(
        *("translate", shared_audio / "jfk.flac", "--conversation", "eng,spa", *flags),
        *("--out", tmp_path, "--server", server),
        process=True,
    )
    fails(r, EXIT_USAGE, words)
    assert not list(tmp_path.iterdir())


def test_the_servers_refusal_of_a_conversation_is_shown(server: str, shared_audio: Path, tmp_path: Path) -> None:
    r = run_cli(
        *("stream", shared_audio / "jfk.flac", "--conversation", "eng", "--server", server),
        process=True,
    )
    fails(r, EXIT_USAGE, "conversation.languages has 1 language(s)")
