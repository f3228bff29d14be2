"""The bench's pure parts (the client distribution's ``client_cli/load``): a step kept or not, its
commit lag, the suggestion, the streams' clips, /metrics parsing and what a step's readings give."""

from __future__ import annotations

import numpy as np
import pytest

from translate_svc.client_cli.load.capacity import MAX_LAG_MS, ServerUse, suggest, summarize
from translate_svc.client_cli.load.clips import SAMPLE_RATE, Clip, fit_pcm, stream_clips
from translate_svc.client_cli.load.metrics import Reading, parse_metrics
from translate_svc.client_cli.load.ramp import server_use
from translate_svc.client_cli.load.streams import SegmentObs, StreamObs

pytestmark = pytest.mark.unit


def _stream(
    *latencies: float, lag: float = 0.0, error: str | None = None, ok: bool = True, commits: tuple[float, ...] = ()
) -> StreamObs:
    return StreamObs(4.0, tuple(SegmentObs(x, ok, 5.0, 20.0) for x in latencies), lag, commits, error=error)


def test_a_step_is_kept_only_within_the_target_and_without_failures() -> None:
    use = ServerUse()
    good = summarize("segment", [_stream(100, 200), _stream(300)], 5.0, 1000, use)
    assert good.kept and good.segments == 3 and good.p50_ms == 200 and good.max_ms == 300 and good.audio_s == 8
    assert not summarize("segment", [_stream(100, 2000)], 5.0, 1000, use).kept  # p95 over the target
    assert not summarize("segment", [_stream(100), _stream(error="UNAVAILABLE")], 5.0, 1000, use).kept
    assert not summarize("segment", [_stream(100, ok=False)], 5.0, 1000, use).kept
    assert not summarize("segment", [_stream(100, lag=MAX_LAG_MS + 1)], 5.0, 1000, use).kept
    assert not summarize("segment", [_stream()], 5.0, 1000, use).kept  # nothing measured: not kept


def test_the_suggestion_is_the_largest_count_kept_with_every_smaller_one() -> None:
    def step(n: int, p95: float):  # type: ignore[no-untyped-def]
        return summarize("segment", [_stream(p95)] * n, 5.0, 1000, ServerUse())

    got = suggest([step(8, 500), step(1, 100), step(2, 200), step(4, 2000)], headroom=0.2)
    assert (got.max_streams, got.autoscaler_target) == (2, 1)  # 4 failed, so 8 does not count
    got = suggest([step(10, 100), step(20, 100)], headroom=0.2)
    assert (got.max_streams, got.autoscaler_target) == (20, 16)
    assert suggest([step(1, 5000)], headroom=0.2).max_streams is None


def test_each_stream_plays_the_clip_from_further_in_for_the_steps_length() -> None:
    clip = Clip("a.wav", np.arange(3 * SAMPLE_RATE, dtype=np.int16))
    clips = stream_clips(clip, 3, 5.0, shift_s=1.0)
    assert [len(c.pcm) for c in clips] == [5 * SAMPLE_RATE] * 3
    assert [int(c.pcm[0]) for c in clips] == [0, SAMPLE_RATE, 2 * SAMPLE_RATE]
    assert list(fit_pcm(np.arange(3), 7)) == [0, 1, 2, 0, 1, 2, 0]


def test_commit_lag_is_summarized_over_every_stream_and_judged_like_the_finals() -> None:
    use = ServerUse()
    step = summarize("simultaneous", [_stream(100, commits=(10, 30, 20)), _stream(200, commits=(40,))], 5.0, 1000, use)
    assert step.commits == 4 and step.kept
    assert (step.commit_lag_p50_ms, step.commit_lag_p95_ms, step.commit_lag_max_ms) == (20, 40, 40)
    late = summarize("simultaneous", [_stream(100, commits=(10, 1500))], 5.0, 1000, use)
    assert late.commit_lag_p95_ms == 1500 and not late.kept  # the finals are in time, the commits are not
    none = summarize("segment", [_stream(100)], 5.0, 1000, use)
    assert none.commits == 0 and none.commit_lag_p50_ms is None and none.kept  # no commit: judged on finals


# What prometheus_client serves to a plain GET (text format 0.0.4), cut to the samples the bench reads
# and their neighbours: the counter's _created samples, another family with an outcome label, a
# label value with an escaped quote and a brace, a timestamp.
PAGE = """\
# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.5
# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 1.048576e+08
# HELP translate_svc_simultaneous_steps_total simultaneous mode: steps, by outcome
# TYPE translate_svc_simultaneous_steps_total counter
translate_svc_simultaneous_steps_total{outcome="run"} 40.0
translate_svc_simultaneous_steps_total{outcome="skipped"} 3.0 1700000000000
translate_svc_simultaneous_steps_created{outcome="run"} 1.7e+09
translate_svc_other_total{outcome="skipped",why="a \\"quoted\\" } brace"} 99.0
"""


def test_metrics_parsing_reads_the_process_collector_and_the_steps_by_outcome() -> None:
    assert parse_metrics(PAGE) == Reading(cpu_s=12.5, rss_bytes=104857600.0, steps_run=40.0, steps_skipped=3.0)
    assert parse_metrics("other 1\n") == Reading()  # nothing the bench reads: not measured
    # the family declared but no step counted yet (no sample until a first step): 0, not unknown
    declared = "# TYPE translate_svc_simultaneous_steps_total counter\n"
    assert parse_metrics(declared) == Reading(steps_run=0.0, steps_skipped=0.0)
    # one sample per process (a pid label): summed
    two = (
        declared
        + 'translate_svc_simultaneous_steps_total{pid="1",outcome="run"} 1\n'
        + 'translate_svc_simultaneous_steps_total{pid="2",outcome="run"} 2\n'
    )
    assert parse_metrics(two).steps_run == 3.0


def test_a_steps_server_figures_are_the_growth_between_its_readings() -> None:
    before = Reading(cpu_s=10.0, rss_bytes=100 * 2**20, steps_run=40.0, steps_skipped=3.0)
    after = Reading(cpu_s=12.0, rss_bytes=90 * 2**20, steps_run=52.0, steps_skipped=5.0)
    assert server_use(before, after, 120 * 2**20, 4.0) == ServerUse(0.5, 120.0, 12, 2)
    assert server_use(None, after, None, 4.0) == ServerUse()  # no reading before: nothing measured
    assert server_use(before, Reading(cpu_s=11.0), None, 4.0) == ServerUse(0.25, None, None, None)


def test_the_parser_reads_what_prometheus_client_writes() -> None:
    """The server's own library writes the page (the load machine does not have it to read one)."""
    from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

    reg = CollectorRegistry()
    steps = Counter("translate_svc_simultaneous_steps", 'by outcome, a "quoted" \\ help', ["outcome"], registry=reg)
    Counter("process_cpu_seconds", "CPU", registry=reg).inc(3.5)
    Gauge("process_resident_memory_bytes", "RSS", registry=reg).set(2**30)
    Counter("other", "x", ["outcome", "why"], registry=reg).labels("run", 'a "q" } ,\n').inc(5)
    assert parse_metrics(generate_latest(reg).decode()) == Reading(3.5, 2**30, 0.0, 0.0)  # declared, none yet
    steps.labels("run").inc(7)
    steps.labels("skipped").inc(2)
    assert parse_metrics(generate_latest(reg).decode()) == Reading(3.5, 2**30, 7.0, 2.0)


async def test_a_metrics_page_answered_late_once_is_read_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server at its capacity can answer /metrics after the read's timeout: the bench asks again
    (in a loaded `make test` a step's figures were lost to one late answer); a page that never comes
    gives no reading after ``READ_TRIES``. A real HTTP server on loopback, late on purpose."""
    import http.server
    import threading
    import time

    from translate_svc.client_cli.load import metrics

    page = (
        b"# TYPE translate_svc_simultaneous_steps_total counter\n"
        b'translate_svc_simultaneous_steps_total{outcome="run"} 7.0\n'
    )
    asked: list[float] = []
    late = {"first": 1}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(time.monotonic())
            if len(asked) <= late["first"]:
                time.sleep(0.6)  # past the read's timeout
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(metrics, "READ_TIMEOUT_S", 0.2)
    url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
    try:
        got = await metrics.read_metrics(url)
        assert got is not None and got.steps_run == 7.0 and len(asked) == 2
        late["first"] = len(asked) + metrics.READ_TRIES  # every try late from now on
        asked_before = len(asked)
        assert await metrics.read_metrics(url) is None
        assert len(asked) - asked_before == metrics.READ_TRIES
    finally:
        server.shutdown()
        server.server_close()
