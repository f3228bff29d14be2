"""Refused calls are logged at most ``burst`` per window; the rest are counted in one line."""

from __future__ import annotations

import logging

import grpc
import pytest

from translate_svc.transport.refusal_log import RefusalLog

pytestmark = pytest.mark.unit


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


def test_the_http_port_logs_a_client_s_bad_request_as_one_line_and_a_bug_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``http.site.PortLog``, aiohttp's logger for the HTTP port: what aiohttp would log as an ERROR
    with a traceback is a ``RefusalLog`` line when the client caused it (a head its parser refused,
    a reset under a handler), quoting none of the client's bytes; a handler's own exception keeps
    aiohttp's ERROR and traceback."""
    from aiohttp.http_exceptions import BadStatusLine, LineTooLong

    from translate_svc.transport.http.site import PortLog

    log = PortLog(RefusalLog(burst=3))
    with caplog.at_level(logging.INFO):
        log.exception("Error handling request from %s", "10.0.0.9", exc_info=LineTooLong(b"GET /secret" * 9, 8190))
        log.exception("Error handling request from %s", "10.0.0.9", exc_info=BadStatusLine("GET /secret"))
        log.exception("Error handling request from %s", None, exc_info=ConnectionResetError(104, "reset"))
        for _ in range(5):  # a flood: counted, not logged
            log.exception("Error handling request from %s", "10.0.0.9", exc_info=BadStatusLine("x"))
        try:
            raise RuntimeError("a handler's bug")
        except RuntimeError as e:
            log.exception("Error handling request from %s", "10.0.0.7", exc_info=e)
    lines = [(r.levelname, r.getMessage(), r.exc_info is not None) for r in caplog.records]
    assert lines == [
        ("INFO", "refused a request from 10.0.0.9: 400, its request line or a header is over 8190 bytes", False),
        (
            "INFO",
            "refused a request from 10.0.0.9: 400, its request's head is not one this port reads (BadStatusLine)",
            False,
        ),
        ("INFO", "refused a request from an unknown address: its connection was reset while it was served", False),
        ("ERROR", "Error handling request from 10.0.0.7", True),
    ]
    assert log.refusals.suppressed == 5 and all("secret" not in line[1] for line in lines)
