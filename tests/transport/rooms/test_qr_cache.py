"""Issue 57: the listen page's QR codes (``transport/rooms/qr.py``) as plain values: kept by
address (least recently used out), new ones drawn within a token bucket, beyond it ``QrBusy``;
issue 68 H15, each address's share; issue 87 (H15's residual), half the bucket kept for the rooms
open on the process."""

from __future__ import annotations

import itertools

import pytest

from translate_svc.transport.rooms.qr import QrBusy, QrCodes, draw_svg, source_of

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def codes(draws_per_s: float = 2.0, entries: int = 3) -> tuple[QrCodes, list[str], Clock]:
    drawn: list[str] = []
    clock = Clock()

    def draw(url: str) -> bytes:
        drawn.append(url)
        return url.encode()

    return QrCodes(draws_per_s, entries, draw=draw, clock=clock), drawn, clock


def test_the_same_address_is_drawn_once_and_served_from_the_cache() -> None:
    qr, drawn, _ = codes(draws_per_s=4.0)
    assert qr.get("http://h/listen/a") == b"http://h/listen/a"
    for _ in range(50):  # past the bucket: a kept code costs no draw
        assert qr.get("http://h/listen/a") == b"http://h/listen/a"
    assert drawn == ["http://h/listen/a"] and qr.draws == 1
    # the exact address is the key: another host, or #demo, is another code
    qr.get("http://h/listen/a#demo")
    qr.get("http://other/listen/a")
    assert drawn[1:] == ["http://h/listen/a#demo", "http://other/listen/a"]


def test_new_draws_are_bounded_by_the_bucket_and_refused_beyond_it() -> None:
    qr, drawn, clock = codes(draws_per_s=2.0, entries=100)
    for k in range(2):  # a burst of 2 s' worth, half of it kept for open rooms
        qr.get(f"u{k}")
    with pytest.raises(QrBusy) as e:
        qr.get("u2")
    assert e.value.retry_after_s == 0.5 and "rooms.qr_draws_per_s" in str(e.value)
    assert len(drawn) == 2
    clock.now += 0.5  # one draw back
    qr.get("u2")
    with pytest.raises(QrBusy):
        qr.get("u3")
    clock.now += 60  # a long quiet spell banks no more than the burst
    for k in range(4, 6):
        qr.get(f"u{k}")
    with pytest.raises(QrBusy):
        qr.get("u6")
    assert qr.draws == 5


def test_the_cache_keeps_the_most_recently_used_codes() -> None:
    qr, drawn, _ = codes(draws_per_s=100.0, entries=2)
    qr.get("a")
    qr.get("b")
    qr.get("a")  # a is now the most recent
    qr.get("c")  # b goes
    assert len(qr) == 2
    qr.get("a")
    qr.get("b")
    assert drawn == ["a", "b", "c", "b"]


def test_a_real_code_is_an_svg_naming_its_address() -> None:
    svg = draw_svg("http://127.0.0.1:8080/listen/hall")
    assert svg.startswith(b"<?xml") and b"<svg" in svg and b"/listen/hall" in svg


def test_one_source_spends_at_most_its_share_and_leaves_the_rest_to_others() -> None:
    """Issue 68 H15: each client address draws from its own share (here 1 a second, 2 s' worth) in
    front of the process's bucket (4 a second, 8): one source asking for new codes without end gets
    its share, another source's code is still drawn at once."""
    drawn: list[str] = []
    clock = Clock()
    qr = QrCodes(4.0, 100, source_draws_per_s=1.0, draw=lambda u: drawn.append(u) or u.encode(), clock=clock)
    got = 0
    for k in range(100):  # 10 s of a stranger asking 10 times a second
        try:
            qr.get(f"stranger-{k}", "203.0.113.7")
            got += 1
        except QrBusy as e:
            assert "rooms.qr_source_draws_per_s" in str(e) and e.retry_after_s > 0
        clock.now += 0.1
    assert got <= 2 + 10  # its burst, then 1 a second
    assert qr.get("speaker", "198.51.100.1") == b"speaker"
    # an IPv6 /64 is one source; an IPv4-mapped peer is its IPv4 address
    for k in range(2):
        qr.get(f"v6-{k}", f"2001:db8:1:2::{k + 1}")
    with pytest.raises(QrBusy):
        qr.get("v6-2", "2001:db8:1:2:ffff::9")
    with pytest.raises(QrBusy):
        qr.get("mapped", "::ffff:203.0.113.7")
    assert source_of("2001:db8:1:2::1") == source_of("2001:db8:1:2:ab::1") != source_of("2001:db8:1:3::1")


def test_a_source_refused_by_the_process_keeps_its_share() -> None:
    clock = Clock()
    qr = QrCodes(1.0, 100, source_draws_per_s=0.5, draw=str.encode, clock=clock)
    qr.get("a", "10.0.0.1")  # the process's bucket holds 2: one left, kept for open rooms
    with pytest.raises(QrBusy) as e:
        qr.get("c", "10.0.0.3")
    assert "rooms.qr_draws_per_s" in str(e.value)
    clock.now += 1.0  # one back in the process's bucket: 10.0.0.3's share is still whole
    assert qr.get("c", "10.0.0.3") == b"c"


def test_strangers_on_many_addresses_leave_an_open_room_its_codes() -> None:
    """Issue 87 (H15's residual): 32 addresses, each within its share, asked for new codes without
    end and spent the process's whole bucket; a speaker's page got 503. Names that no room open
    here has draw only while the bucket holds more than half of what it can: an open room's page
    still gets both its codes (its share: 1 a second, 2 s' worth), and strangers asking for that
    room's codes under new Hosts spend that share alone."""
    clock = Clock()
    open_rooms = {"town-hall"}
    looked: list[float] = []

    def rooms() -> set[str]:
        looked.append(clock.now)
        return open_rooms

    qr = QrCodes(4.0, 1000, source_draws_per_s=1.0, draw=str.encode, clock=clock, open_rooms=rooms)
    got = 0
    for step in range(100):  # 10 s of 32 addresses asking 10 times a second each
        for k in range(32):
            try:
                qr.get(f"stranger-{step}-{k}", f"203.0.113.{k}", f"r{step}-{k}")
                got += 1
            except QrBusy:
                pass
        clock.now += 0.1
    assert got <= 4 + 4 * 10 + 1  # half the burst, then the bucket's 4 a second (+ the clock's edge)
    assert qr.get("http://h/listen/town-hall", "198.51.100.1", "town-hall")
    assert qr.get("http://h/listen/town-hall#demo", "198.51.100.1", "town-hall")
    with pytest.raises(QrBusy):  # a name no room has, from a fresh address: the bucket is at its reserve
        qr.get("http://h/listen/elsewhere", "198.51.100.2", "elsewhere")
    clock.now += 2.0  # the bucket full again; the open room's share too
    taken = 0
    for k in range(20):  # an open room's codes under ever new Hosts, from many addresses
        try:
            qr.get(f"http://h{k}/listen/town-hall", f"192.0.2.{k}", "town-hall")
            taken += 1
        except QrBusy as e:
            assert "one open room" in str(e)
    assert taken == 2
    assert min(b - a for a, b in itertools.pairwise(looked)) >= 0.5 - 1e-6  # looked at most every 0.5 s
