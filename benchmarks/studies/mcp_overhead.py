"""What the MCP endpoint adds to a call (issue 62): ``translate_text`` through the ``mcp`` SDK's
client (one connection, the 2026-07-28 protocol) against ``TranslateText`` over gRPC, the same
text, interleaved call by call on one in-process server (the stable test translator: the model's
own time is small, so the doors' cost shows).

    python -m benchmarks.studies.mcp_overhead --calls 100
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.support.live_server import serving
from tests.support.mcp_door import http_client, mcp_settings, mcp_url
from tests.support.paths import TEST_MODEL
from translate_svc.api.v1 import translate_pb2 as pb

TEXT = "the meeting starts at noon"


async def run(calls: int, warmup: int, model: Path) -> dict[str, list[float]]:
    args = {"texts": [TEXT], "source_language": "eng", "target_languages": ["spa"]}
    request = pb.TranslateTextRequest(
        texts=[TEXT],
        source_language="eng",
        target_languages=["spa"],
        output=pb.OutputOptions(text=True, speech=False, transcript=False),
    )
    times: dict[str, list[float]] = {"mcp": [], "grpc": []}
    async with serving(mcp_settings(model)) as live:
        async with Client(streamable_http_client(mcp_url(live), http_client=http_client(None))) as client:
            for n in range(warmup + calls):
                started = time.perf_counter()
                result = await client.call_tool("translate_text", args)
                mcp_ms = (time.perf_counter() - started) * 1000
                assert not result.is_error, result.content
                started = time.perf_counter()
                await live.stub.TranslateText(request)
                grpc_ms = (time.perf_counter() - started) * 1000
                if n >= warmup:
                    times["mcp"].append(mcp_ms)
                    times["grpc"].append(grpc_ms)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--model", type=Path, default=TEST_MODEL)
    args = ap.parse_args()
    times = asyncio.run(run(args.calls, args.warmup, args.model))
    for door, values in times.items():
        ordered = sorted(values)
        p95 = ordered[int(0.95 * (len(ordered) - 1))]
        print(f"{door}: p50 {statistics.median(values):.2f} ms, p95 {p95:.2f} ms over {len(values)} calls")


if __name__ == "__main__":
    main()
