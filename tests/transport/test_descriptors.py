"""The ports that hold a descriptor per connection share half of RLIMIT_NOFILE (issue 68, H2): the
HTTP port's ``limits.http_max_connections`` and SIP's ``sip.max_tcp_connections`` as asked while
they fit, else each its share in proportion, with a warning naming both settings."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from translate_svc.settings import ModelSettings, Settings
from translate_svc.transport.descriptors import connection_caps, shares

pytestmark = pytest.mark.unit


def test_shares_fit_half_the_limit_in_proportion() -> None:
    assert shares({"http": 512, "sip": 1024}, None) == {"http": 512, "sip": 1024}  # unlimited
    assert shares({"http": 512, "sip": 1024}, 20_000) == {"http": 512, "sip": 1024}
    assert shares({"http": 512, "sip": 1024}, 1024) == {"http": 170, "sip": 341}
    assert shares({"http": 512}, 1024) == {"http": 512}  # as the HTTP port alone was held before
    assert shares({"http": 600}, 1024) == {"http": 512}
    assert shares({"http": 5, "sip": 5}, 4) == {"http": 1, "sip": 1}  # each at least one


def test_the_caps_follow_the_ports_served_and_say_what_they_lowered(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(model=ModelSettings(path=Path("unused")))
    assert connection_caps(settings, limit=1024) == {}  # neither port is served
    settings.server.http_port = 0
    settings.sip.port = 0
    with caplog.at_level(logging.WARNING, logger="translate_svc.transport.descriptors"):
        assert connection_caps(settings, limit=1024) == {"http": 170, "sip": 341}
    [line] = [r.getMessage() for r in caplog.records]
    assert "limits.http_max_connections=512 takes at most 170" in line
    assert "sip.max_tcp_connections=1024 takes at most 341" in line
