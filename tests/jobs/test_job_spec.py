"""A job's spec as it is stored (issue 91): every output and ear option survives the store's JSON,
and a spec stored before they existed (issue 73's: speech, transcript and word timings only) reads
each as its default, so jobs queued across an upgrade run as they were asked."""

from __future__ import annotations

import json

import pytest

from translate_svc.jobs.model import JobSpec
from translate_svc.types import AudioEncoding, EarOptions, OutputOptions, Profanity

pytestmark = pytest.mark.unit


def test_every_option_survives_the_stores_json() -> None:
    spec = JobSpec(
        AudioEncoding.LINEAR16,
        24000,
        2,
        "eng",
        ("spa", "fra"),
        speech=True,
        transcript=False,
        word_timings=False,
        text=False,
        speech_sample_rate_hz=48000,
        speaker_id=1,
        profanity=Profanity.MASK,
        speed=1.25,
        ear=EarOptions(noise_suppression=True, speakers=3),
        glossaries=("g1",),
        url="https://media.example.org/a.wav",
    )
    assert JobSpec.from_json(spec.to_json()) == spec
    assert spec.output == OutputOptions(
        text=False,
        speech=True,
        transcript=False,
        speech_sample_rate_hz=48000,
        speaker_id=1,
        word_timings=False,
        profanity=Profanity.MASK,
        speed=1.25,
    )


def test_a_spec_stored_before_the_options_reads_their_defaults() -> None:
    old = {
        "encoding": "CONTAINER",
        "sample_rate_hz": 0,
        "channels": 1,
        "source_language": "eng",
        "target_languages": ["spa"],
        "speech": True,
        "transcript": True,
        "word_timings": True,
        "glossaries": [],
        "url": "",
    }
    spec = JobSpec.from_json(json.dumps(old))
    assert spec.profanity is None and spec.ear == EarOptions() and spec.text is True
    assert spec.track_rate == 16000 and spec.speaker_id == 0
    assert spec.speed == 1.0 and spec.output.speed == 1.0  # issue 90: the model's own rate
