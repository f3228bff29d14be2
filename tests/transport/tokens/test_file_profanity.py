"""A tenant's profanity filter default in the tokens file (issue 72): ``profanity=off|mask|remove``
(off unless stated), stated like its caps, applied to its calls that set none."""

from __future__ import annotations

import pytest

from translate_svc.session.task.change import for_tenant
from translate_svc.session.tenants.tenant import DEFAULT_TENANT
from translate_svc.transport.tokens.file import TokenFileError, parse_tokens
from translate_svc.types import OutputOptions, Profanity, TranslationTask

pytestmark = pytest.mark.unit


def test_a_tenants_default_is_read_from_any_of_its_lines_and_applies_where_unset() -> None:
    a, b, c = (g for _, g in parse_tokens("t1 * tenant=kids\nt2 * tenant=kids profanity=remove\nt3 *\n", "tokens"))
    assert a.tenant.profanity is b.tenant.profanity is Profanity.REMOVE
    assert c.tenant.profanity is Profanity.OFF and c.tenant == DEFAULT_TENANT
    unset = TranslationTask("eng", ("spa",))
    assert for_tenant(unset, a.tenant).output.profanity is Profanity.REMOVE
    own = TranslationTask("eng", ("spa",), OutputOptions(profanity=Profanity.OFF))
    assert for_tenant(own, a.tenant) is own


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("t1 profanity=bleep\n", "profanity must be off, mask or remove, got 'bleep'"),
        ("t1 profanity=MASK\n", "profanity must be off, mask or remove"),
        ("t1 tenant=a profanity=mask\nt2 tenant=a profanity=off\n", "has profanity=mask on another line"),
    ],
)
def test_a_bad_value_is_refused_naming_the_line_and_the_field(text: str, says: str) -> None:
    with pytest.raises(TokenFileError) as e:
        parse_tokens(text, "tokens")
    assert says in str(e.value) and "tokens line" in str(e.value)
