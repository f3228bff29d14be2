"""benchmarks/tools/decode_steps.py on the test checkpoint: it runs both decoders at each size for the
same steps (it asserts that itself) and writes every figure with its spread."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchmarks.tools.decode_steps import app, segments

pytestmark = pytest.mark.integration


def test_segments_wrap_around_the_clip(shared_audio: Path) -> None:
    clips = segments(shared_audio / "jfk.flac", 4.0, 5)  # 11 s: two whole 4 s segments, then again
    assert len(clips) == 5 and all(len(c) == 64000 for c in clips)
    assert (clips[0] == clips[2]).all() and not (clips[0] == clips[1]).all()


@pytest.mark.parametrize("static", [False, True])
def test_both_decoders_are_timed_per_size(test_model_dir: Path, tmp_path: Path, static: bool) -> None:
    out = tmp_path / "steps.json"
    args = ["--model", str(test_model_dir), "--sizes", "1,3", "--repeats", "2", "--tokens", "3", "--json", str(out)]
    result = CliRunner().invoke(app, args + (["--static"] if static else []))
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["meta"]["static"] is static
    assert [r["batch"] for r in report["results"]] == [1, 3]
    for r in report["results"]:
        assert r["steps"] == 4  # 3 tokens, then EOS
        for key in ("generate_ms_per_step", "loop_ms_per_step", "loop_step_only_ms"):
            assert 0 < r[key]["min"] <= r[key]["median"] <= r[key]["max"]


def test_kernels_split_each_step_into_attention_and_the_rest(test_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "steps.json"
    args = ["--model", str(test_model_dir), "--sizes", "2", "--repeats", "1", "--tokens", "3", "--kernels"]
    result = CliRunner().invoke(app, [*args, "--json", str(out)])
    assert result.exit_code == 0, result.output
    (r,) = json.loads(out.read_text())["results"]
    for path in ("generate", "loop"):
        k = r["kernels"][path]
        assert 0 < k["attention_ms"] < k["total_ms"]  # both paths attend, and do more than attend
        assert k["rest_ms"] == pytest.approx(k["total_ms"] - k["attention_ms"])
    assert r["kernels"]["rest_ratio"] == pytest.approx(
        r["kernels"]["loop"]["rest_ms"] / r["kernels"]["generate"]["rest_ms"]
    )
    assert "attention + rest" in result.output
