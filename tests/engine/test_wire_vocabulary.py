"""The remote engine's wire carries the engine's own job vocabulary (model_api/requests.py) as it is:
every field of every job type crosses it, with its value, numpy arrays with their dtype and shape
(issue 69). A field added to a job type without a way across fails here, not in production."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from translate_svc.engine.remote import wire
from translate_svc.engine.results import EngineResult
from translate_svc.model_api import requests
from translate_svc.model_api.requests import (
    DETECTED,
    Features,
    ModelInput,
    ModelOutput,
    Rendition,
    SimulRequest,
    SimulRowOutput,
    SimulTarget,
    SourceText,
    SpeechFit,
)
from translate_svc.model_api.turns import TurnPrior
from translate_svc.types import PartySpeech, Profanity, SegmentError, SpokenUnits, Term, TraceRef, WordTiming

pytestmark = pytest.mark.unit

WORDS = (WordTiming("hola", 0, 180, logprob=-0.5), WordTiming("mundo", 180, 420, logprob=-1.25))


def full_input() -> ModelInput:
    """A segment with every field away from its default."""
    features = Features(np.arange(12, dtype=np.float32).reshape(3, 4), np.array([1, 1, 0], np.int64))
    return ModelInput(
        np.linspace(-1, 1, 160, dtype=np.float32),
        ("spa", "fra"),
        DETECTED,
        speech=False,
        speaker_id=3,
        detect=("eng", "deu"),
        terms=(Term("Acme", keep=True), Term("gRPC", weight=5.0)),
        features=features,
        words=True,
        profanity=Profanity.MASK,
        speed=1.5,  # issue 90: the speaking rate crosses to the engine's vocoder
        renditions=(("fra", 0.75), ("spa", 2.0)),  # and a room's listeners' other rates
        keep_units=True,  # a room speaker's segment keeps its units for its renditions
    )


KEPT = SpokenUnits("spa", 1, np.arange(7, dtype=np.int64), np.array([2, 0, 5, 0], np.int64), (3, 256047, 9, 3), 1.25)


def full_respeak() -> ModelInput:
    """Kept units spoken again at listeners' rates: the vocoder alone."""
    return ModelInput(np.zeros(0, np.float32), ("spa",), speech=True, renditions=(("spa", 0.75),), respeak=(KEPT,))


def full_conversation() -> ModelInput:
    """A conversation's segment: the language detected among its languages is its transcript,
    leaning on the previous turn's; the speech into Spanish in its party's voice, into English at
    its party's rate."""
    langs = ("eng", "spa", "fra")
    prior = TurnPrior("spa", margin=0.25)
    parties = PartySpeech(voices=(("spa", 2),), speeds=(("eng", 1.25),))
    return ModelInput(
        np.ones(160, np.float32), langs, DETECTED, detect=langs, conversation=True, prior=prior, parties=parties
    )


def full_step() -> ModelInput:
    targets = (
        SimulTarget("spa", (5, 6, 7), 2, 40, ((5, 6), (5, 6, 7)), (-0.5, -0.25, -1.5)),
        SimulTarget("fra", (8,), 1, 10, ((8,),)),
    )
    return ModelInput(
        np.ones(320, np.float32),
        ("spa", "fra"),
        "eng",
        simul=SimulRequest(targets, final=True, min_units=7, agreement=3, hold_last_word=False),
    )


def full_text() -> ModelInput:
    return ModelInput(
        np.zeros(0, np.float32),
        ("spa",),
        None,
        speech=True,
        text=SourceText("hello there", "eng"),
        fit=SpeechFit(2500.0, 0.9, 1.25),  # issue 90: dubbing to the source's clock crosses too
    )


def written_text() -> ModelInput:
    """A text said as written (a dub's edited line, a subtitle's cue)."""
    return ModelInput(
        np.zeros(0, np.float32), ("spa",), None, text=SourceText("hola", "spa", as_written=True), speaker_id=3
    )


def full_output() -> ModelOutput:
    row = SimulRowOutput(
        "spa", (5, 6), "hola mundo", (0, 1), (5, 6), "hola mundo", 20, tuple(range(20)),
        np.full(6720, 0.25, np.float32), 2, 20, chunk_words=WORDS, logprobs=(-0.5, -0.75), end_logprob=-0.125,
        chunk_rate=1.25,
    )  # fmt: skip
    return ModelOutput(
        "hello world",
        {"spa": "hola mundo"},
        {"spa": np.linspace(0, 1, 800, dtype=np.float32)},
        {"eng": 0.25, "spa": 0.75},
        spoken="eng",
        speech_ms=1.5,
        language_id_ms=2.5,
        simul={"spa": row},
        words={"spa": WORDS},
        transcript_words=(WordTiming("hello", 0, 320, logprob=-0.75),),
        transcript_logprob=-0.625,
        logprobs={"spa": -0.875},
        transcript_tokens=((" hello", -0.5), (" world", -0.75)),
        speech_rates={"spa": 1.125},
        renditions=(Rendition("spa", 1.5, np.linspace(0, 1, 533, dtype=np.float32), WORDS),),
        units=(KEPT,),
    )


def same(a: object, b: object, where: str) -> None:
    """Deep equality of the vocabulary's values, arrays by value, dtype and shape."""
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray), where
        assert (a.dtype, a.shape) == (b.dtype, b.shape), where
        assert np.array_equal(a, b), where
    elif dataclasses.is_dataclass(a) and not isinstance(a, type):
        assert type(a) is type(b), where
        for f in dataclasses.fields(a):
            same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b), f"{where}: {a!r} != {b!r}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def set_fields(value: object, seen: set[tuple[type, str]]) -> None:
    """Every (job type, field) that holds a value other than its default somewhere in ``value``."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            default = f.default if f.default is not dataclasses.MISSING else None
            if f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            if not (isinstance(v, type(default)) and not isinstance(v, np.ndarray) and v == default):
                seen.add((type(value), f.name))
            set_fields(v, seen)
    elif isinstance(value, dict):
        for v in value.values():
            set_fields(v, seen)
    elif isinstance(value, tuple):
        for v in value:
            set_fields(v, seen)


@pytest.mark.parametrize("make", [full_input, full_conversation, full_step, full_text, written_text, full_respeak])
def test_every_field_of_a_job_crosses_to_the_engine(make) -> None:  # type: ignore[no-untyped-def]
    item = make()
    got = wire.decode(wire.encode(wire.submit_of(7, "owner", item, droppable=True)), wire.ToEngine)
    assert isinstance(got, wire.Submit) and (got.job, got.owner, got.droppable) == (7, "owner", True)
    same(item, wire.model_input(got), "ModelInput")
    assert wire.model_input(got).kind is item.kind


def test_every_field_of_a_result_crosses_back() -> None:
    result = EngineResult(
        full_output(), SegmentError("bad", "why"), 1.0, 2.0, 3, TraceRef(2**127 + 5, 2**63 + 1), 0.5, 1
    )
    got = wire.decode(wire.encode(wire.result_of(9, result)), wire.ToWorker)
    assert isinstance(got, wire.Result)
    same(result, wire.job_result(got), "EngineResult")


def test_the_tests_set_every_field_of_every_job_type() -> None:
    """The round trips above hold a value other than the default in every field of every dataclass
    of the vocabulary, so a new field is covered only once a test gives it a value."""
    seen: set[tuple[type, str]] = set()
    made = (full_input(), full_conversation(), full_step(), full_text(), written_text(), full_respeak(), full_output())
    for value in made:
        set_fields(value, seen)
    vocabulary = [
        v for v in vars(requests).values()
        if isinstance(v, type) and dataclasses.is_dataclass(v) and v.__module__ == requests.__name__
    ]  # fmt: skip
    assert {Features, SourceText, ModelInput, SimulTarget, SimulRequest, SimulRowOutput, ModelOutput, Rendition} <= set(
        vocabulary
    )
    missing = [f"{t.__name__}.{f.name}" for t in vocabulary for f in dataclasses.fields(t) if (t, f.name) not in seen]
    assert not missing, f"no round trip gives these fields a value: {missing}"


def test_an_array_of_a_type_the_wire_does_not_carry_is_refused_when_sent() -> None:
    item = dataclasses.replace(full_input(), audio=np.ones(4, np.complex64))
    with pytest.raises(NotImplementedError, match="complex64"):
        wire.encode(wire.submit_of(1, "o", item, droppable=False))
