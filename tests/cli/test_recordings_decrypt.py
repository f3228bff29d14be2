"""``translate-svc recordings decrypt`` (issue 61): a recording's files decrypted from the disk with
the key file, each checked against its manifest's SHA-256; an altered file fails the command."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from translate_svc.cli import app
from translate_svc.recordings.service import Recordings
from translate_svc.session.tenants.recording import RecordMode, RecordPolicy
from translate_svc.settings import RecordingsSettings
from translate_svc.types import AudioEncoding, AudioFormat, SegmentResult, Transcript, Translation, TranslationTask

pytestmark = [pytest.mark.unit, pytest.mark.asyncio(loop_scope="session")]

RID = "d" * 32


async def recorded(tmp: Path) -> tuple[Path, Path]:
    """A finished audio recording of tenant acme: (its directory, the key file)."""
    keys = tmp / "keys"
    keys.write_text(f"acme k1 {base64.b64encode(os.urandom(32)).decode()}\n")
    done = asyncio.Event()
    recs = Recordings(RecordingsSettings(dir=tmp / "rec", key_file=keys), on_ready=lambda _: done.set())
    await recs.start()
    r = recs.open(
        "acme",
        RecordPolicy(RecordMode.AUDIO),
        RID,
        AudioFormat(AudioEncoding.LINEAR16, 16000),
        TranslationTask("eng", ("spa",)),
    )
    assert r is not None
    for i in range(3):
        r.audio(np.zeros(16000, np.float32))
        r.result(
            SegmentResult(
                i,
                i * 1000,
                i * 1000 + 900,
                Transcript("eng", f"w{i}"),
                (Translation("spa", f"p{i}", np.zeros(8000, np.float32)),),
            )
        )
    r.close()
    await asyncio.wait_for(done.wait(), 10)
    await recs.stop()
    return tmp / "rec" / "acme" / RID, keys


async def test_decrypt_writes_every_file_checked_against_its_manifest(tmp_path: Path) -> None:
    where, keys = await recorded(tmp_path)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["recordings", "decrypt", str(where), "--key-file", str(keys), "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest: dict[str, Any] = json.loads((where / "manifest.json").read_text())
    assert sorted(p.name for p in out.iterdir()) == sorted(f["name"] for f in manifest["files"])
    for f in manifest["files"]:
        assert hashlib.sha256((out / f["name"]).read_bytes()).hexdigest() == f["sha256"]
    assert [
        json.loads(line)["translations"][0]["text"] for line in (out / "segments.jsonl").read_text().splitlines()
    ] == ["p0", "p1", "p2"]


async def test_an_altered_file_fails_the_command(tmp_path: Path) -> None:
    where, keys = await recorded(tmp_path)
    sealed = where / "segments.jsonl.sealed"
    blob = bytearray(sealed.read_bytes())
    blob[-5] ^= 1
    sealed.write_bytes(bytes(blob))
    result = CliRunner().invoke(
        app, ["recordings", "decrypt", str(where), "--key-file", str(keys), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 1 and "segments.jsonl" in result.output and "altered" in result.output
