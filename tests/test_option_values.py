"""Option values check themselves as they are made (``types.OutputOptions``, ``DubFit``,
``EarOptions``): a value out of range raises ``OptionError`` naming its field inside the options,
and a door renames it where its message holds the options (``options_at``), so no options with a
bad value exist past a door and no check is repeated behind it."""

from __future__ import annotations

import dataclasses

import pytest

from translate_svc.errors import InvalidInput
from translate_svc.session.task.checks import options_at
from translate_svc.types import MAX_SPEAKERS, DubFit, EarOptions, OptionError, OutputOptions

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: OutputOptions(speed=2.5), "speed"),
        (lambda: OutputOptions(speed=float("nan")), "speed"),
        (lambda: dataclasses.replace(OutputOptions(), speed=0.1), "speed"),
        (lambda: DubFit(0.3, 1.2), "slowest"),
        (lambda: DubFit(1.0, 9.0), "fastest"),
        (lambda: DubFit(1.5, 1.2), "slowest"),
        (lambda: EarOptions(speakers=MAX_SPEAKERS + 1), "speakers"),
        (lambda: EarOptions(speakers=-1), "speakers"),
    ],
)
def test_a_value_out_of_range_is_refused_as_the_options_are_made(make: object, field: str) -> None:
    with pytest.raises(OptionError) as e:
        make()  # type: ignore[operator]
    assert e.value.field == field and str(e.value).startswith(f"{field} ")


def test_a_door_names_the_field_where_its_message_holds_it() -> None:
    with pytest.raises(InvalidInput) as e, options_at("output."):
        OutputOptions(speed=3.0)
    assert str(e.value).startswith("output.speed must be a number from 0.5 to 2.0")
    with pytest.raises(InvalidInput) as f, options_at("output.fit."):
        DubFit(1.5, 1.2)
    assert str(f.value) == "output.fit.slowest (1.5) must not be above output.fit.fastest (1.2)"


def test_values_in_range_are_kept_and_whole_rates_are_floats() -> None:
    o = OutputOptions(speed=2, fit=DubFit(1, 2))
    assert o.speed == 2.0 and isinstance(o.speed, float)
    assert o.fit == DubFit(1.0, 2.0) and isinstance(o.fit.slowest, float)
    assert EarOptions(speakers=MAX_SPEAKERS).speakers == MAX_SPEAKERS
