"""Two-party calls when the cluster store cannot answer (issue 59), on a real server whose store a
test switches off (``switchable_store``): under ``cluster.on_redis_loss = "refuse"`` a leg that
names a call while the store is down is refused precisely (close 1013 "try again later", the
reason saying the store cannot answer, UNAVAILABLE on its access line), while a call that names no
partner is served as ever; under ``"node"`` (the default) two legs of a call that arrive while it
is down meet on the server; and a two-party call already admitted is never cut when the store goes
away mid-call: both legs go on to their own hang-up (close 1000, code OK), and two legs on the same
server keep their media (they pass it directly, nothing lost)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.live_server import serving
from tests.support.phone_carriers import (
    AccessLines,
    FakeTwilio,
    access_lines,
    calls_ended,
    phone_settings,
    phone_url,
    ulaw_bytes,
)
from tests.support.phone_pairs import held_until_closed
from tests.support.speech import speech_pcm16
from tests.support.switchable_store import SwitchableStore
from translate_svc.model.testing.stable import StableTranslator

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="function"), pytest.mark.slow(40)]


@pytest.fixture
def access() -> Iterator[AccessLines]:
    with access_lines() as lines:
        yield lines


async def test_a_leg_that_names_a_call_while_the_store_is_down_is_refused_precisely(
    test_model_dir: Path, access: AccessLines
) -> None:
    store = SwitchableStore()
    store.down = True
    settings = phone_settings(test_model_dir)
    settings.cluster.on_redis_loss = "refuse"
    async with serving(settings, runner_factory=lambda: StableTranslator(test_model_dir), cluster=store) as live:
        url = phone_url(live.server, "twilio", "source=eng&target=spa")
        refused = await held_until_closed(FakeTwilio(url, custom={"call": "c1"}), max_s=8)
        single = await held_until_closed(FakeTwilio(url), max_s=1.5)  # no partner: served as ever
        await calls_ended(live.server)
    assert refused.code == 1013 and refused.after_s is not None and refused.after_s < 3
    assert refused.reason.startswith("two-party calls meet through the cluster store, which cannot answer now")
    assert single.code is None, "a call without a partner was refused while the store was down"
    codes = sorted(line["code"] for line in access.of("phone_twilio"))
    assert "UNAVAILABLE" in codes


async def test_an_admitted_two_party_call_is_never_cut_when_the_store_goes_away(
    test_model_dir: Path, shared_audio: Path, access: AccessLines
) -> None:
    speech = ulaw_bytes(speech_pcm16(shared_audio / "jfk.flac", 6.0, 8000))
    store = SwitchableStore()
    async with serving(
        phone_settings(test_model_dir), runner_factory=lambda: StableTranslator(test_model_dir), cluster=store
    ) as live:
        a = FakeTwilio(phone_url(live.server, "twilio", "source=eng&target=spa"), custom={"call": "c2"})
        b = FakeTwilio(phone_url(live.server, "twilio", "source=spa&target=eng"), custom={"call": "c2"})

        async def store_lost() -> None:
            await asyncio.sleep(2.0)
            store.down = True

        logs = await asyncio.gather(a.call(speech, linger_s=3), b.call(speech, linger_s=3), store_lost())
        await calls_ended(live.server)
    assert [log.close_code for log in logs[:2]] == [1000, 1000]
    for side, log in zip("ab", logs[:2], strict=True):
        assert log.marks and set(log.echoed) == set(log.marks), f"leg {side} heard no translation"
    lines = access.of("phone_twilio")
    assert sorted(line["code"] for line in lines) == ["OK", "OK"]
    assert sum(line.get("pair_lost", 0) for line in lines) == 0, "legs on one server lost media to the store"


async def test_two_legs_that_arrive_while_the_store_is_down_meet_on_the_server_under_node(
    test_model_dir: Path, shared_audio: Path, access: AccessLines
) -> None:
    speech = ulaw_bytes(speech_pcm16(shared_audio / "jfk.flac", 6.0, 8000))
    store = SwitchableStore()
    store.down = True
    settings = phone_settings(test_model_dir)
    assert settings.cluster.on_redis_loss == "node"
    async with serving(settings, runner_factory=lambda: StableTranslator(test_model_dir), cluster=store) as live:
        a = FakeTwilio(phone_url(live.server, "twilio", "source=eng&target=spa"), custom={"call": "c3"})
        b = FakeTwilio(phone_url(live.server, "twilio", "source=spa&target=eng"), custom={"call": "c3"})
        logs = await asyncio.gather(a.call(speech, linger_s=3), b.call(speech, linger_s=3))
        await calls_ended(live.server)
    for side, log in zip("ab", logs, strict=True):
        assert log.close_code == 1000 and log.marks, f"leg {side} heard nothing of its partner"
    assert sorted(line["code"] for line in access.of("phone_twilio")) == ["OK", "OK"]
