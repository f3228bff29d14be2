"""The demo page's settings: it needs the HTTP port, and the address printed for it is one where a
browser gives the page the microphone (``transport/openai/demo.py``)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from translate_svc.settings import ServerSettings
from translate_svc.transport.openai.demo import page_url

pytestmark = pytest.mark.unit


def test_the_demo_page_needs_the_http_port_and_prints_where_a_browser_may_use_the_microphone() -> None:
    with pytest.raises(ValidationError, match="http_port"):
        ServerSettings(demo_page=True)
    assert ServerSettings(demo_page=True, http_port=8080).demo_page
    # a wildcard host is printed as loopback: browsers give the microphone to http://127.0.0.1 only
    assert page_url("0.0.0.0", 8080, tls=False) == "http://127.0.0.1:8080/demo"
    assert page_url("::1", 8080, tls=True) == "https://[::1]:8080/demo"
