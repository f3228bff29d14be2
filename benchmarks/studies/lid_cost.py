"""What spoken-language identification (MMS-LID, ``model/stages/lid.py``) costs per segment.

Run from the repository root::

    python -m benchmarks.studies.lid_cost                                  # the tiny random-weight test identifier
    python -m benchmarks.studies.lid_cost --model model_cache/mms-lid-126 --device cuda --json out/lid_cost.json

Segments are windows of real speech (``--file``, from ../shared/audio) of each ``--lengths``
(seconds), taken at different offsets so that no two in a batch are the same. For each length and
each batch size (``--sizes``), ``MmsLid.identify`` runs on the batch with 2 candidates, 4 candidates
and all of the identifier's languages, interleaved, ``--repeats`` times after one untimed call per
shape (on CPU, oneDNN builds its kernels for a new input shape on the first call). Reported: the
median milliseconds per segment (the call's time divided by the batch size).

The candidates only restrict the softmax after the forward pass, so their number should not change
the cost: the table shows it side by side. Without ``--model`` a test identifier is built in a
temporary directory; its encoder is tiny, so its figures measure the feature extraction, the convolution
front end at MMS's real frame rate and the Python around them, not MMS-LID's 1 B-parameter encoder.
"""

from __future__ import annotations

import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import soundfile as sf
import typer
from rich.console import Console
from rich.table import Table

from tests.support.paths import SHARED_AUDIO

logger = logging.getLogger("benchmarks.studies.lid_cost")
app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_enable=False)
console = Console(width=None if sys.stdout.isatty() else 120)

RATE = 16000
#: the shortlists, by preference; codes the identifier lacks are replaced by others it has
PREFERRED = ("eng", "spa", "fra", "deu")
#: successive windows of one batch start this far apart (seconds), wrapping around the file
WINDOW_SHIFT_S = 3.7


def windows(audio: np.ndarray, seconds: float, count: int) -> list[np.ndarray]:
    """``count`` windows of ``seconds`` of ``audio``, starting ``WINDOW_SHIFT_S`` apart (wrapping)."""
    length = int(seconds * RATE)
    if len(audio) < length:
        raise typer.BadParameter(f"the audio is {len(audio) / RATE:.1f} s long, shorter than {seconds} s")
    room = len(audio) - length + 1
    return [audio[start : start + length] for start in (int(k * WINDOW_SHIFT_S * RATE) % room for k in range(count))]


def shortlists(languages: frozenset[str]) -> dict[str, tuple[str, ...]]:
    """Candidate sets by name: 2, 4 and all (the empty tuple)."""
    ordered = [c for c in PREFERRED if c in languages] + sorted(languages - set(PREFERRED))
    sets = {str(n): tuple(ordered[:n]) for n in (2, 4) if n < len(ordered)}
    return {**sets, "all": ()}


def measure(lid: Any, audio: np.ndarray, lengths: list[float], sizes: list[int], repeats: int) -> list[dict[str, Any]]:
    sets = shortlists(lid.languages)
    rows = []
    for seconds in lengths:
        for size in sizes:
            batch = windows(audio, seconds, size)
            lid.identify(batch, [()] * size)  # untimed: the first call of a shape
            times: dict[str, list[float]] = {name: [] for name in sets}
            for _ in range(repeats):
                for name, candidates in sets.items():
                    t0 = time.perf_counter()
                    lid.identify(batch, [candidates] * size)
                    times[name].append((time.perf_counter() - t0) * 1000 / size)
            rows.append(
                {
                    "seconds": seconds,
                    "batch": size,
                    "ms_per_segment": {name: statistics.median(ms) for name, ms in times.items()},
                    "min_ms_per_segment": {name: min(ms) for name, ms in times.items()},
                }
            )
            logger.info("%.0f s x %d: %s", seconds, size, rows[-1]["ms_per_segment"])
    return rows


@app.command()
def main(
    model: Annotated[
        Path | None, typer.Option(help="an MMS-LID directory (default: a test identifier built in a temp dir)")
    ] = None,
    file: Annotated[str, typer.Option(help="speech: a name in ../shared/audio or a path")] = "silero_test.wav",
    lengths: Annotated[str, typer.Option(help="segment seconds, comma list")] = "2,8",
    sizes: Annotated[str, typer.Option(help="segments per batch, comma list")] = "1,4,16",
    repeats: Annotated[int, typer.Option(min=1, help="timed calls per shape and candidate set")] = 7,
    device: Annotated[str, typer.Option(help="cpu or cuda")] = "cpu",
    threads: Annotated[int | None, typer.Option(min=1, help="torch CPU threads (default: torch's)")] = None,
    max_seconds: Annotated[float, typer.Option(help="MmsLid's crop")] = 10.0,
    json_path: Annotated[Path | None, typer.Option("--json", help="write the results here")] = None,
) -> None:
    """Median milliseconds per segment of ``MmsLid.identify``, by length, batch size and candidates."""
    import torch

    from translate_svc.model.stages.lid import MmsLid
    from translate_svc.model.testing.lid_checkpoint import build_lid_test_checkpoint

    logging.basicConfig(level=logging.WARNING)
    path = Path(file) if Path(file).is_file() else SHARED_AUDIO / file
    if not path.is_file():
        raise typer.BadParameter(f"audio file {file!r} not found (looked in . and {SHARED_AUDIO})", param_hint="--file")
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    if rate != RATE:
        raise typer.BadParameter(f"{path} is {rate} Hz; give 16 kHz speech", param_hint="--file")
    if threads is not None:
        torch.set_num_threads(threads)

    with tempfile.TemporaryDirectory() as tmp:
        lid = MmsLid(model or build_lid_test_checkpoint(Path(tmp) / "lid"), device, max_seconds=max_seconds)
        rows = measure(
            lid,
            audio.mean(axis=1),
            [float(s) for s in lengths.split(",")],
            [int(n) for n in sizes.split(",")],
            repeats,
        )

    sets = shortlists(lid.languages)
    table = Table(title=f"{lid.name} on {device} ({torch.get_num_threads()} threads): median ms per segment")
    table.add_column("segment s", justify="right")
    table.add_column("batch", justify="right")
    for name, candidates in sets.items():
        table.add_column(f"{name} candidates" if candidates else f"all {len(lid.languages)}", justify="right")
    for row in rows:
        table.add_row(
            f"{row['seconds']:g}", str(row["batch"]), *(f"{row['ms_per_segment'][name]:.2f}" for name in sets)
        )
    console.print(table)
    report = {
        "model": lid.name,
        "revision": lid.info.revision,
        "test_model": lid.info.is_test_model,
        "device": device,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "file": path.name,
        "max_seconds": max_seconds,
        "repeats": repeats,
        "candidates": {name: list(c) or "all" for name, c in sets.items()},
        "rows": rows,
    }
    print(json.dumps(report, indent=2))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    app()
