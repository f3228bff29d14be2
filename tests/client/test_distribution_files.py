"""Which distribution owns which files (issue 58): the server's ``translate_svc.audio`` is the
server's alone, what both sides of the wire share is the client's ``translate_svc.wire``, and the
SDK ships no test tooling (the protobuf-level helpers are ``tests/support/raw.py``)."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import pytest

from tests.support.paths import REPO

pytestmark = pytest.mark.unit

CLIENT_SRC = REPO / "clients/python/src/translate_svc"
SERVER_SRC = REPO / "translate_svc"


def test_the_servers_audio_package_is_the_servers_alone() -> None:
    audio = importlib.import_module("translate_svc.audio")
    # a regular package of the server's tree, not a namespace merged from both distributions
    assert audio.__file__ is not None and Path(audio.__file__) == SERVER_SRC / "audio/__init__.py"
    assert [Path(p) for p in audio.__path__] == [SERVER_SRC / "audio"]
    assert not (CLIENT_SRC / "audio").exists() or not list((CLIENT_SRC / "audio").rglob("*.py"))


def test_what_both_sides_share_is_the_clients_wire_package() -> None:
    for name in ("pcm", "rates", "opus_toc"):
        module = importlib.import_module(f"translate_svc.wire.{name}")
        assert module.__file__ is not None and Path(module.__file__) == CLIENT_SRC / f"wire/{name}.py"
        assert importlib.util.find_spec(f"translate_svc.audio.{name}") is None
    # the server's checks read the client's rates: one definition on both sides
    from translate_svc.audio import limits
    from translate_svc.wire import rates

    assert (limits.MIN_SAMPLE_RATE_HZ, limits.MAX_SAMPLE_RATE_HZ, limits.OPUS_RATE) == (
        rates.MIN_SAMPLE_RATE_HZ,
        rates.MAX_SAMPLE_RATE_HZ,
        rates.OPUS_RATE,
    )


def test_the_sdk_ships_no_test_tooling() -> None:
    assert importlib.util.find_spec("translate_svc.client.raw") is None
    assert not list(CLIENT_SRC.rglob("raw.py"))
    from tests.support import raw

    assert callable(raw.channel) and callable(raw.stream_pcm) and callable(raw.translate_file)
