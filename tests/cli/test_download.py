"""``download-model --lid-dir`` fetches the language identifier after the weights (issue 57: the
manifests' model Job runs it, so a deployment can detect languages). The Hub cannot be reached from
the test machine, so the two fetches (``translate_svc.app``'s, each tested where it can be) are
replaced by recorders: what is tested is the command's wiring."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import translate_svc.app
from translate_svc.cli import app

pytestmark = pytest.mark.unit


@pytest.fixture
def fetched(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    calls: list[tuple[Any, ...]] = []

    def model(directory: Path, revision: str, **kw: Any) -> tuple[str, str]:
        calls.append(("model", directory, revision))
        return "facebook/seamless-m4t-v2-large", "c0ffee"

    def lid(directory: Path, revision: str = "main", repo: str = "facebook/mms-lid-126", **kw: Any) -> tuple[str, str]:
        calls.append(("lid", directory, repo))
        return repo, "d00d"

    monkeypatch.setattr(translate_svc.app, "download_model", model)
    monkeypatch.setattr(translate_svc.app, "download_lid_model", lid)
    return calls


def test_with_lid_dir_the_identifier_is_fetched_after_the_weights(fetched: list, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["download-model", "--dir", str(tmp_path / "m"), "--lid-dir", str(tmp_path / "lid")]
    )
    assert result.exit_code == 0, result.output
    assert fetched == [("model", tmp_path / "m", "main"), ("lid", tmp_path / "lid", "facebook/mms-lid-126")]


def test_without_it_only_the_weights_are_fetched(fetched: list, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["download-model", "--dir", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    assert fetched == [("model", tmp_path / "m", "main")]
