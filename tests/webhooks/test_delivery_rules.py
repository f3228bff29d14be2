"""Issue 68 H13 and H14: where deliveries go and what the operator's secrets show, against a real
server on loopback and real receivers that verify with the Standard Webhooks library.

- H13: a receiver that answers a redirect does not get the signed body sent on to where it points:
  the 3xx is a failed attempt, retried later; the receiver at the redirect's target sees nothing
  (before: aiohttp followed a 307 with the body and its signature).
- ``https://`` only, unless the operator opts in (``webhooks.allow_http``): an ``http://`` endpoint
  fails the start naming the setting; an ``https://`` receiver (its certificate from a CA the
  server's process trusts) gets every delivery, verified.
- H14: a secret is never shown: a near-valid one (one character off) fails the start with a message
  that names the setting and not the value (before: pydantic's error quoted it whole); a valid one
  appears in nothing the server prints. A base64url secret is taken (before: refused), and signs
  what the receiver verifies with the same key in base64.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme
from prometheus_client import REGISTRY
from pydantic import ValidationError

from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.raw import channel
from tests.support.server_process import CLI, ServerProcess
from tests.support.webhook_receiver import Receiver, new_secret, receiving
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc
from translate_svc.settings import WebhookEndpoint, WebhookSettings

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(40)]


def hooks(data_dir: Path, endpoints: list[WebhookEndpoint], **more: object) -> WebhookSettings:
    return WebhookSettings(
        endpoints=endpoints,
        data_dir=data_dir,
        first_backoff_s=0.2,
        max_backoff_s=1.0,
        **more,  # type: ignore[arg-type]
    )


async def one_session(live: LiveServer) -> None:
    req = pb.TranslateTextRequest(texts=["good morning"], source_language="eng", target_languages=["spa"])
    await live.stub.TranslateText(req, timeout=60)


def failed_attempts() -> float:
    return REGISTRY.get_sample_value("translate_svc_webhook_attempts_total", {"outcome": "failed"}) or 0.0


async def test_a_redirect_is_a_failed_attempt_and_is_not_followed(test_model_dir: Path, tmp_path: Path) -> None:
    secret = new_secret()
    async with receiving(secret) as target, receiving(secret) as moved:
        moved.mode, moved.redirect_to = "redirect", target.url
        settings = make_settings(test_model_dir)
        settings.webhooks = hooks(tmp_path / "data", [WebhookEndpoint(url=moved.url, secret=secret)], allow_http=True)
        failed0 = failed_attempts()
        async with serving(settings) as live:
            await one_session(live)  # session.started and session.ended
            # each tried twice at least, or followed to the target
            await moved.wait_for(lambda r: r.requests >= 4 or target.requests > 0)
        print(f"H13: the redirecting receiver saw {moved.requests} requests, its target {target.requests}")
        assert target.requests == 0 and target.accepted == []
        assert moved.requests >= 4 and failed_attempts() - failed0 >= 4


async def test_an_http_endpoint_needs_the_operators_opt_in(tmp_path: Path) -> None:
    endpoint = WebhookEndpoint(url="http://billing.internal:8080/hooks?key=abc", secret=new_secret())
    with pytest.raises(ValidationError) as refused:
        WebhookSettings(endpoints=[endpoint], data_dir=tmp_path)
    message = str(refused.value)
    assert "webhooks.allow_http" in message and "https://" in message
    assert "key=abc" not in message  # the URL as shown: no query (where a credential may be)
    WebhookSettings(endpoints=[endpoint], data_dir=tmp_path, allow_http=True)  # opted in
    WebhookSettings(endpoints=[endpoint.model_copy(update={"url": "https://billing.example.com/h"})], data_dir=tmp_path)


def serve_env(receiver: Receiver, data_dir: Path, secret: str, **more: str) -> dict[str, str]:
    return {
        "TRANSLATE_SVC_WEBHOOKS__ENDPOINTS": json.dumps([{"url": receiver.url, "secret": secret}]),
        "TRANSLATE_SVC_WEBHOOKS__DATA_DIR": str(data_dir),
        "TRANSLATE_SVC_WEBHOOKS__FIRST_BACKOFF_S": "0.2",
        "TRANSLATE_SVC_WEBHOOKS__MAX_BACKOFF_S": "1",
        **more,
    }


def serve_args(model: Path) -> list[str]:
    return ["--model", str(model), "--host", "127.0.0.1", "--port", "0", "--test-translator", "stable"]


async def test_an_https_receiver_gets_every_delivery_and_no_secret_is_printed(
    test_model_dir: Path, tmp_path: Path
) -> None:
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    secret = new_secret()
    async with receiving(secret, tls=ca) as receiver:
        assert receiver.url.startswith("https://")
        env = serve_env(receiver, tmp_path / "data", secret, SSL_CERT_FILE=str(ca_file))
        server = ServerProcess(serve_args(test_model_dir), env=env)
        try:
            ch = channel(server.address)
            req = pb.TranslateTextRequest(texts=["good morning"], source_language="eng", target_languages=["spa"])
            await pb_grpc.TranslatorStub(ch).TranslateText(req, timeout=60)
            await ch.close()
            await receiver.wait_for(lambda r: len(r.events()) == 2)
        finally:
            server.stop()
    assert receiver.refused == []
    printed = "".join(server.lines)
    assert secret not in printed and secret.removeprefix("whsec_")[:16] not in printed


def near_valid(secret: str) -> str:
    """``secret`` one character off: a ``*`` in place of its last base64 character."""
    body = secret.rstrip("=")
    return body[:-1] + "*" + secret[len(body) :]


@pytest.mark.parametrize("wrong", [near_valid, lambda s: s[:14], lambda s: s.replace("whsec_", "whsek_")])
async def test_a_secret_that_is_not_valid_fails_the_start_without_being_shown(
    test_model_dir: Path, tmp_path: Path, wrong: Callable[[str], str]
) -> None:
    secret = wrong(new_secret())
    env = {
        **os.environ,
        "TRANSLATE_SVC_WEBHOOKS__ENDPOINTS": json.dumps([{"url": "https://hooks.example.com/h", "secret": secret}]),
        "TRANSLATE_SVC_WEBHOOKS__DATA_DIR": str(tmp_path / "data"),
    }
    argv = [*CLI, "serve", *serve_args(test_model_dir)]
    done = await asyncio.to_thread(subprocess.run, argv, env=env, capture_output=True, text=True, timeout=120)
    printed = done.stdout + done.stderr
    print(f"H14: exit {done.returncode}; printed the secret: {secret in printed}; {printed.strip()[:300]!r}")
    assert done.returncode == 2, printed
    assert "webhooks.endpoints.0.secret" in printed and "whsec_" in printed  # where, and the rule
    assert secret not in printed and secret[6:20] not in printed


async def test_a_base64url_secret_signs_what_the_same_key_in_base64_verifies(
    test_model_dir: Path, tmp_path: Path
) -> None:
    key = os.urandom(24) + b"\xfb\xff\xfe"  # bytes whose base64 has '+' or '/', base64url '-' or '_'
    standard = "whsec_" + base64.b64encode(key).decode()
    url_safe = "whsec_" + base64.urlsafe_b64encode(key).decode().rstrip("=")
    assert url_safe != standard.rstrip("=") and ("-" in url_safe or "_" in url_safe)
    async with receiving(standard) as receiver:
        settings = make_settings(test_model_dir)
        settings.webhooks = hooks(
            tmp_path / "data", [WebhookEndpoint(url=receiver.url, secret=url_safe)], allow_http=True
        )
        async with serving(settings) as live:
            await one_session(live)
            await receiver.wait_for(lambda r: len(r.events()) == 2)
        assert receiver.refused == []
