"""Client secrets for one room (issue 62: the MCP door's ``open_room`` mints them for a room's
speaker and listeners): a secret carries its room and its role, signed with the rest; a tampered
room is no secret; a room's name with every character a room may have comes back whole; and the
old secrets (no room) read as before."""

from __future__ import annotations

import pytest

from translate_svc.transport.http.client_secrets import LISTEN, PUBLISH, Claims, ClientSecrets

pytestmark = pytest.mark.unit


def secrets() -> ClientSecrets:
    return ClientSecrets("k" * 32, 600, clock=lambda: 1_000_000.0)


@pytest.mark.parametrize("role", [PUBLISH, LISTEN])
@pytest.mark.parametrize("room", ["town-hall", "a", "Room_1.x-2", "9" * 64])
def test_a_rooms_secret_carries_its_room_and_role(room: str, role: str) -> None:
    s = secrets()
    value, expires = s.mint(tenant="acme", room=room, role=role)
    assert expires == 1_000_600
    assert s.claims(value) == Claims("acme", False, room, role)


def test_a_tampered_room_is_no_secret() -> None:
    s = secrets()
    value, _ = s.mint(tenant="acme", room="town", role=LISTEN)
    other = value.replace(b"town".hex(), b"gown".hex())
    assert other != value and s.claims(other) is None


def test_a_secret_without_a_room_reads_as_before() -> None:
    s = secrets()
    value, _ = s.mint(tenant="acme")
    assert s.claims(value) == Claims("acme")
    page, _ = s.mint(tenant="demo", page=True)
    assert s.claims(page) == Claims("demo", True)
