"""The access line as text (issue 68, H9): a value that is not a plain word is written as a JSON
string, so a value a caller sent (a Call-ID, a header) cannot forge a field or a line."""

from __future__ import annotations

import json
import logging
import re

import pytest

from translate_svc.observability.access import CallInfo, log_call

pytestmark = pytest.mark.unit

#: a JSON string as the line writes one
QUOTED = r'"(?:[^"\\]|\\.)*"'


def test_values_with_spaces_quotes_equals_or_controls_are_quoted_and_plain_ones_are_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hostile = {
        "call_id": "abc\ncode=OK tenant=forged",
        "note": 'say "hi" = \\ bye',
        "lang": "spa,fra",
        "codec": "OPUS/48000/2",
        "word": "élan",
    }
    call = CallInfo(request_id="r1", method="sip", peer="127.0.0.1:5060", extra=dict(hostile))
    with caplog.at_level(logging.INFO, logger="translate_svc.access"):
        log_call(call, code="OK", tenant="acme")
    [record] = caplog.records
    text = record.getMessage()
    fields = re.sub(QUOTED, '""', text)  # the quoted values out: what is left are the fields
    assert "\n" not in text and fields.count(" code=") == 1 and fields.count(" tenant=") == 1
    assert " lang=spa,fra " in text and " codec=OPUS/48000/2 " in text and " tenant=acme " in text
    for key in ("call_id", "note", "word"):
        quoted = re.search(f" {key}=({QUOTED})", text)
        assert quoted is not None and json.loads(quoted.group(1)) == hostile[key], text
    assert record.__dict__["call_id"] == hostile["call_id"]  # the structured fields keep the value as it was
