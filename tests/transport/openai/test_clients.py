"""The realtime door with the strictest real clients (issue 51, DESIGN.md pitfall 27): a real
headless Chromium page and openai-node's own ``OpenAIRealtimeWebSocket`` on Node 22 (its global
WebSocket) open the socket the way OpenAI tells browsers to, ``new WebSocket(url, ["realtime",
"openai-insecure-api-key.<token>"])``, against a served instance with a tokens file, and get
translated transcript and audio deltas and every segment's done events; the same clients with a
wrong key are refused before the upgrade. The handshake's details as a plain client sees them:
``realtime`` selected, the key never echoed nor logged, each refusal before the upgrade with its
status and OpenAI-shaped body.

The server runs the stable test translator (model/testing/stable.py): its words and speech come for every
segment (the random-weight checkpoint may say nothing, DESIGN.md pitfall 19). Chromium: Debian's
``chromium-headless-shell`` through Playwright's ``executable_path`` (``make chromium``); Node 22 and
the ``openai`` npm package: ``make node`` (``.node/``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import pytest_asyncio
import trustme
import websockets
from websockets.typing import Subprotocol

from tests.support.browser import chromium
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.paths import REPO
from tests.support.speech import speech_pcm16
from translate_svc.model.testing.stable import StableTranslator
from translate_svc.observability import metrics

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(40)]

TOKEN = "rt51-client-token-4d1e9a"
LANGS_ONLY = "rt51-languages-only-77b0"
PATH = "/v1/realtime/translations?model=gpt-realtime-translate"
KEY = "openai-insecure-api-key."
CHUNK = 4800  # 200 ms at 24 kHz
SECONDS = 12
NODE_DIR = REPO / ".node" / "node_modules"
NODE_SCRIPT = REPO / "tests" / "support" / "node" / "realtime_translation.cjs"


def node() -> Path:
    binary = NODE_DIR / ".bin" / "node"
    if not binary.exists() or not (NODE_DIR / "openai").is_dir():
        pytest.fail("this test needs Node 22 and the openai npm package in .node/: run `make node` (npm)")
    return binary


@pytest.fixture(scope="module")
def pcm24k(shared_audio: Path) -> np.ndarray:
    return speech_pcm16(shared_audio / "silero_test.wav", SECONDS, 24000)


def tokens_file(tmp: Path) -> Path:
    path = tmp / "tokens"
    path.write_text(f"{TOKEN} stream\n{LANGS_ONLY} languages\n")
    return path


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def door(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    settings.auth.tokens_file = tokens_file(tmp_path_factory.mktemp("tokens"))
    settings.limits.max_streams = 2
    async with serving(settings, runner_factory=lambda: StableTranslator(test_model_dir)) as live:
        yield live


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA and a certificate for 127.0.0.1: openai-node's client takes ``wss://`` URLs only."""
    tmp = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(tmp / "tls.crt")
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(tmp / "tls.crt", append=True)
    cert.private_key_pem.write_to_path(tmp / "tls.key")
    ca.cert_pem.write_to_path(tmp / "ca.pem")
    return {"cert": tmp / "tls.crt", "key": tmp / "tls.key", "ca": tmp / "ca.pem"}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def tls_door(
    test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory, tls_files: dict[str, Path]
) -> AsyncIterator[LiveServer]:
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    settings.server.tls_cert_file = tls_files["cert"]
    settings.server.tls_key_file = tls_files["key"]
    settings.auth.tokens_file = tokens_file(tmp_path_factory.mktemp("tokens"))
    async with serving(settings, runner_factory=lambda: StableTranslator(test_model_dir)) as live:
        yield live


def port_of(live: LiveServer) -> int:
    assert live.server.http is not None
    return int(live.server.http.port)


def started() -> float:
    return float(metrics.STREAMS_STARTED.labels("main")._value.get())


def server_logs_with(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    """The server's log records (ours and aiohttp's; a client library may log its own headers)
    that hold ``text``."""
    return [
        r for r in caplog.records if r.name.split(".")[0] in ("translate_svc", "aiohttp") and text in r.getMessage()
    ]


def check_session(out: dict[str, Any]) -> None:
    """A client's whole session (a summary of every event: tests/support/node/realtime_translation.cjs
    and the page's script make the same): opened with ``realtime`` selected, translated text and speech
    deltas, and each segment's done events, whose transcript is the segment's deltas joined."""
    assert out["opened"] and out["protocol"] == "realtime", out
    events = out["events"]
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["session.created", "session.updated"] and "error" not in kinds, kinds
    closed = events[-1]
    assert closed["type"] == "session.closed" and closed["x_reason"] == "closed", closed
    total = closed["x_segments_total"]
    assert total >= 2, closed
    texts = [e for e in events if e["type"] == "session.output_transcript.delta" and e["delta"]]
    speech = [e for e in events if e["type"] == "session.output_audio.delta"]
    assert texts and speech and all(e["delta"] > 0 for e in speech)
    finals = {e["x_segment"]["segment_id"]: e for e in events if e["type"] == "session.output_transcript.done"}
    talk_ends = [e["x_segment"]["segment_id"] for e in events if e["type"] == "session.output_audio.done"]
    assert sorted(finals) == list(range(total)) and talk_ends == sorted(finals), (finals.keys(), talk_ends)
    joined: dict[int, str] = {}
    for e in texts:
        sid = e["x_segment"]["segment_id"]
        joined[sid] = joined.get(sid, "") + e["delta"]
    for sid, final in finals.items():
        assert final["x_language"] == "es" and final["transcript"] == joined.get(sid, "").strip(), (sid, final)
        assert final["x_segment"]["end_ms"] > final["x_segment"]["start_ms"]


#: the page's client: OpenAI's browser form of the handshake, the session, a summary of each event
PAGE_SESSION = """async ({url, protocols, chunks, language}) => {
  const out = {opened: false, protocol: null, events: [], close: null};
  const summary = (ev) => {
    const s = {type: ev.type};
    for (const k of ["transcript", "x_segment", "x_language", "x_reason", "x_segments_total"])
      if (ev[k] !== undefined) s[k] = ev[k];
    if (typeof ev.delta === "string") s.delta = ev.type === "session.output_audio.delta" ? ev.delta.length : ev.delta;
    return s;
  };
  await new Promise((resolve) => {
    const ws = new WebSocket(url, protocols);
    ws.onclose = (e) => { out.close = e.code; resolve(); };
    ws.onmessage = (m) => {
      const ev = JSON.parse(m.data);
      out.events.push(summary(ev));
      if (ev.type === "session.closed") ws.close();
    };
    ws.onopen = async () => {
      out.opened = true;
      out.protocol = ws.protocol;
      ws.send(JSON.stringify({type: "session.update", session: {audio: {output: {language}}}}));
      for (const audio of chunks) {
        ws.send(JSON.stringify({type: "session.input_audio_buffer.append", audio}));
        await new Promise((r) => setTimeout(r, 20));
      }
      ws.send(JSON.stringify({type: "session.close"}));
    };
  });
  return out;
}"""


async def test_a_chromium_page_opens_the_socket_with_the_subprotocol_key(
    door: LiveServer, pcm24k: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    from playwright.async_api import async_playwright

    caplog.set_level(logging.DEBUG)
    port = port_of(door)
    # a page of the server's own origin (its 404 for /): loaded over loopback, as Chromium's local
    # network checks want for a socket to 127.0.0.1; the script below is the page's client
    page_url = f"http://127.0.0.1:{port}/"

    chunks = [base64.b64encode(pcm24k[i : i + CHUNK].tobytes()).decode() for i in range(0, len(pcm24k), CHUNK)]
    args: dict[str, Any] = {"url": f"ws://127.0.0.1:{port}{PATH}", "chunks": chunks, "language": "es"}
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium())
        try:
            page = await browser.new_page()
            await page.goto(page_url)
            good = await page.evaluate(PAGE_SESSION, {**args, "protocols": ["realtime", KEY + TOKEN]})
            before = started()
            bad = await page.evaluate(PAGE_SESSION, {**args, "protocols": ["realtime", KEY + "not-this-servers"]})
        finally:
            await browser.close()
    check_session(good)
    assert good["close"] == 1000
    # a wrong key: refused before the upgrade (the page's socket never opens; no stream started)
    assert not bad["opened"] and bad["events"] == [] and bad["close"] == 1006, bad
    assert started() == before
    assert not server_logs_with(caplog, TOKEN)  # the key is never logged


async def test_openai_node_realtime_websocket_on_node_22(
    tls_door: LiveServer,
    pcm24k: np.ndarray,
    tls_files: dict[str, Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    binary = node()
    pcm = tmp_path / "speech24k.pcm"
    pcm.write_bytes(pcm24k.tobytes())
    env = {**os.environ, "NODE_EXTRA_CA_CERTS": str(tls_files["ca"]), "NODE_PATH": str(NODE_DIR)}
    url = f"wss://127.0.0.1:{port_of(tls_door)}{PATH}"

    async def run(*args: str) -> dict[str, Any]:
        proc = await asyncio.create_subprocess_exec(
            binary, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
        )
        out, err = await asyncio.wait_for(proc.communicate(), 150)
        assert proc.returncode == 0 and out, err.decode()[-2000:]
        result: dict[str, Any] = json.loads(out)
        return result

    probe = await asyncio.create_subprocess_exec(
        binary, "-p", "process.version + ' ' + typeof globalThis.WebSocket", stdout=asyncio.subprocess.PIPE
    )
    runtime = (await probe.communicate())[0].decode().split()
    assert runtime[0].startswith("v22.") and runtime[1] == "function", runtime  # Node 22's own WebSocket
    got = await run(str(NODE_SCRIPT), url, TOKEN, str(pcm), "es")
    check_session(got)
    assert got["errors"] == [] and got["close"] == 1000, got
    before = started()
    refused = await run(str(NODE_SCRIPT), url, "not-this-servers", str(pcm), "es")
    assert not refused["opened"] and refused["events"] == [] and refused["errors"], refused
    assert started() == before
    assert not server_logs_with(caplog, TOKEN)


def upgrade_headers(protocols: str | None = None, authorization: str | None = None) -> dict[str, str]:
    headers = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
    }
    if protocols is not None:
        headers["Sec-WebSocket-Protocol"] = protocols
    if authorization is not None:
        headers["Authorization"] = authorization
    return headers


async def test_the_handshake_selects_realtime_never_echoes_the_key_and_refuses_before_the_upgrade(
    door: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    port = port_of(door)
    url = f"ws://127.0.0.1:{port}{PATH}"
    async with aiohttp.ClientSession() as http:  # a browser's client secret, minted with the server token
        minted = await http.post(
            f"http://127.0.0.1:{port}/v1/realtime/translations/client_secrets",
            json={"expires_after": {"seconds": 60}},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        secret = (await minted.json())["value"]
    offer = [Subprotocol("realtime"), Subprotocol(KEY + TOKEN)]
    async with (
        websockets.connect(url, subprotocols=offer) as held,
        websockets.connect(url, subprotocols=[Subprotocol("realtime"), Subprotocol(KEY + secret)]) as browser,
    ):
        for ws in (held, browser):
            assert ws.subprotocol == "realtime" and ws.response is not None
            assert ws.response.headers["Sec-WebSocket-Protocol"] == "realtime"  # the key is not echoed
            assert json.loads(await ws.recv())["type"] == "session.created"
        # the same refusals as with Authorization, before any upgrade: the server is at its
        # max_streams (2) with these sockets: 429
        async with aiohttp.ClientSession() as http:

            async def refused(protocols: str | None, authorization: str | None = None) -> tuple[int, dict[str, Any]]:
                async with http.get(url, headers=upgrade_headers(protocols, authorization)) as r:
                    return r.status, (await r.json())["error"]

            status, error = await refused(f"realtime, {KEY}{TOKEN}")
            assert (status, error["code"]) == (429, "server_overloaded"), error
            cases = [
                (f"realtime, {KEY}not-this-servers", None, 401, "invalid_api_key", "not valid"),
                (f"realtime, {KEY}{LANGS_ONLY}", None, 403, "insufficient_permissions", '"stream"'),
                ("realtime", None, 401, "missing_api_key", KEY),  # no key: the message says how to send one
                # bad input (issue 51): a key that is not a token, the key without "realtime", two keys
                (f"realtime, {KEY}a/b=c", None, 401, "missing_api_key", "not an HTTP token"),
                (f"{KEY}{TOKEN}", None, 400, "invalid_subprotocol", 'offer it (with "openai-insecure-api-key.'),
                (f"realtime, {KEY}{TOKEN}", "Bearer other-key", 400, "conflicting_api_keys", "two different keys"),
            ]
            for protocols, authorization, want_status, code, words in cases:
                status, error = await refused(protocols, authorization)
                assert (status, error["code"]) == (want_status, code), (protocols, error)
                assert words in error["message"] and TOKEN not in error["message"], error
        for ws in (held, browser):
            await ws.send(json.dumps({"type": "session.close"}))
    assert not server_logs_with(caplog, TOKEN) and not server_logs_with(caplog, secret)  # never logged
