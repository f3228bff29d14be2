"""The listen page (``/listen/<room>``, docs/rooms.md) in a real browser: Debian's headless Chromium
driven by Playwright (as tests/transport/openai/test_browser.py). A page joins a room before its speaker
talks: it shows each segment's caption and plays its speech (the samples go into its AudioContext,
and its analyser hears them); a second page, on a phone's screen, joins after the talk and shows
the backlog. Then the demo page publishes into a room from its (fake) microphone, shows the QR code
of the room's page, and a listen page opened at the demo's link hears it.

The server runs the stable test translator (model/testing/stable.py): segments have words and speech; what
is asserted is structure (counts, ids, non-empty texts, samples), never words.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import soundfile as sf

from tests.support.browser import chromium
from tests.support.live_server import serving
from tests.support.rooms import room_settings, speak, speaker_config, wait_for
from tests.support.speech import speech_pcm16
from translate_svc.api.v1 import translate_pb2 as pb

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(40)]

ARGS = ["--autoplay-policy=no-user-gesture-required"]
#: what a listen page shows and holds
STATE = """() => {
  const rows = (kind) => [...document.querySelectorAll(`#captions li.${kind}`)].map(
    li => [li.dataset.segment, li.querySelector(".text").textContent]);
  return {
    live: rows("live"),
    backlog: rows("backlog"),
    status: document.getElementById("status").textContent,
    events: listen.events,
    received: listen.samplesReceived,
    played: listen.samplesPlayed,
    peak: listen.peak,
    audio: listen.ctx ? listen.ctx.state : null,
    overflow: document.documentElement.scrollWidth - window.innerWidth,
  };
}"""


async def state(page: Any) -> dict[str, Any]:
    return dict(await page.evaluate(STATE))


async def test_the_listen_page_plays_and_shows_a_talk_and_a_late_page_its_backlog(
    test_model_dir: Path, shared_audio: Path
) -> None:
    from playwright.async_api import async_playwright

    settings = room_settings(test_model_dir)
    settings.server.http_port = 0
    pcm = speech_pcm16(shared_audio / "silero_test.wav", 30.0, 16000).tobytes()
    problems: list[str] = []
    async with serving(settings) as live, async_playwright() as pw:
        assert live.server.http is not None
        url = f"http://127.0.0.1:{live.server.http.port}/listen/town-hall?language=spa"
        browser = await pw.chromium.launch(executable_path=chromium(), args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1000, "height": 800})
            page.on("pageerror", lambda e: problems.append(f"uncaught: {e}"))
            await page.goto(url)
            await page.wait_for_selector("#join:enabled", timeout=30_000)
            assert await page.eval_on_selector("#language", "s => s.value") == "spa"
            await page.click("#join")
            await page.wait_for_function("() => listen.events >= 1", timeout=30_000)

            config = speaker_config("town-hall", "mayor")
            config.interim_interval_ms = 500
            own: list[pb.SegmentResult] = []
            await speak(live.stub, config, pcm, own)
            assert len(own) >= 3
            # every segment's caption, and its speech played (scheduled, then heard by the analyser)
            await page.wait_for_function(
                f"() => document.querySelectorAll('#captions li.live').length >= {len(own)} && listen.peak > 0",
                timeout=60_000,
            )
            first = await state(page)
            assert [int(sid) for sid, _ in first["live"]] == [s.segment_id for s in own], first
            assert all(text for _, text in first["live"]), first
            assert first["audio"] == "running" and first["played"] == first["received"] > 0, first
            assert await page.eval_on_selector("#caption", "e => e.textContent.length") > 0

            # a phone's screen joins after the talk: the backlog at once, as the first page saw it
            phone = await browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
            phone.on("pageerror", lambda e: problems.append(f"uncaught (phone): {e}"))
            await phone.goto(url)
            await phone.wait_for_selector("#join:enabled", timeout=30_000)
            await phone.tap("#join")
            await phone.wait_for_function(
                f"() => document.querySelectorAll('#captions li.backlog').length >= {len(own)}", timeout=30_000
            )
            late = await state(phone)
            assert late["backlog"] == first["live"] and not late["live"], late
            assert late["received"] == 0  # a backlog is read, not played again
            assert late["overflow"] <= 0, late  # nothing wider than a phone's screen
            await phone.click("#leave")
            await page.click("#leave")
            rooms = live.server.app.sessions.rooms
            await wait_for(lambda: not any(True for _ in rooms.all_listeners()))
        finally:
            await browser.close()
    assert not problems, problems


async def test_the_demo_page_publishes_into_a_room_with_its_qr_code(
    test_model_dir: Path, shared_audio: Path, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright

    tokens = tmp_path / "tokens"
    tokens.write_text("rooms-browser-token-5d1e stream\n")  # required, and never given to either page
    settings = room_settings(test_model_dir)
    settings.server.http_port = 0
    settings.server.demo_page = True
    settings.auth.tokens_file = tokens
    wav = tmp_path / "speech48k.wav"
    sf.write(wav, speech_pcm16(shared_audio / "silero_test.wav", 12, 48000), 48000, subtype="PCM_16")
    problems: list[str] = []
    async with serving(settings) as live, async_playwright() as pw:
        assert live.server.http is not None
        base = f"http://127.0.0.1:{live.server.http.port}"
        browser = await pw.chromium.launch(
            executable_path=chromium(),
            args=[
                *ARGS,
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={wav}",
            ],
        )
        try:
            demo = await browser.new_page()
            demo.on("pageerror", lambda e: problems.append(f"uncaught (demo): {e}"))
            await demo.goto(f"{base}/demo")
            await demo.wait_for_selector("#start:enabled", timeout=30_000)
            await demo.fill("#room", "hall")
            await demo.click("#start")  # Spanish, the page's default target
            await demo.wait_for_function("() => document.getElementById('qr').naturalWidth > 0", timeout=30_000)
            link = await demo.eval_on_selector("#listen-link", "a => a.href")
            assert link == f"{base}/listen/hall#demo"

            listener = await browser.new_page()
            listener.on("pageerror", lambda e: problems.append(f"uncaught (listen): {e}"))
            await listener.goto(link.replace("#demo", "?language=spa#demo"))
            await listener.wait_for_selector("#join:enabled", timeout=30_000)
            await listener.click("#join")
            await listener.wait_for_function(
                "() => document.querySelectorAll('#captions li.live').length >= 1 && listen.samplesPlayed > 0",
                timeout=90_000,
            )
            heard = await state(listener)
            assert all(text for _, text in heard["live"]), heard
            await demo.click("#stop")
        finally:
            await browser.close()
    assert not problems, problems
