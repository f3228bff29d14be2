"""A two-party leg whose other leg never joins is ended after ``phone.partner_timeout_s`` with the
reason said (issue 59), not left open hearing nothing: a real server, a fake Twilio leg
(``phone_carriers.FakeTwilio``, Twilio's Media Streams messages) naming a call nobody else names.
The carrier gets the close frame 1008 with the reason; the access line and the metric count it. A
leg whose partner comes in time is never ended so (``test_pair_meeting``; ``test_pair_tenants``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from tests.support.live_server import serving
from tests.support.phone_carriers import AccessLines, FakeTwilio, access_lines, calls_ended, phone_settings, phone_url
from tests.support.phone_pairs import held_until_closed
from translate_svc.model.testing.stable import StableTranslator

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="function"), pytest.mark.slow(20)]

TIMEOUT_S = 1.5


def timeouts() -> float:
    return REGISTRY.get_sample_value("translate_svc_phone_partner_timeouts_total", {"carrier": "twilio"}) or 0.0


@pytest.fixture
def access() -> Iterator[AccessLines]:
    with access_lines() as lines:
        yield lines


async def test_a_leg_whose_partner_never_comes_is_ended_after_the_partner_timeout_saying_why(
    test_model_dir: Path, access: AccessLines
) -> None:
    settings = phone_settings(test_model_dir, partner_timeout_s=TIMEOUT_S)
    before = timeouts()
    async with serving(settings, runner_factory=lambda: StableTranslator(test_model_dir)) as live:
        leg = FakeTwilio(phone_url(live.server, "twilio", "source=eng&target=spa"), custom={"call": "nobody-else"})
        closed = await held_until_closed(leg, max_s=TIMEOUT_S + 8)
        await calls_ended(live.server)
    assert closed.after_s is not None, "the lone leg was left open"
    assert TIMEOUT_S <= closed.after_s < TIMEOUT_S + 3
    assert closed.code == 1008
    assert "did not join within 1.5 s (phone.partner_timeout_s)" in closed.reason
    (line,) = access.of("phone_twilio")
    assert line["code"] == "OUT_OF_RANGE" and line["partner_timeout_s"] == TIMEOUT_S
    assert timeouts() == before + 1
