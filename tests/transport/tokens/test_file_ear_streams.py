"""A tenant's cap on streams with the ear in the tokens file (issue 87 J1): ``ear_streams=N``
(0: none may ask for noise suppression or speaker labels), stated like its caps; unstated, the
tenant has no cap of its own, but for tenant ``demo`` (the demo page's), which gets
``limits.demo_ear_streams`` (0 unless the operator raises it)."""

from __future__ import annotations

import pytest

from translate_svc.session.stream.ear import ear_cap
from translate_svc.session.tenants.tenant import DEMO_TENANT
from translate_svc.settings import LimitsSettings
from translate_svc.transport.tokens.file import TokenFileError, parse_tokens

pytestmark = pytest.mark.unit


def test_a_tenants_ear_streams_is_read_from_any_of_its_lines_and_zero_is_a_cap() -> None:
    text = "t1 * tenant=a\nt2 stream tenant=a ear_streams=2\nt3 * tenant=b ear_streams=0\nt4 *\nt5 * tenant=demo\n"
    a1, a2, b, default, demo = (g.tenant for _, g in parse_tokens(text, "tokens"))
    limits = LimitsSettings()
    assert a1.caps.ear_streams == a2.caps.ear_streams == 2 and ear_cap(a1, limits) == 2
    assert b.caps.ear_streams == 0 and ear_cap(b, limits) == 0
    assert default.caps.ear_streams is None and ear_cap(default, limits) is None
    assert demo.name == DEMO_TENANT and ear_cap(demo, limits) == 0  # the demo page's: refused by default
    assert ear_cap(demo, LimitsSettings(demo_ear_streams=3)) == 3
    stated = next(g.tenant for _, g in parse_tokens("t1 * tenant=demo ear_streams=5\n", "tokens"))
    assert ear_cap(stated, limits) == 5  # a line for tenant demo states its own


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("t1 ear_streams=-1\n", "ear_streams must be a number of at least 0, got '-1'"),
        ("t1 ear_streams=many\n", "ear_streams must be a number of at least 0, got 'many'"),
        ("t1 tenant=a ear_streams=1\nt2 tenant=a ear_streams=2\n", "ear_streams=1 on another line"),
    ],
)
def test_a_bad_value_is_refused_naming_the_line_and_the_field(text: str, says: str) -> None:
    with pytest.raises(TokenFileError) as e:
        parse_tokens(text, "tokens")
    assert says in str(e.value) and "tokens line" in str(e.value)
