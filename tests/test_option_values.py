"""Option values check themselves as they are made (``types.OutputOptions``, ``DubFit``,
``EarOptions``): a value out of range raises ``OptionError`` naming its field inside the options,
and a door renames it where its message holds the options (``options_at``), so no options with a
bad value exist past a door and no check is repeated behind it."""

from __future__ import annotations

import ast
import dataclasses
import pathlib

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


def _range_comparisons(tree: ast.AST) -> list[int]:
    """The lines of ``tree`` that compare a value with ``SPEED_MIN`` or ``SPEED_MAX``."""
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Compare)
        and any(isinstance(n, ast.Name) and n.id in ("SPEED_MIN", "SPEED_MAX") for n in ast.walk(node))
    ]


def test_a_speaking_rates_range_is_compared_in_one_place() -> None:
    """``types.is_speed`` is the range: every door, option and model input reads it (through
    ``check_speed`` or the options' own checks), so no second copy can drift from it."""
    root = pathlib.Path(__file__).resolve().parents[1] / "translate_svc"
    found = {
        str(path.relative_to(root)): lines
        for path in sorted(root.rglob("*.py"))
        if (lines := _range_comparisons(ast.parse(path.read_text(), str(path))))
    }
    assert found == {"types.py": found.get("types.py", [])} and len(found["types.py"]) == 1, found


def test_the_range_walk_finds_a_second_copy() -> None:
    copy = ast.parse("def door(v):\n    if not SPEED_MIN <= v <= SPEED_MAX:\n        raise ValueError(v)\n")
    assert _range_comparisons(copy) == [2]
