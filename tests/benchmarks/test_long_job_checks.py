"""benchmarks/studies/long_job_checks.py, the long-job study's checks (issue 73): a job's segment and
``TranslateChunked``'s that are the same compare equal; one field apart is reported with where;
a dubbed track's implied length (its source's: issue 91); a webhook's signature checked from the documented format."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
from typing import Any

import numpy as np
import pytest

from benchmarks.studies.long_job_checks import (
    chunked_record,
    compare,
    implied_track_samples,
    job_record,
    verify_webhook,
)
from translate_svc.client import Segment, Timing, Translation, WordTiming

pytestmark = pytest.mark.unit


def job_segment(i: int) -> dict[str, Any]:
    start = 1000 * i
    return {
        "segment_id": i,
        "start_ms": start,
        "end_ms": start + 800,
        "transcript": {
            "language": "eng",
            "text": f"words {i}",
            "words": [{"word": "words", "start_ms": start, "end_ms": start + 300, "speaker": 0}],
        },
        "translations": [
            {
                "target_language": "spa",
                "text": f"palabras {i}",
                "words": [{"word": "palabras", "start_ms": 0, "end_ms": 400, "speaker": 0}],
                "audio_ms": 500,
            }
        ],
        "speaker": 0,
    }


def chunked_segment(i: int) -> Segment:
    start = 1000 * i
    speech = np.zeros(8000, np.float32)  # 500 ms at 16 kHz
    return Segment(
        segment_id=i,
        start_ms=start,
        end_ms=start + 800,
        transcript=f"words {i}",
        transcript_words=(WordTiming("words", start, start + 300),),
        translations=(
            Translation(
                "spa",
                f"palabras {i}",
                audio=speech,
                sample_rate=16000,
                num_samples=len(speech),
                words=(WordTiming("palabras", 0, 400),),
            ),
        ),
        timing=Timing(),
        transcript_language="eng",
    )


def records() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return [job_record(job_segment(i)) for i in range(3)], [chunked_record(chunked_segment(i)) for i in range(3)]


def test_the_same_segments_compare_equal() -> None:
    job, chunked = records()
    result = compare(job, chunked)
    assert result.equal and result.differing == 0 and result.first is None
    assert (result.job_segments, result.chunked_segments) == (3, 3)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda s: s.update(start_ms=s["start_ms"] + 1), ".start_ms"),
        (lambda s: s.update(transcript="other"), ".transcript"),
        (lambda s: s["translations"][0].update(text="otras"), ".translations[0].text"),
        (lambda s: s["translations"][0]["words"].append(("más", 400, 500, 0)), ".translations[0].words"),
        (lambda s: s.update(transcript_words=[("words", 1000, 1301, 0)]), ".transcript_words[0][2]"),
        (lambda s: s["translations"][0].update(speech_ms=499), ".translations[0].speech_ms"),
    ],
)
def test_one_field_apart_is_reported_with_where(change: Any, where: str) -> None:
    job, chunked = records()
    changed = copy.deepcopy(job)
    change(changed[1])
    result = compare(changed, chunked)
    assert not result.equal and result.differing == 1
    assert result.first is not None and result.first.startswith(f"segment 1 (job's id 1){where}"), result.first


def test_a_missing_segment_is_reported() -> None:
    job, chunked = records()
    result = compare(job[:2], chunked)
    assert not result.equal and result.differing == 0
    assert result.first == "the job has 2 segments, TranslateChunked 3"


def test_a_dubbed_track_is_as_long_as_its_source_at_the_tracks_rate() -> None:
    # issue 91: 216 s of 44.1 kHz audio make 216 s of track, however long the speech in it
    assert implied_track_samples(216 * 44100, 44100) == 216 * 16000
    assert implied_track_samples(11025, 44100, 16000) == 4000
    assert implied_track_samples(0, 16000) == 0


def test_a_webhook_signed_as_documented_verifies_and_a_changed_one_does_not() -> None:
    key = b"0123456789abcdef0123"
    secret = "whsec_" + base64.b64encode(key).decode()
    body = b'{"type":"job.completed"}'
    mac = base64.b64encode(hmac.new(key, b"msg_1.1700000000." + body, hashlib.sha256).digest()).decode()
    headers = {"webhook-id": "msg_1", "webhook-timestamp": "1700000000", "webhook-signature": f"v1,other v1,{mac}"}
    assert verify_webhook(secret, headers, body, 1700000010)
    assert not verify_webhook(secret, headers, body + b" ", 1700000010)
    assert not verify_webhook(secret, {**headers, "webhook-id": "msg_2"}, body, 1700000010)
    assert not verify_webhook(secret, headers, body, 1700000000 + 301)  # too old
    assert not verify_webhook("whsec_" + base64.b64encode(b"another key 12345").decode(), headers, body, 1700000010)
