"""``serve`` with glossaries turned on and nowhere to keep them (issue 73) does not start: one
``cannot start:`` line saying what to set, before the model loads, on one process and on a node
of workers (said once, by the supervisor, not by each worker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import EXIT_USAGE, run_cli

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("workers", ["1", "2"])
def test_glossaries_without_a_place_to_keep_them_do_not_start(test_model_dir: Path, workers: str) -> None:
    r = run_cli(
        "serve",
        "--model",
        test_model_dir,
        "--port",
        "0",
        "--workers",
        workers,
        env={"TRANSLATE_SVC_GLOSSARIES__ENABLED": "true"},
        process=True,
        timeout=120,
    )
    assert r.code == EXIT_USAGE, r.text
    said = " ".join(r.out.split())
    assert "cannot start:" in said and "glossaries.data_dir" in said, r.text
    assert "Traceback" not in r.text
