"""Run ``translate-svc serve`` in this process with a memory probe beside it (a soak's diagnosis tool).

    python -m benchmarks.tools.memprobe --out DIR [--every-s 60] [--frames 10] [--trim] -- serve --model ... --port 0
    python -m benchmarks.tools.soak --minutes 5 --wrapper benchmarks.tools.memprobe --probe-out DIR

No product code changes and no product flag: this starts the CLI's own entry point (``serve`` and its
arguments after ``--``) in-process, with ``tracemalloc`` on (``--frames`` frames per allocation;
0: off) and a daemon thread that every ``--every-s`` appends one JSON line to ``DIR/probe.jsonl``:

- ``/proc`` (VmRSS, RssAnon, the brk ``[heap]``'s RSS) and glibc's ``mallinfo2`` (arena: the brk
  heap's size; uordblks: bytes in use; fordblks: free bytes held; hblkhd: mmapped blocks);
- live objects by type (``gc.get_objects()``), and the types whose count changed most since the
  baseline (the first probe at or after ``--baseline-s``);
- ``tracemalloc``: traced bytes now and at peak, and the ``--top`` allocation sites (grouped by
  ``--group``: lineno or traceback) that grew most since the baseline snapshot;
- with ``--trim``: RSS again after ``malloc_trim(0)`` (what glibc gives back: free memory it held,
  i.e. fragmentation, not live objects). The last probe (at exit) always trims.

The probe itself allocates (snapshots, the counts), and tracemalloc costs CPU and memory per block:
use it to find what grows, not to measure RSS (run the soak without it for that).
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import ctypes.util
import gc
import json
import re
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any


class Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def mallinfo() -> dict[str, float] | None:
    fn = getattr(_libc, "mallinfo2", None)
    if fn is None:
        return None
    fn.restype = Mallinfo2
    m = fn()
    return {k: round(getattr(m, k) / 2**20, 2) for k in ("arena", "hblkhd", "uordblks", "fordblks", "keepcost")} | {
        "ordblks": m.ordblks
    }


def malloc_trim() -> None:
    _libc.malloc_trim(ctypes.c_size_t(0))


def proc_mb() -> dict[str, float | None]:
    status = Path("/proc/self/status").read_text()

    def kb(key: str) -> float | None:
        m = re.search(rf"^{key}:\s+(\d+) kB", status, re.M)
        return round(int(m.group(1)) / 1024, 2) if m else None

    heap = None
    smaps = Path("/proc/self/smaps").read_text()
    at = smaps.find("[heap]")
    if at >= 0 and (m := re.search(r"^Rss:\s+(\d+) kB", smaps[at:], re.M)):
        heap = round(int(m.group(1)) / 1024, 2)
    return {"rss": kb("VmRSS"), "rss_anon": kb("RssAnon"), "heap": heap}


def garbage_census(top: int) -> dict[str, Any]:
    """What the cycles the last collection found were made of (``gc.DEBUG_SAVEALL`` keeps them in
    ``gc.garbage``), with the bytes of the arrays and buffers among them; then let them go."""
    kinds = collections.Counter(type(o).__name__ for o in gc.garbage)
    nbytes = collections.Counter()
    for o in gc.garbage:
        size = getattr(o, "nbytes", None)
        if isinstance(size, int):
            nbytes[type(o).__name__] += size
    for o in gc.garbage:
        if isinstance(o, (bytes, bytearray)):
            nbytes[type(o).__name__] += len(o)
    found = {"objects": len(gc.garbage), "types": dict(kinds.most_common(top)), "buffer_bytes": dict(nbytes)}
    gc.garbage.clear()
    return found


class Probe:
    def __init__(self, opts: argparse.Namespace) -> None:
        self.opts = opts
        self.out = Path(opts.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.file = open(self.out / "probe.jsonl", "a")
        self.t0 = time.monotonic()
        self.base_counts: collections.Counter[str] | None = None
        self.base_snap: tracemalloc.Snapshot | None = None
        self.lock = threading.Lock()

    def take(self, *, final: bool = False) -> None:
        with self.lock:
            t = time.monotonic() - self.t0
            doc: dict[str, Any] = {"t_s": round(t, 1), "final": final, "proc": proc_mb(), "mallinfo": mallinfo()}
            doc["gc_stats"] = gc.get_stats()
            doc["unreachable"] = gc.collect()  # cyclic garbage found (and freed, unless --garbage keeps it)
            doc["after_collect"] = {"proc": proc_mb(), "mallinfo": mallinfo()}
            if self.opts.garbage:
                doc["garbage_top"] = garbage_census(self.opts.top)
            counts = collections.Counter(type(o).__name__ for o in gc.get_objects())
            doc["gc_objects"] = sum(counts.values())
            doc["gc_top"] = dict(counts.most_common(self.opts.top))
            snap = None
            if tracemalloc.is_tracing():
                cur, peak = tracemalloc.get_traced_memory()
                doc["traced_mb"] = round(cur / 2**20, 2)
                doc["traced_peak_mb"] = round(peak / 2**20, 2)
                doc["tracemalloc_own_mb"] = round(tracemalloc.get_tracemalloc_memory() / 2**20, 2)
                snap = tracemalloc.take_snapshot().filter_traces(
                    [
                        tracemalloc.Filter(False, tracemalloc.__file__),
                        tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
                        tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
                        tracemalloc.Filter(False, __file__),
                    ]
                )
            if self.base_counts is None and t >= self.opts.baseline_s:
                self.base_counts, self.base_snap = counts, snap
                doc["baseline"] = True
            elif self.base_counts is not None:
                diff = counts.copy()
                diff.subtract(self.base_counts)
                grown = sorted(diff.items(), key=lambda kv: -abs(kv[1]))[: self.opts.top]
                doc["gc_diff"] = {k: v for k, v in grown if v}
                if snap is not None and self.base_snap is not None:
                    stats = snap.compare_to(self.base_snap, self.opts.group)[: self.opts.top]
                    doc["traced_diff"] = [
                        {
                            "kb": round(s.size_diff / 1024, 1),
                            "count": s.count_diff,
                            "where": [f"{f.filename}:{f.lineno}" for f in s.traceback][-self.opts.show_frames :],
                        }
                        for s in stats
                    ]
            del counts, snap
            if self.opts.trim or final:
                malloc_trim()
                doc["after_trim"] = {"proc": proc_mb(), "mallinfo": mallinfo()}
            self.file.write(json.dumps(doc) + "\n")
            self.file.flush()

    def loop(self) -> None:
        if self.opts.every_s <= 0:
            return  # only the last probe, at exit
        while True:
            time.sleep(self.opts.every_s)
            try:
                self.take()
            except Exception as e:  # the probe must not take the server down
                print(f"memprobe: {type(e).__name__}: {e}", file=sys.stderr)


def main() -> None:
    argv = sys.argv[1:]
    if "--" not in argv:
        sys.exit("usage: python -m benchmarks.tools.memprobe [options] -- serve [serve's options]")
    cut = argv.index("--")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="directory for probe.jsonl")
    ap.add_argument("--every-s", type=float, default=60.0, help="0: one probe, at exit")
    ap.add_argument("--baseline-s", type=float, default=90.0, help="the first probe at or after this is the baseline")
    ap.add_argument("--frames", type=int, default=10, help="tracemalloc frames per allocation (0: tracemalloc off)")
    ap.add_argument("--group", default="traceback", choices=("lineno", "traceback", "filename"))
    ap.add_argument("--show-frames", type=int, default=6, help="frames shown per grown site (innermost last)")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--trim", action="store_true", help="malloc_trim(0) after every probe, RSS before and after")
    ap.add_argument(
        "--garbage", action="store_true", help="keep each collection's cycles (gc.DEBUG_SAVEALL) to say what they are"
    )
    opts = ap.parse_args(argv[:cut])
    if opts.frames and not tracemalloc.is_tracing():
        tracemalloc.start(opts.frames)
    if opts.garbage:
        gc.set_debug(gc.DEBUG_SAVEALL)
    probe = Probe(opts)
    threading.Thread(target=probe.loop, name="memprobe", daemon=True).start()
    from translate_svc.cli import app

    sys.argv = ["translate-svc", *argv[cut + 1 :]]
    try:
        app()
    finally:
        probe.take(final=True)


if __name__ == "__main__":
    main()
