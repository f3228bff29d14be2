"""The half-sent request flood of ``tests/transport/http/test_half_sent_flood.py`` in a process of its
own (``AttackProcess``): its coroutines churning connections would otherwise share the test's event
loop with the other tenant's timed calls, and a starved test process would add its own lag to what
it measures (a run under four busy loops, 2026-11-30).

    python -m tests.support.attacks.half_sent --port PORT --flooders 128 --started-at 256 --stop-file F

keeps ``--flooders`` half-sent requests open against the HTTP port (each reopened as the server
closes it), says ``started`` once ``--started-at`` connections were opened, stops once ``--stop-file``
exists (or after ``--seconds``), and prints ``{"opened": n}``."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from tests.support.attacks.unread import half_sent_loop


async def flood(port: int, flooders: int, started_at: int, stop_file: Path, seconds: float) -> int:
    stop, opened = asyncio.Event(), [0]
    tasks = [asyncio.create_task(half_sent_loop(port, stop, opened)) for _ in range(flooders)]
    said = False
    end = time.monotonic() + seconds
    try:
        while not await asyncio.to_thread(stop_file.exists) and time.monotonic() < end:
            if not said and opened[0] >= started_at:
                print("started", flush=True)  # the test's signal: the cap is full and churning
                said = True
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    return opened[0]


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--flooders", type=int, default=128)
    ap.add_argument("--started-at", type=int, default=256)
    ap.add_argument("--stop-file", type=Path, required=True)
    ap.add_argument("--seconds", type=float, default=300.0)
    o = ap.parse_args()
    print(json.dumps({"opened": asyncio.run(flood(o.port, o.flooders, o.started_at, o.stop_file, o.seconds))}))
