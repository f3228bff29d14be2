"""Prometheus metrics move with real traffic."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import REGISTRY

from tests.support.fake_runner import FakeRunner
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.raw import translate_file
from translate_svc.observability import metrics

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_segments_batches_and_latency_are_counted(live: LiveServer, shared_audio: Path) -> None:
    ok, batches, lat, vad = (
        value("translate_svc_segments_total", status="OK"),
        value("translate_svc_batch_size_count"),
        value("translate_svc_segment_latency_ms_count"),
        value("translate_svc_vad_streams_per_call_count"),
    )
    await translate_file(live.stub, shared_audio / "jfk.flac", ["spa"], speech=False)
    assert value("translate_svc_segments_total", status="OK") == ok + 4
    assert value("translate_svc_segment_latency_ms_count") == lat + 4
    assert value("translate_svc_batch_size_count") > batches
    assert value("translate_svc_vad_streams_per_call_count") > vad  # the clip went through the VAD worker
    assert value("translate_svc_streams_active") == 0


# -- the metrics port (issue 34, N15) ---------------------------------------------------------------

HALF_OPEN = 200
IDLE_S, CAP = 3.0, 16
#: half a request: the request line and a header, never the blank line that ends the headers
HALF_REQUEST = b"GET /metrics HTTP/1.1\r\nHost: x\r\n"


async def closed_by_server(reader: asyncio.StreamReader, deadline: float) -> bool:
    """Whether the server closes this connection before ``deadline`` (loop time)."""
    try:
        async with asyncio.timeout_at(deadline):
            return await reader.read(1) == b""
    except ConnectionError:
        return True  # aborted
    except TimeoutError:
        return False


async def test_half_sent_requests_take_no_thread_and_do_not_stop_a_scrape(
    test_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """N15: 200 connections that send half a request and wait. prometheus_client's server started a
    thread per connection, each blocked for ever on its request line; now they cost no thread, a
    scrape sent after them is answered, the cap closes all but the newest at once, and the idle
    timeout the rest."""
    ports: list[int] = []
    real = metrics.serve_metrics

    def recording(port: int, host: str = "0.0.0.0") -> int:
        ports.append(real(port, host, idle_s=IDLE_S, max_connections=CAP))
        return ports[-1]

    monkeypatch.setattr(metrics, "serve_metrics", recording)
    settings = make_settings(test_model_dir)
    settings.server.metrics_port = 0
    async with serving(settings, warmup=False, runner_factory=FakeRunner):
        (port,) = ports
        url = f"http://127.0.0.1:{port}/metrics"
        # a new connection per request: a scrape is the newest connection when it is accepted
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            async with http.get(url) as r:  # the first scrape starts the executor's thread
                assert r.status == 200 and "translate_svc_streams_active" in await r.text()
            threads = threading.active_count()
            loop = asyncio.get_running_loop()
            first = loop.time()
            opened = [await asyncio.open_connection("127.0.0.1", port) for _ in range(HALF_OPEN)]
            try:
                for _, writer in opened:
                    writer.write(HALF_REQUEST)
                    await writer.drain()
                # accepted in order: when this is answered, the 200 before it were accepted
                async with http.get(url) as r:
                    assert r.status == 200 and "translate_svc_streams_active" in await r.text()
                assert threading.active_count() <= threads + 2  # was threads + 200
                before_idle = max(first + IDLE_S - 0.5, loop.time() + 0.2)
                closed = await asyncio.gather(*(closed_by_server(reader, before_idle) for reader, _ in opened))
                assert sum(closed) >= HALF_OPEN - CAP  # the cap: only the newest stay open
                later = loop.time() + IDLE_S + 5.0
                closed = await asyncio.gather(*(closed_by_server(reader, later) for reader, _ in opened))
                assert all(closed)  # the idle timeout: a half-sent request is closed
            finally:
                for _, writer in opened:
                    writer.close()
        metrics.stop_metrics(port)
