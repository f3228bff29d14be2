"""``serve``'s flags are settings like the environment's, validated together (issue 73): an operator
who follows docs/deploy.md, recordings in the environment (``TRANSLATE_SVC_RECORDINGS__DIR`` and
its key file) and the tokens by ``--tokens-file``, gets a server; a rule between settings still
refuses what neither gives.

Before: the environment's settings were validated alone, then the flags applied: "recordings.dir
needs auth.tokens_file", and no server.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import EXIT_USAGE, run_cli
from tests.support.recordings import setup
from tests.support.server_process import ServerProcess

pytestmark = pytest.mark.integration


def test_serve_takes_recordings_from_the_env_and_the_tokens_by_flag(test_model_dir: Path, tmp_path: Path) -> None:
    s = setup(tmp_path)
    env = {"TRANSLATE_SVC_RECORDINGS__DIR": str(s.directory), "TRANSLATE_SVC_RECORDINGS__KEY_FILE": str(s.keys.path)}
    server = ServerProcess(
        ["--model", str(test_model_dir), "--host", "127.0.0.1", "--port", "0", "--tokens-file", str(s.tokens)], env=env
    )
    try:
        assert server.info.port > 0
    finally:
        server.stop()


def test_a_rule_between_settings_still_refuses_what_neither_gives(test_model_dir: Path, tmp_path: Path) -> None:
    s = setup(tmp_path)
    env = {"TRANSLATE_SVC_RECORDINGS__DIR": str(s.directory), "TRANSLATE_SVC_RECORDINGS__KEY_FILE": str(s.keys.path)}
    r = run_cli("serve", "--model", test_model_dir, "--port", "0", env=env)
    assert r.code == EXIT_USAGE, r.text
    assert "invalid settings" in r.out and "recordings.dir needs auth.tokens_file" in " ".join(r.out.split()), r.text


def test_a_flag_keeps_the_rest_of_its_section_from_the_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from translate_svc.cli.operator import ServeFlags

    monkeypatch.setenv("TRANSLATE_SVC_SERVER__DRAIN_S", "7.5")
    monkeypatch.setenv("TRANSLATE_SVC_SERVER__PORT", "50099")
    settings = ServeFlags(port=0, host="127.0.0.2").settings()
    assert (settings.server.port, settings.server.host, settings.server.drain_s) == (0, "127.0.0.2", 7.5)
