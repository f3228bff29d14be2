"""Issue 59: a client secret minted on one pod is taken by another. The manifests give every server
pod the same key (a Secret, through the environment variable they set); two real server processes
started with that variable as two pods would be accept each other's secrets, and a server with
another key refuses them.

Rendering the manifests needs `kubectl kustomize`; without kubectl on PATH this skips and says so.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.deploy.helpers import ENV_PREFIX, render, secret_env, server_container
from tests.support.server_process import ServerProcess
from tests.support.tokens import ALL
from translate_svc.transport.openai.door import PATH

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.slow(40)]


def _key_variable() -> str:
    """The environment variable the gpu overlay's server pods get the client secret key in, from a
    Secret; it names the setting ``auth.client_secret_key``."""
    from_secrets = secret_env(server_container(render("gpu")))
    named = [name for name in from_secrets if name.startswith(ENV_PREFIX + "AUTH__CLIENT_SECRET_KEY")]
    assert named == [f"{ENV_PREFIX}AUTH__CLIENT_SECRET_KEY"], f"no client secret key from a Secret: {from_secrets}"
    return named[0]


@pytest.fixture
def pods(test_model_dir: Path, tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess, ServerProcess]]:
    """Two servers with one key (two pods of one deployment) and a third with another."""
    variable = _key_variable()
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{ALL} *\n")
    shared, other = secrets.token_hex(32), secrets.token_hex(32)
    args = ["--model", str(test_model_dir), "--host", "127.0.0.1", "--port", "0", "--http-port", "0"]
    started: list[ServerProcess] = []
    try:
        for key in (shared, shared, other):
            env = {variable: key, "TRANSLATE_SVC_AUTH__TOKENS_FILE": str(tokens)}
            started.append(ServerProcess(args, env=env))
        yield started[0], started[1], started[2]
    finally:
        for server in started:
            server.stop()


def _http(server: ServerProcess) -> str:
    assert server.info.http_port, "the server has no HTTP port"
    return f"http://127.0.0.1:{server.info.http_port}{PATH}"


async def _opens_a_session(http: aiohttp.ClientSession, server: ServerProcess, secret: str) -> tuple[int, str]:
    """The answer to a realtime session opened with ``secret``: 101 (the session runs) or the refusal."""
    try:
        async with http.ws_connect(
            f"{_http(server)}?model=seamless-m4t-v2",
            protocols=("realtime",),
            headers={"Authorization": f"Bearer {secret}"},
        ) as ws:
            event = await ws.receive_json(timeout=30)
            assert event["type"] == "session.created", event
            return 101, ""
    except aiohttp.WSServerHandshakeError as e:
        return e.status, e.message


async def test_a_secret_minted_on_one_pod_is_taken_by_a_pod_with_the_same_key_only(
    pods: tuple[ServerProcess, ServerProcess, ServerProcess],
) -> None:
    minter, same_key, other_key = pods
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{_http(minter)}/client_secrets", json={}, headers={"Authorization": f"Bearer {ALL}"}
        ) as response:
            assert response.status == 200, await response.text()
            secret = (await response.json())["value"]
        assert secret.startswith("ek_")
        assert await _opens_a_session(http, minter, secret) == (101, "")
        assert await _opens_a_session(http, same_key, secret) == (101, "")
        status, _ = await _opens_a_session(http, other_key, secret)
        assert status == 401
        async with http.get(
            f"{_http(other_key)}?model=seamless-m4t-v2", headers={"Authorization": f"Bearer {secret}"}
        ) as refused:
            assert refused.status == 401
            body = await refused.json()
        assert "the client secret is not valid or has expired" in body["error"]["message"], body
