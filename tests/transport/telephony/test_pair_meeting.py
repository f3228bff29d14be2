"""Two-party legs meet through the cluster store (issue 59), checked on the seam itself: each leg a
holder of its own over one ``ClusterState`` (as two workers of a node are holders of one hub), so a
leg meets its partner wherever it landed. The legs' ``Listener`` is a recorder; what a leg sends
arrives at the other leg, in order, and at no one else.

- two legs of one tenant's call meet; a third is refused with the message a third leg always got;
  another tenant naming the same call id meets neither and hears nothing;
- a leg gives its place back when it ends, and its partner is told (``Left``);
- a leg alone past the partner timeout is told so; one whose partner came in time never is;
- the store down as a leg joins: refused, UNAVAILABLE, saying what to do; down under a joined leg:
  nothing raises, what could not pass is counted, and it flows again once the store is back.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.support.switchable_store import SwitchableStore
from tests.support.waiting import until
from translate_svc.cluster.memory import MemoryStore
from translate_svc.cluster.state import ClusterState
from translate_svc.cluster.store import StoreUnavailable
from translate_svc.errors import InvalidInput
from translate_svc.transport.telephony import pair_wire as wire
from translate_svc.transport.telephony.call import CallCodec
from translate_svc.transport.telephony.pairs import TWO_LEGS, PairLeg, Pairs
from translate_svc.types import AudioEncoding

pytestmark = [pytest.mark.unit, pytest.mark.asyncio(loop_scope="function")]

ULAW = CallCodec(AudioEncoding.MULAW, 8000)
SLIN = CallCodec(AudioEncoding.LINEAR16, 8000)


class Recorder:
    """A leg's own side: what its partner sent, and whether it was left alone."""

    def __init__(self) -> None:
        self.got: list[wire.Message] = []
        self.alone_after: float | None = None
        self.changed = asyncio.Event()

    def heard(self, message: wire.Message) -> None:
        self.got.append(message)
        self.changed.set()

    def alone(self, seconds: float) -> None:
        self.alone_after = seconds
        self.changed.set()

    async def until(self, n: int, timeout_s: float = 5.0) -> list[wire.Message]:
        async with asyncio.timeout(timeout_s):
            while len(self.got) < n:
                self.changed.clear()
                await self.changed.wait()
        return self.got


def two_workers(**kw: float) -> tuple[Pairs, Pairs]:
    state = ClusterState()
    timeout = kw.get("partner_timeout_s", 60.0)
    return Pairs(MemoryStore(state, holder="w0"), timeout), Pairs(MemoryStore(state, holder="w1"), timeout)


async def met(leg: PairLeg, partner: PairLeg | None = None, timeout_s: float = 5.0) -> None:
    """Until ``leg`` sees a partner (``partner``, when given)."""
    await until(lambda: leg.partner is not None and (partner is None or leg.partner == partner.id), timeout_s)


async def test_two_legs_of_a_call_on_two_workers_meet_and_hear_each_other_in_order() -> None:
    w0, w1 = two_workers()
    a_side, b_side, foreign_side = Recorder(), Recorder(), Recorder()
    a = await w0.join(("acme", "c1"), wire.LegInfo(ULAW, "twilio"), a_side)
    foreign = await w1.join(("rival", "c1"), wire.LegInfo(ULAW, "twilio"), foreign_side)
    b = await w1.join(("acme", "c1"), wire.LegInfo(SLIN, "asterisk"), b_side)
    await met(a)
    await met(b)
    assert a.partner == b.id and b.partner == a.id
    assert a.partner_info == wire.LegInfo(SLIN, "asterisk") and b.partner_info == wire.LegInfo(ULAW, "twilio")
    assert foreign.partner is None, "another tenant's leg met the call"
    # the third leg of the call is refused as a third leg always was; the foreign one is not the third
    with pytest.raises(InvalidInput, match="already has two legs") as refused:
        await w0.join(("acme", "c1"), wire.LegInfo(ULAW, "twilio"), Recorder())
    assert str(refused.value) == TWO_LEGS
    # A's translation, voice and marks reach B in the order sent; B's played mark goes back to A
    sent: list[wire.Message] = [
        wire.Original(ULAW, b"\x01" * 160),
        wire.Speech(ULAW, b"\x02" * 800),
        wire.Original(ULAW, b"\x03" * 160),
        wire.Mark(1, 7),
    ]
    for message in sent:
        assert a.send(message)
    assert await b_side.until(4) == sent
    assert b.send(wire.Played(1)) and b.send(wire.Cleared(0.5))
    assert await a_side.until(2) == [wire.Played(1), wire.Cleared(0.5)]
    # A ends: B is told, and A's place is free for another leg
    await a.close()
    assert (await b_side.until(5))[-1] == wire.Left()
    c = await w0.join(("acme", "c1"), wire.LegInfo(ULAW, "twilio"), Recorder())
    await met(b, c)
    await asyncio.sleep(0.1)
    assert foreign_side.got == [] and foreign.partner is None, "another tenant's leg heard the call"
    for leg in (b, c, foreign):
        await leg.close()


async def test_a_leg_alone_past_the_partner_timeout_is_told_and_a_met_one_never() -> None:
    w0, w1 = two_workers(partner_timeout_s=0.3)
    lone_side, a_side, b_side = Recorder(), Recorder(), Recorder()
    lone = await w0.join(("acme", "nobody-comes"), wire.LegInfo(ULAW, "twilio"), lone_side)
    a = await w0.join(("acme", "c2"), wire.LegInfo(ULAW, "twilio"), a_side)
    await asyncio.sleep(0.1)
    b = await w1.join(("acme", "c2"), wire.LegInfo(ULAW, "twilio"), b_side)
    await asyncio.sleep(0.6)
    assert lone_side.alone_after == 0.3
    assert a_side.alone_after is None and b_side.alone_after is None
    for leg in (lone, a, b):
        await leg.close()


async def test_the_store_down_refuses_a_new_leg_and_never_cuts_a_joined_one() -> None:
    state = ClusterState()
    s0, s1 = SwitchableStore(state, holder="w0"), SwitchableStore(state, holder="w1")
    w0, w1 = Pairs(s0, 60.0, "refuse"), Pairs(s1, 60.0, "refuse")
    a_side, b_side = Recorder(), Recorder()
    a = await w0.join(("acme", "c3"), wire.LegInfo(ULAW, "twilio"), a_side)
    b = await w1.join(("acme", "c3"), wire.LegInfo(ULAW, "twilio"), b_side)
    await met(a)
    s0.down = s1.down = True
    with pytest.raises(StoreUnavailable, match="two-party calls meet through the cluster store") as refused:
        await w0.join(("acme", "c4"), wire.LegInfo(ULAW, "twilio"), Recorder())
    assert refused.value.retry_after_ms is not None
    # the joined legs go on: a send while the store is down is counted, never raised
    assert a.send(wire.Speech(ULAW, b"\x05" * 160))
    await until(lambda: a.lost > 0)
    assert a.lost == 1 and b_side.got == []
    s0.down = s1.down = False
    assert a.send(wire.Speech(ULAW, b"\x06" * 160))
    assert await b_side.until(1) == [wire.Speech(ULAW, b"\x06" * 160)]
    await a.close()
    await b.close()


async def test_the_wire_carries_each_message_and_refuses_what_is_not_one() -> None:
    messages: list[wire.Message] = [
        wire.Speech(SLIN, b"\x00\x01" * 80),
        wire.Original(CallCodec(AudioEncoding.ALAW, 8000), b"\xd5" * 160),
        wire.Mark(3, 2**40),
        wire.Played(3),
        wire.Cleared(1.25),
        wire.Left(),
    ]
    assert wire.unpack(wire.pack([wire.encode(m) for m in messages])) == messages
    info = wire.LegInfo(SLIN, "asterisk")
    assert wire.LegInfo.from_bytes(info.to_bytes()) == info
    for bad in (b"X", b"S\x09\x00", b"M\x00"):
        with pytest.raises(wire.WireError):
            wire.decode(bad)
    with pytest.raises(wire.WireError):
        wire.unpack(b"\x05\x00\x00\x00L")


async def test_under_node_legs_meet_on_their_process_while_the_store_is_down_and_join_it_once_back() -> None:
    """``cluster.on_redis_loss = "node"``: two legs of a call arriving on one process while the store
    is down meet there (a third is refused as ever) and pass their media directly; a leg waiting
    alone takes its place in the store once it answers, and meets a partner on another process."""
    state = ClusterState()
    s0, s1 = SwitchableStore(state, holder="w0"), SwitchableStore(state, holder="w1")
    w0, w1 = Pairs(s0, 60.0), Pairs(s1, 60.0)
    s0.down = s1.down = True
    a_side, b_side, lone_side, far_side = Recorder(), Recorder(), Recorder(), Recorder()
    a = await w0.join(("acme", "c5"), wire.LegInfo(ULAW, "twilio"), a_side)
    b = await w0.join(("acme", "c5"), wire.LegInfo(SLIN, "asterisk"), b_side)
    assert (a.partner, b.partner, b.partner_info) == (b.id, a.id, wire.LegInfo(ULAW, "twilio"))
    with pytest.raises(InvalidInput) as third:
        await w0.join(("acme", "c5"), wire.LegInfo(ULAW, "twilio"), Recorder())
    assert third.value.message == TWO_LEGS
    assert a.send(wire.Speech(ULAW, b"\x01" * 160))
    assert await b_side.until(1) == [wire.Speech(ULAW, b"\x01" * 160)]
    assert a.lost == 0
    lone = await w0.join(("acme", "c6"), wire.LegInfo(ULAW, "twilio"), lone_side)
    assert lone.partner is None
    s0.down = s1.down = False
    await until(lambda: lone.id in state.members("call/acme/c6"))
    far = await w1.join(("acme", "c6"), wire.LegInfo(ULAW, "twilio"), far_side)
    await met(lone)
    assert lone.send(wire.Speech(ULAW, b"\x02" * 160)) and far.send(wire.Speech(ULAW, b"\x03" * 160))
    assert await far_side.until(1) == [wire.Speech(ULAW, b"\x02" * 160)]
    assert await lone_side.until(1) == [wire.Speech(ULAW, b"\x03" * 160)]
    for leg in (a, b, lone, far):
        await leg.close()
    assert b_side.got[-1] == wire.Left()  # told directly, as its media came
    assert state.members("call/acme/c6") == {}
