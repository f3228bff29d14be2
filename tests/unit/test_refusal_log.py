"""Refused calls are logged at most ``burst`` per window; the rest are counted in one line."""

from __future__ import annotations

import logging

import grpc
import pytest

from translate_svc.transport.refusal_log import RefusalLog


def test_a_flood_of_refusals_is_summed_up_not_logged_line_by_line(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    log = RefusalLog(burst=3, window_s=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="translate_svc.transport.refusal_log"):
        for _ in range(50):
            log("call", "ipv4:10.0.0.9:5555", grpc.StatusCode.UNAUTHENTICATED)
        assert [r.getMessage() for r in caplog.records] == [
            "refused a call from ipv4:10.0.0.9:5555: UNAUTHENTICATED"
        ] * 3
        assert log.suppressed == 47
        now[0] += 10.5  # the next window: one line for the 47, then the next refusal itself
        log("stream", "ipv4:10.0.0.9:5556", grpc.StatusCode.PERMISSION_DENIED)
    lines = [r.getMessage() for r in caplog.records[3:]]
    assert lines == [
        "refused 47 more calls in the last 10 s (not logged one by one)",
        "refused a stream from ipv4:10.0.0.9:5556: PERMISSION_DENIED",
    ]
