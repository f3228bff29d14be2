"""``translate-svc serve --test-translator stable``: a real server process on the made-up stable
translator (model/testing/stable.py) answers a Translate call, and it is refused next to a model directory
that is not the test checkpoint."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from tests.support.cli import EXIT_USAGE, run_cli
from tests.support.server_process import ServerProcess
from translate_svc import app
from translate_svc.client import TranslateClient
from translate_svc.model.stages.loading import TEST_MODEL_MARKER
from translate_svc.settings import ModelSettings

pytestmark = [pytest.mark.integration, pytest.mark.slow(15)]

#: the stable translator's text: whole words, then the last word that names the exact length
STABLE_TEXT = re.compile(r"^(w\d+ )*w\d+~\d+$")


def not_the_test_checkpoint(test_model_dir: Path, tmp_path: Path) -> Path:
    """A complete model directory without the test checkpoint's marker: what real weights look like
    to the server (the weights file linked, not copied)."""
    out = tmp_path / "real-looking"
    out.mkdir()
    for f in test_model_dir.iterdir():
        if f.name == TEST_MODEL_MARKER:
            continue
        if f.suffix == ".safetensors":
            os.symlink(f.resolve(), out / f.name)
        else:
            shutil.copy(f, out / f.name)
    return out


def test_serve_with_the_stable_translator_answers_translate(test_model_dir: Path, shared_audio: Path) -> None:
    srv = ServerProcess(
        ["--model", str(test_model_dir), "--host", "127.0.0.1", "--port", "0", "--test-translator", "stable"]
    )
    try:
        with TranslateClient(srv.address) as c:
            langs = c.languages()
            assert langs.model.is_test_model and "made-up" in langs.model.name
            result = c.translate(shared_audio / "jfk.flac", targets="spa", source="eng")
        assert result.model.is_test_model and result.segments
        for seg in result.segments:
            assert seg.ok, seg.error
            text = seg.translation("spa").text
            assert STABLE_TEXT.match(text), text
            assert seg.transcript == text  # the transcript is the same made-up words
    finally:
        srv.stop()


def test_serve_refuses_the_stable_translator_next_to_real_weights(test_model_dir: Path, tmp_path: Path) -> None:
    real = not_the_test_checkpoint(test_model_dir, tmp_path)
    r = run_cli("serve", "--model", real, "--port", "0", "--test-translator", "stable", process=True)
    assert r.code == EXIT_USAGE, r.text
    assert "cannot start:" in r.out and "--test-translator stable" in r.out and TEST_MODEL_MARKER in r.out, r.out
    bad = run_cli("serve", "--model", test_model_dir, "--port", "0", "--test-translator", "fluent", process=True)
    assert bad.code == EXIT_USAGE and "invalid settings" in bad.out, bad.text


def test_the_runner_factory_refuses_it_too(test_model_dir: Path, tmp_path: Path) -> None:
    """Every entry point (``build``, the engine process of ``--workers``) loads through the factory."""
    real = not_the_test_checkpoint(test_model_dir, tmp_path)
    with pytest.raises(ValueError, match="test-translator"):
        app.seamless_runner_factory(ModelSettings(path=real, test_translator="stable"))()
    runner = app.seamless_runner_factory(ModelSettings(path=test_model_dir, test_translator="stable"))()
    assert runner.card.info.is_test_model and app.test_translator_problem(ModelSettings(path=real)) is None
