"""Where the segmenter cuts real speech, and how long after its end each segment is emitted.

Offline, no server, no translation model: silero VAD (``translate_svc.vad.silero``) and the
``Segmenter``. Each file of ``--files`` is played as the soak's lanes play it (copy k rotated
``k * --shift-s`` in, k < ``--copies``: 0, 1.37, ... 6.85 s by default, as ``benchmarks/tools/soak.py``),
scored as a stream is, and fed in ``--chunk-ms`` pieces (the soak's lanes send 100 ms) to two
segmenters: ``--before``, ``translate_svc/vad/segmenter.py`` as of a git revision or a file
(default: main before issue 53, whose cap searched the last third for its cut), and ``--after``
(default: this tree's). A segment's emit delay is how much audio had been fed past its end when it
came out: what the server reports as its ``vad_wait_ms``. The cap cuts (``MAX_LENGTH``) also show
the speech probability of the window they end in (low: a pause; high: through speech).

    PYTHONPATH=$PWD python -m benchmarks.studies.segment_cuts [--max-segment-ms 4000] [--json out/cuts.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np

from tests.support.paths import REPO, SHARED_AUDIO
from translate_svc.client_cli.decode import load_pcm16k
from translate_svc.vad import segmenter as tree_segmenter
from translate_svc.vad.silero import SileroVad

W = tree_segmenter.WINDOW_SAMPLES
#: main before issue 53's change of the cap (the last-third search)
BEFORE = "7c019879b729aabfc8302c92a266f2977719ae1a"
LATE_MS = 500.0


def load_segmenter(spec: str | None, name: str) -> types.ModuleType:
    """The segmenter module from a file, from ``git show REV:translate_svc/vad/segmenter.py``, or
    (``spec`` None) this tree's. Loaded beside this tree's; it imports only long-stable names."""
    if spec is None:
        return tree_segmenter
    if Path(spec).is_file():
        source = Path(spec).read_text()
    else:
        source = subprocess.run(
            ["git", "show", f"{spec}:translate_svc/vad/segmenter.py"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    module = types.ModuleType(name)
    sys.modules[name] = module  # dataclasses look their module up
    exec(compile(source, f"{spec}:segmenter.py", "exec"), module.__dict__)
    return module


def copies(pcm: np.ndarray, n: int, shift_s: float) -> list[tuple[float, np.ndarray]]:
    """Copy k rotated ``k * shift_s`` in, as ``benchmarks.tools.loadgen.clips.stream_clips`` makes them."""
    out = []
    for k in range(n):
        shift = round(k * shift_s * 16000) % len(pcm)
        out.append((shift / 16000, np.concatenate([pcm[shift:], pcm[:shift]]).astype(np.float32) / 32768.0))
    return out


def scored(vad: SileroVad, x: np.ndarray) -> np.ndarray:
    state = vad.new_state()
    return np.concatenate([vad.probabilities(state, x), vad.finish(state)])


def segments(
    module: types.ModuleType, config: Any, x: np.ndarray, probs: np.ndarray, chunk: int
) -> tuple[list[dict[str, Any]], list[float]]:
    """Every segment the module's ``Segmenter`` emits, fed ``chunk`` samples at a time, with its
    emit delay, its region (speech regions counted by ``SpeechStarted``) and its end's probability;
    and the length (s) of each remainder after a cut that was dropped (shorter than min_speech)."""
    seg = module.Segmenter(config)
    out: list[dict[str, Any]] = []
    dropped: list[float] = []
    region, open_region = -1, False

    def note(events: list[Any], fed: int) -> None:
        nonlocal region, open_region
        for e in events:
            if isinstance(e, module.SpeechStarted):
                region, open_region = region + 1, True
            elif isinstance(e, module.SpeechEnded):
                open_region = False
            elif isinstance(e, module.SpeechDiscarded) and open_region:
                dropped.append(round((e.end_sample - e.start_sample) / 16000, 3))
            elif isinstance(e, module.SegmentReady):
                out.append(
                    {
                        "start_s": round(e.start_sample / 16000, 3),
                        "length_s": round((e.end_sample - e.start_sample) / 16000, 3),
                        "reason": e.reason.value,
                        "delay_ms": round((fed - e.end_sample) / 16, 1),
                        "prob_at_end": round(float(probs[(e.end_sample - 1) // W]), 3),
                        "region": region,
                    }
                )

    done = 0
    for at in range(0, x.size, chunk):
        piece = x[at : at + chunk]
        ready = (at + piece.size) // W
        note(seg.push(piece, probs[done:ready]), at + piece.size)
        done = ready
    note(seg.push(np.zeros(0, dtype=np.float32), probs[done:]) + seg.finish(), x.size)
    return out, dropped


def uncut(segs: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """The segments of regions the cap did not cut (the ones that must equal silero's)."""
    per_region: dict[str, list[dict[str, Any]]] = {}
    for s in segs:
        per_region.setdefault(s["region"], []).append(s)
    return [
        (r[0]["start_s"], r[0]["length_s"])
        for r in per_region.values()
        if len(r) == 1 and r[0]["reason"] != "MAX_LENGTH"
    ]


def summary(segs: list[dict[str, Any]], dropped: list[float]) -> dict[str, Any]:
    delays = np.array([s["delay_ms"] for s in segs])
    capped = [s for s in segs if s["reason"] == "MAX_LENGTH"]
    split = {s["region"] for s in capped}
    return {
        "segments": len(segs),
        "capped": len(capped),
        "delay_max_ms": float(delays.max()),
        f"delay_over_{LATE_MS:.0f}ms": int((delays > LATE_MS).sum()),
        "delay_p50_ms": round(float(np.percentile(delays, 50)), 1),
        "delay_p95_ms": round(float(np.percentile(delays, 95)), 1),
        "capped_delay_max_ms": max((s["delay_ms"] for s in capped), default=None),
        "capped_prob_at_end": [s["prob_at_end"] for s in capped],
        "longest_s": max(s["length_s"] for s in segs),
        "pieces_under_1s": sum(s["region"] in split and s["length_s"] < 1 for s in segs),
        "remainders_dropped_s": dropped,
    }


def main(opts: argparse.Namespace) -> dict[str, Any]:
    vad = SileroVad()
    rules = {
        "before": load_segmenter(opts.before, "segmenter_before"),
        "after": load_segmenter(opts.after, "segmenter_after"),
    }
    chunk = opts.chunk_ms * 16
    every: dict[str, list[dict[str, Any]]] = {name: [] for name in rules}
    dropped: dict[str, list[float]] = {name: [] for name in rules}
    result: dict[str, Any] = {
        "before": opts.before,
        "after": opts.after or "this tree",
        "chunk_ms": opts.chunk_ms,
        "max_segment_ms": opts.max_segment_ms,
        "copies": [],
    }
    head = ("file", "copy", "rule", "start_s", "len_s", "reason", "delay_ms", "p_end")
    print("{:<16} {:>4} {:<6} {:>8} {:>7} {:<13} {:>8} {:>5}".format(*head))
    for name in opts.files:
        path = Path(name) if Path(name).is_file() else SHARED_AUDIO / name
        for k, (shift_s, x) in enumerate(copies(load_pcm16k(path), opts.copies, opts.shift_s)):
            probs = scored(vad, x)
            row: dict[str, Any] = {"file": path.name, "copy": k, "rotated_s": round(shift_s, 2)}
            for rule, module in rules.items():
                config = dataclasses.replace(module.SegmenterConfig(), max_segment_ms=opts.max_segment_ms)
                segs, lost = segments(module, config, x, probs, chunk)
                for s in segs:
                    s["region"] = f"{path.name}:{k}:{s['region']}"  # unique across copies
                row[rule] = segs
                every[rule] += segs
                dropped[rule] += lost
                for s in segs:
                    print(
                        f"{path.name:<16} {k:>4} {rule:<6} {s['start_s']:>8.3f} {s['length_s']:>7.3f} "
                        f"{s['reason']:<13} {s['delay_ms']:>8.1f} {s['prob_at_end']:>5.2f}"
                    )
            row["uncut_equal"] = uncut(row["before"]) == uncut(row["after"])
            result["copies"].append(row)
    result["summary"] = {rule: summary(segs, dropped[rule]) for rule, segs in every.items()}
    result["summary"]["uncut_equal_in_every_copy"] = all(c["uncut_equal"] for c in result["copies"])
    return result


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--files", nargs="+", default=["silero_test.wav", "jfk.flac"])
    ap.add_argument("--copies", type=int, default=6, help="rotated copies per file (rotations 0 .. 6.85 s)")
    ap.add_argument("--shift-s", type=float, default=1.37, help="rotation between copies (the soak's)")
    ap.add_argument("--chunk-ms", type=int, default=100, help="audio per push (the soak's lanes send 100 ms)")
    ap.add_argument("--max-segment-ms", type=int, default=15_000, help="the cap, for both rules")
    ap.add_argument("--before", default=BEFORE, help="git revision or segmenter.py file of the old rule")
    ap.add_argument("--after", default=None, help="git revision or segmenter.py file (default: this tree's)")
    ap.add_argument("--json", help="write every segment and the summary here")
    args = ap.parse_args()
    out = main(args)
    print(json.dumps(out["summary"], indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2))
