"""``serve`` with cluster settings that cannot work (issue 59): a Redis out of reach, or a URL that
is not Redis's, stops the start with one ``cannot start:`` line naming the URL without its password,
before the model loads, on one process and on a node of workers."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.cli import EXIT_USAGE, run_cli
from tests.support.proc import free_port

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_with_redis_out_of_reach_does_not_start_and_names_the_url(test_model_dir: Path, workers: str) -> None:
    port = free_port()  # nothing listens there
    url = f"redis://app:hunter2-secret@127.0.0.1:{port}/0"
    started = time.monotonic()
    r = run_cli(
        "serve",
        "--model",
        test_model_dir,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--workers",
        workers,
        env={"TRANSLATE_SVC_CLUSTER__REDIS_URL": url},
        process=True,
        timeout=120,
    )
    assert r.code == EXIT_USAGE, r.text
    assert "cannot start:" in r.out, r.text
    assert f"cannot reach Redis at redis://app:***@127.0.0.1:{port}/0" in " ".join(r.out.split()), r.text
    assert "hunter2" not in r.text
    assert "Traceback" not in r.text
    assert time.monotonic() - started < 60


def test_serve_with_a_url_that_is_not_redis_does_not_start(test_model_dir: Path) -> None:
    r = run_cli(
        "serve",
        "--model",
        test_model_dir,
        "--port",
        "0",
        env={"TRANSLATE_SVC_CLUSTER__REDIS_URL": "http://app:hunter2@redis:6379"},
        process=True,
    )
    assert r.code == EXIT_USAGE, r.text
    assert "cannot start:" in r.out and "is not a Redis URL" in r.out, r.text
    assert "hunter2" not in r.text
