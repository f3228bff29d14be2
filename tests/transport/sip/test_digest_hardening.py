"""SIP digest and dialogs against a caller who means harm (issue 68: H5, H8, H10, and H12's room
rights), each attack of ``tests/support/attacks/sip.py`` against a real server on loopback: callers
from 127.0.0.1 are the allowed trunk (tenant ``default``), those from 127.0.0.2 and 127.0.0.3 must
answer the digest challenge as a SIP user of the tokens file (two users of two tenants). The peer
is a SIP user agent on a plain UDP socket whose digest answers are RFC 2617 §3.2.2's
(``tests/support/attacks/sip_peer.py``); SIPp's digest call is ``test_digest_auth.py``'s.

- H5: a right answer is admitted; its ``Authorization`` replayed with new Call-IDs, rooms and
  Request-URIs, from the same source and from another, is not (a used nonce-count, an answer for
  another Request-URI, a nonce sent to another address); the token itself is no SIP password.
- H10: a 401 to a source not yet authenticated is sent once (and again only for a retransmitted
  INVITE), never retransmitted on its own.
- H8: another tenant's INVITE with a live call's Call-ID is a dialog of its own: the victim's BYE
  still ends the victim's call.
- H12: a SIP user naming a room its token may not publish into gets 403 as the INVITE's only answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.support.attacks import sip as attacks
from tests.support.attacks.sip_peer import RtpSocket, SipPeer, offer
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.phone_carriers import calls_ended
from translate_svc.model.testing.stable import StableTranslator
from translate_svc.transport.tokens.sip import sip_password

pytestmark = [pytest.mark.integration, pytest.mark.slow(90)]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def live(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    tokens = tmp_path_factory.mktemp("sip-digest") / "tokens"
    tokens.write_text(attacks.TOKENS_FILE)
    settings = make_settings(test_model_dir)
    settings.sip.port = 0
    settings.sip.allowed_cidrs = ["127.0.0.1/32"]
    settings.sip.invites_per_s = 1000.0
    settings.sip.invite_burst = 1000
    settings.auth.tokens_file = tokens
    async with serving(settings, runner_factory=lambda: StableTranslator(test_model_dir)) as srv:
        yield srv


def sip_of(live: LiveServer) -> tuple[str, int]:
    return ("127.0.0.1", int(live.server.ports()["sip_port"]))


def password(tenant: str) -> str:
    return sip_password(attacks.TOKENS[tenant], f"{tenant}1")


async def test_a_digest_answer_is_admitted_once_and_its_replays_are_not(live: LiveServer) -> None:
    """H5. On eb20967 all 10 replays were admitted, and so was the token as the password."""
    got = await attacks.digest_replay(sip_of(live), "acme1", password("acme"), attacks.TOKENS["acme"])
    assert got["right_answer_status"] == 200, got
    assert got["replays_admitted"] == "0 of 10", got
    assert set(got["replay_statuses_from_127.0.0.2"]) <= {401, 403}, got  # a used count; another URI
    assert set(got["replay_statuses_from_127.0.0.3"]) == {401}, got  # a nonce sent to another address
    assert got["token_as_password_status"] == 403, got
    await calls_ended(live.server)


async def test_a_401_to_an_unauthenticated_source_is_sent_once(live: LiveServer) -> None:
    """H10. On eb20967 the 401 was retransmitted until its ACK (4 in 4 s here; 8.5x the INVITE's
    bytes over Timer H in the review)."""
    got = await attacks.unauthenticated_401(sip_of(live), seconds=4.0)
    assert got["responses"] == [401], got
    assert got["amplification"] < 1.0, got


async def test_a_retransmitted_invite_gets_the_401_again_and_nothing_more(live: LiveServer) -> None:
    """H10: the one answer is kept for the transaction, so a lost 401 is recovered by the caller's
    own retransmission (RFC 3261 §17.2.1), one for one."""
    async with SipPeer(sip_of(live), host="127.0.0.2") as peer:
        invite = peer.request("INVITE", body=offer("127.0.0.2", 40000))
        for _ in range(3):
            await peer.send(invite)
            await peer.final(len(peer.got), timeout_s=2.0)
        assert [r.status for r in peer.got] == [401, 401, 401]
        nonces = {r.get("www-authenticate") for r in peer.got}
        assert len(nonces) == 1  # the same answer, not three challenges


async def test_another_tenants_invite_with_a_live_call_id_is_its_own_dialog(live: LiveServer) -> None:
    """H8. On eb20967 the victim's BYE got 481: the other INVITE had taken its Call-ID's place."""
    got = await attacks.dialog_collision(sip_of(live), "127.0.0.1", ("rival1", password("rival"), "127.0.0.2"))
    assert got["victim_status"] == 200 and got["other_status"] == 200, got
    assert got["other_bye_status"] == 200 and got["victim_bye_status"] == 200, got
    await calls_ended(live.server)


async def test_a_room_the_sip_user_may_not_publish_into_is_403_before_anything_else(live: LiveServer) -> None:
    """H12 (rights): acme1's token publishes into ``town-*`` only. On eb20967 the INVITE naming
    ``boardroom`` was answered 100, 180 and 200, and only then ended."""
    media = RtpSocket("127.0.0.2")
    try:
        async with SipPeer(sip_of(live), host="127.0.0.2") as peer:
            resp, _ = await attacks.authorized_invite(
                peer, "acme1", password("acme"), offer(*media.address), headers=[("X-Translate-Room", "boardroom")]
            )
            assert resp is not None and resp.status == 403, resp
            assert [r.status for r in peer.got] == [401, 403], [r.status for r in peer.got]
        async with SipPeer(sip_of(live), host="127.0.0.2") as peer:  # a room it may publish into
            resp, _ = await attacks.authorized_invite(
                peer, "acme1", password("acme"), offer(*media.address), headers=[("X-Translate-Room", "town-hall")]
            )
            assert resp is not None and resp.status == 200, resp
            await peer.bye()
    finally:
        await media.close()
    await calls_ended(live.server)
