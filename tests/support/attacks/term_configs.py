"""The 1 MB term configs of ``tests/transport/test_oversized_configs.py`` in a process of its own
(``AttackProcess``): four clients sending a megabyte each, again and again, would otherwise share the
test's event loop with the victim's stream and the health checks it times, and a starved test
process adds its own lag to what it measures (a health Check timed at 8.6 s in a loaded run,
2026-12-01, while its median was 13 ms).

    python -m tests.support.attacks.term_configs --port PORT --clients 4 --stop-file F

repeats ``--clients`` attackers (half Riva's config, half ours: ``counts.riva_term_config``,
``counts.our_term_config``), each opening a call, sending its config and awaiting the refusal, again;
says ``started`` once every attacker's first config was answered, stops once ``--stop-file`` exists
(or after ``--seconds``), and prints ``{"configs_sent": n}``."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import grpc

from tests.support.attacks.counts import ATTACKER, OURS, RIVA_S2T, our_term_config, raw_call, riva_term_config


async def attack(port: int, clients: int, stop_file: Path, seconds: float) -> int:
    kinds = [(RIVA_S2T, riva_term_config()), (OURS, our_term_config())]
    stop, sent = asyncio.Event(), [0] * clients

    async def repeat(k: int) -> None:
        method, config = kinds[k % 2]
        options = [("grpc.max_send_message_length", -1)]
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options) as ch:
            while not stop.is_set():
                await raw_call(ch, method, [config], ATTACKER, 30)
                sent[k] += 1

    tasks = [asyncio.create_task(repeat(k)) for k in range(clients)]
    said = False
    end = time.monotonic() + seconds
    try:
        while not await asyncio.to_thread(stop_file.exists) and time.monotonic() < end:
            if not said and all(sent):
                print("started", flush=True)  # the test's signal: every attacker is repeating
                said = True
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    return sum(sent)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--stop-file", type=Path, required=True)
    ap.add_argument("--seconds", type=float, default=300.0)
    o = ap.parse_args()
    print(json.dumps({"configs_sent": asyncio.run(attack(o.port, o.clients, o.stop_file, o.seconds))}))
