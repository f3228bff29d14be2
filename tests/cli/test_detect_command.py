"""``translate-svc detect FILE``, run as the installed script in a subprocess against a real server
(``translate-svc serve`` on the made-up stable translator: detection runs in the server's sandbox
processes whatever the model): a file marked by the product's watermarker reads as marked, the
same speech unmarked does not, and an undecodable or missing file exits 2 with one line saying why."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.support.cli import EXIT_USAGE, fails, run_cli
from tests.support.credentials import make_keys
from tests.support.server_process import ServerProcess
from translate_svc.marking.credentials import Made, Signer
from translate_svc.marking.watermarker import shared

pytestmark = [pytest.mark.integration, pytest.mark.slow(20)]

#: a detection's first call starts the server's sandbox process (torch and the network loaded at a
#: lower priority than the server's threads): minutes on a machine busy with other work
WAIT_S = 300.0


@pytest.fixture(scope="module")
def server(test_model_dir: Path) -> Iterator[str]:
    srv = ServerProcess(
        ["--model", str(test_model_dir), "--host", "127.0.0.1", "--port", "0", "--test-translator", "stable"]
    )
    try:
        yield srv.address
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def marked_file(shared_audio: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    samples, rate = sf.read(shared_audio / "jfk.flac", dtype="float32")
    mono = samples.mean(axis=1).astype(np.float32) if samples.ndim == 2 else samples
    path = tmp_path_factory.mktemp("marked") / "jfk-marked.flac"
    sf.write(path, shared().mark(mono, rate), rate)
    return path


def test_a_marked_file_reads_as_marked(server: str, marked_file: Path) -> None:
    r = run_cli("detect", marked_file, "--json", "--server", server, process=True, timeout=WAIT_S)
    assert r.code == 0, r.text
    doc = json.loads(r.out.strip().splitlines()[-1])
    assert doc["marked"] is True and doc["conclusive"] is True and doc["probability"] > 0.9, doc
    assert doc["watermarker"] == shared().name and doc["spans_ms"][0][0] == 0 and doc["duration_ms"] == 11000, doc
    text = run_cli("detect", marked_file, "--server", server, process=True, timeout=WAIT_S)
    assert text.code == 0 and f"{marked_file}: marked, probability" in text.out, text.text


def test_the_same_speech_unmarked_reads_as_not_marked(server: str, shared_audio: Path) -> None:
    r = run_cli("detect", shared_audio / "jfk.flac", "--json", "--server", server, process=True, timeout=WAIT_S)
    assert r.code == 0, r.text
    doc = json.loads(r.out.strip().splitlines()[-1])
    assert doc["marked"] is False and doc["probability"] < 0.5 and doc["spans_ms"] == [], doc
    assert doc["content_credentials"] is None, doc


def test_a_signed_files_content_credentials_are_printed(server: str, marked_file: Path, tmp_path: Path) -> None:
    keys = make_keys()
    signed = tmp_path / "signed.flac"
    made = Made(signed.name, "facebook/seamless-m4t-v2-large")
    signed.write_bytes(
        Signer(keys.chain_pem, keys.key_pem, generator="t").sign_bytes(marked_file.read_bytes(), "audio/flac", made)
    )
    r = run_cli("detect", signed, "--json", "--server", server, process=True, timeout=WAIT_S)
    assert r.code == 0, r.text
    c = json.loads(r.out.strip().splitlines()[-1])["content_credentials"]
    assert c["state"] == "Valid" and c["generated"] is True and c["model"] == made.model, c
    assert c["failures"] == ["signingCredential.untrusted"], c  # the server was given no trust anchors
    text = run_cli("detect", signed, "--server", server, process=True, timeout=WAIT_S)
    said = (
        "content credentials (C2PA): Valid, signed by translate-svc test signer (translate_svc tests), "
        "made by a trained model"
    )
    assert text.code == 0 and said in text.out, text.text


def test_an_undecodable_or_missing_file_exits_2_saying_why(server: str, tmp_path: Path) -> None:
    junk = tmp_path / "notes.wav"
    junk.write_text("these are not samples\n" * 20)
    fails(
        run_cli("detect", junk, "--server", server, process=True, timeout=WAIT_S),
        EXIT_USAGE,
        "the audio is not a WAV, FLAC, OGG, MP3 or WebM file",
    )
    fails(
        run_cli("detect", tmp_path / "absent.wav", "--server", server, process=True, timeout=WAIT_S),
        EXIT_USAGE,
        "is not a file",
    )
