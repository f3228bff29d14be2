"""The realtime handshake's subprotocols as OpenAI's server reads them (issue 51): ``realtime`` is
selected, the key entry is read and never selected, and what cannot be served is refused with a
message that names no client value. Plain values."""

from __future__ import annotations

import pytest

from translate_svc.transport.http.handshake import KEY_PREFIX, Offer, presented_key, read_offer
from translate_svc.transport.openai.wire import REALTIME

pytestmark = pytest.mark.unit

KEY = "rt-key-8f2c"


def test_realtime_is_selected_and_the_key_read_in_any_order_with_routing_entries() -> None:
    assert read_offer(None, REALTIME) == Offer()
    assert read_offer("realtime", REALTIME) == Offer(REALTIME)
    for header in (
        f"realtime, {KEY_PREFIX}{KEY}",
        f"{KEY_PREFIX}{KEY},realtime",  # the order is the client's
        f"realtime, {KEY_PREFIX}{KEY}, openai-organization.org-1, openai-project.p-2, openai-beta.realtime-v1",
    ):
        assert read_offer(header, REALTIME) == Offer(REALTIME, KEY), header
    secret = "ek_1767225600_acme_0011aabbccddeeff_0123456789abcdef0123456789abcdef"
    assert read_offer(f"realtime, {KEY_PREFIX}{secret}", REALTIME).key == secret  # a client secret travels as well


def test_what_cannot_be_served_is_refused_naming_no_client_value() -> None:
    alone = read_offer(f"{KEY_PREFIX}{KEY}", REALTIME)  # no "realtime": the key cannot be selected
    assert (alone.status, alone.code, alone.key) == (400, "invalid_subprotocol", None)
    assert alone.problem is not None and '"realtime"' in alone.problem and KEY not in alone.problem
    other = read_offer("graphql-ws", REALTIME)
    assert other.status == 400 and other.problem is not None
    two = read_offer(f"realtime, {KEY_PREFIX}a, {KEY_PREFIX}b", REALTIME)
    assert two.status == 400 and two.problem is not None and "offer one key" in two.problem
    for bad in ("", "ab/cd", "a=b", "ab cd", 'a"b'):  # not an HTTP token (or nothing)
        offer = read_offer(f"realtime, {KEY_PREFIX}{bad}", REALTIME)
        assert (offer.status, offer.code, offer.protocol) == (401, "missing_api_key", REALTIME), bad
        assert offer.problem is not None and "not an HTTP token" in offer.problem
        assert bad == "" or bad not in offer.problem


def test_the_key_comes_from_authorization_or_the_entry_and_two_different_keys_are_refused() -> None:
    entry = read_offer(f"realtime, {KEY_PREFIX}{KEY}", REALTIME)
    assert presented_key(None, entry) == (KEY, None)
    assert presented_key(KEY, entry) == (KEY, None)  # the same key both ways
    assert presented_key("other", Offer(REALTIME)) == ("other", None)
    assert presented_key(None, Offer()) == (None, None)
    assert presented_key("", entry) == ("", None)  # an Authorization that is no bearer token: refused as before
    token, problem = presented_key("other", entry)
    assert token is None and problem is not None and "two different keys" in problem
    assert "other" not in problem and KEY not in problem
