"""Digest authentication at the SIP door (issue 60): a caller outside ``sip.allowed_cidrs`` is
challenged (401, RFC 3261 §22.2) when the tokens file names SIP users (``sip_user=``); SIPp 3.6.1
answers with its ``-au``/``-ap`` credentials. The right password (the SIP password derived from the
token, ``tokens.sip_password``: what ``phone-config sip --sip-user`` prints) places the call as the
token's tenant; a wrong one gets 403, and so does the token itself (issue 68: it is no SIP
password). Scenarios: ``tests/support/sip/digest_*.xml``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.live_server import make_settings, serving
from tests.support.phone_carriers import AccessLines, access_lines, calls_ended
from tests.support.sip_peers import need, scenario, sipp
from translate_svc.model.testing.stable import StableTranslator
from translate_svc.transport.tokens.sip import sip_password

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.slow(60)]

PASSWORD = "pbx-secret-token-1"


@pytest.fixture
def access() -> Iterator[AccessLines]:
    with access_lines() as lines:
        yield lines


async def test_a_caller_outside_the_networks_answers_the_digest_challenge_or_gets_403(
    test_model_dir: Path, tmp_path: Path, access: AccessLines
) -> None:
    need("sipp")
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{PASSWORD} stream tenant=pbx sip_user=pbx1\nweb-token stream\n")
    settings = make_settings(test_model_dir)
    settings.sip.port = 0
    settings.sip.allowed_cidrs = ["10.0.0.0/8"]  # loopback is not: every caller here is challenged
    settings.auth.tokens_file = tokens
    async with serving(settings, runner_factory=lambda: StableTranslator(test_model_dir)) as live:
        port = int(live.server.ports()["sip_port"])
        (tmp_path / "ok").mkdir()
        (tmp_path / "bad").mkdir()
        (tmp_path / "token").mkdir()
        good = await sipp(
            tmp_path / "ok",
            port,
            scenario(tmp_path / "ok", "digest_call.xml"),
            extra=("-au", "pbx1", "-ap", sip_password(PASSWORD, "pbx1")),
        )
        assert good.returncode == 0, good.stdout[-1500:] + good.errors[-2000:]
        bad = await sipp(
            tmp_path / "bad",
            port,
            scenario(tmp_path / "bad", "digest_refused.xml"),
            extra=("-au", "pbx1", "-ap", "nope"),
        )
        assert bad.returncode == 0, bad.stdout[-1500:] + bad.errors[-2000:]
        token = await sipp(
            tmp_path / "token",
            port,
            scenario(tmp_path / "token", "digest_refused.xml"),
            extra=("-au", "pbx1", "-ap", PASSWORD),
        )
        assert token.returncode == 0, token.stdout[-1500:] + token.errors[-2000:]
        await calls_ended(live.server)
    [line] = access.of("sip")
    assert line["tenant"] == "pbx"  # the SIP user's token's tenant
