"""A tenant's recording policy and the ``recordings`` permission in the tokens file (issue 61):
``record=none|text|audio`` (none unless stated) and ``retention_days`` (fractions allowed) are the
tenant's, stated like its caps; ``recordings`` is never implied by ``*`` or by a line listing no
permission."""

from __future__ import annotations

import pytest

from translate_svc.session.tenants.recording import RecordMode, RecordPolicy
from translate_svc.session.tenants.tenant import ALL_ROOMS, NO_ROOMS
from translate_svc.transport.tokens.file import Permission, TokenFileError, parse_tokens

pytestmark = pytest.mark.unit


def grants(text: str):  # type: ignore[no-untyped-def]
    return [grant for _, grant in parse_tokens(text, "tokens")]


def test_a_tenants_policy_is_read_from_any_of_its_lines() -> None:
    a, b, c = grants("t1 * tenant=acme\nt2 stream tenant=acme record=audio retention_days=0.5\nt3 * tenant=other\n")
    assert a.tenant.record == b.tenant.record == RecordPolicy(RecordMode.AUDIO, 0.5)
    assert c.tenant.record == RecordPolicy(RecordMode.NONE, None)  # nothing kept unless stated


def test_recordings_is_granted_only_when_named() -> None:
    star, none_listed, reader, both = grants("t1 *\nt2\nt3 recordings\nt4 * recordings\n")
    assert Permission.RECORDINGS not in star.permissions and Permission.RECORDINGS not in none_listed.permissions
    assert reader.permissions == {Permission.RECORDINGS} and reader.rooms == NO_ROOMS
    assert Permission.RECORDINGS in both.permissions and both.rooms == ALL_ROOMS


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("t1 record=video\n", "record must be none, text or audio"),
        ("t1 retention_days=0\n", "retention_days must be a number of days over 0"),
        ("t1 retention_days=soon\n", "retention_days must be a number"),
        ("t1 tenant=a record=text\nt2 tenant=a record=audio\n", "has record=text on another line"),
    ],
)
def test_a_bad_policy_is_refused_naming_the_line(text: str, says: str) -> None:
    with pytest.raises(TokenFileError) as e:
        parse_tokens(text, "tokens")
    assert says in str(e.value) and "tokens line" in str(e.value)
