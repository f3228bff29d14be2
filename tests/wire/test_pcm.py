"""The one float <-> PCM16 conversion (``translate_svc.wire.pcm``), shared by the server and the SDK."""

from __future__ import annotations

import numpy as np
import pytest

from translate_svc.transport.grpc.convert import pcm16
from translate_svc.wire.pcm import float_to_pcm16, pcm16_to_float

pytestmark = pytest.mark.unit


def test_every_pcm16_value_survives_a_round_trip() -> None:
    every = np.arange(-32768, 32768, dtype=np.int16)
    floats = pcm16_to_float(every)
    assert floats.dtype == np.float32 and floats.min() == -1.0 and floats.max() == 32767 / 32768
    np.testing.assert_array_equal(float_to_pcm16(floats), every)
    np.testing.assert_array_equal(float_to_pcm16(floats.astype(np.float64)), every)


def test_full_scale_and_louder_are_clipped_not_wrapped() -> None:
    x = np.array([1.0, 1.5, -1.0, -2.0, 0.5, -0.5, 1 / 65536, 3 / 65536], dtype=np.float32)
    got = float_to_pcm16(x)
    assert got.dtype == np.int16
    # half a step rounds to even: 0.5 -> 0, 1.5 -> 2
    assert got.tolist() == [32767, 32767, -32768, -32768, 16384, -16384, 0, 2]


def test_the_wire_bytes_of_speech_use_the_same_scale() -> None:
    x = np.array([0.25, -0.25, 1.0, -1.0], dtype=np.float32)
    assert np.frombuffer(pcm16(x), "<i2").tolist() == [8192, -8192, 32767, -32768]
