"""Fake Telnyx, SignalWire and Exotel calls: Twilio's cousins, each written from its vendor's
PUBLISHED media-streaming format, not from our door's code (docs/design.md pitfall 26). The
mechanics they share with Twilio (real-time ``media``, a player that plays what it is sent in order,
a ``mark`` sent back once the audio before it has played, ``clear``) are ``MediaStreamCarrier``'s
(phone_carriers.py); each class here says its vendor's messages and checks what it is sent against
its vendor's rules.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

from tests.support.phone_carriers import MediaStreamCarrier


class FakeTelnyx(MediaStreamCarrier):
    """A Telnyx Media Streaming WebSocket with bidirectional RTP (``stream_bidirectional_mode=rtp``),
    from Telnyx's "Stream call media over WebSocket" page
    (https://developers.telnyx.com/api-reference/websockets/stream-call-media-over-websocket) and
    the streaming_start command's pages (https://developers.telnyx.com/api-reference/call-commands/
    streaming-start: the codecs and rates; https://developers.telnyx.com/api/call-control/
    start-call-streaming: "WebSocket events", "Stream Errors"):

    - ``{"event": "connected", "version": "1.0.0"}``, then ``start``: ``sequence_number``, the
      ``stream_id`` at the top level, ``start.call_control_id`` (and ``user_id``,
      ``call_session_id``, ``from``, ``to``, ``client_state``), ``start.custom_parameters`` (the
      TeXML ``<Parameter>``s) and ``start.media_format`` (``encoding`` PCMU or PCMA, the RTP codec's
      name; ``sample_rate`` 8000; ``channels`` 1);
    - ``media`` per RTP packet (20 ms): ``media.track`` ``inbound``, ``chunk``, ``timestamp`` and
      ``payload`` (the base64 RTP payload, no header), with the ``stream_id``;
    - ``stop`` (``stop.user_id``, ``stop.call_control_id``) when the call ends;
    - back from the application: ``media`` (``media.payload``, the bidirectional codec's RTP payload,
      20 ms to 30 s of audio a message), ``mark`` and ``clear``; Telnyx sends a ``mark`` back when
      the audio before it has played. The page does not say that ``clear`` sends back the marks it
      dropped: this fake does not.
    - ``error`` frames (``error.title``, ``error.code``, ``error.detail``: e.g. 100003
      ``malformed_frame``, 100005 ``rate_limit_reached``) when a frame sent to Telnyx is bad; the
      stream goes on ("Stream Errors").
    """

    carrier = "telnyx"
    clear_echoes_marks = False

    def __init__(self, url: str, *, codec: str = "PCMU", custom: dict[str, str] | None = None) -> None:
        super().__init__(url)
        self.codec = codec
        self.custom = custom or {}
        self.stream_id = str(uuid.uuid4()).upper()
        self.call_control_id = "v3:" + base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        self.user_id = str(uuid.uuid4())
        self._seq = 0

    @property
    def silence(self) -> bytes:
        return b"\xd5" if self.codec == "PCMA" else b"\xff"

    def _frame(self, event: str, **body: Any) -> dict[str, Any]:
        self._seq += 1
        return {"event": event, "sequence_number": str(self._seq), **body, "stream_id": self.stream_id}

    def connected(self) -> dict[str, Any]:
        return {"event": "connected", "version": "1.0.0"}

    def start(self) -> dict[str, Any]:
        start = {
            "user_id": self.user_id,
            "call_control_id": self.call_control_id,
            "call_session_id": str(uuid.uuid4()),
            "from": "+13122010094",
            "to": "+13122123456",
            "client_state": base64.b64encode(b"translate").decode(),
            "custom_parameters": self.custom,
            "media_format": {"encoding": self.codec, "sample_rate": 8000, "channels": 1},
        }
        return self._frame("start", start=start)

    def media(self, chunk: int, timestamp_ms: int, payload: str) -> dict[str, Any]:
        media = {"track": "inbound", "chunk": str(chunk), "timestamp": str(timestamp_ms), "payload": payload}
        return self._frame("media", media=media)

    def mark(self, name: str) -> dict[str, Any]:
        return self._frame("mark", mark={"name": name})

    def stop(self) -> dict[str, Any]:
        return self._frame("stop", stop={"user_id": self.user_id, "call_control_id": self.call_control_id})

    def error(self, code: str, title: str, detail: str) -> dict[str, Any]:
        return self._frame("error", error={"title": title, "code": code, "detail": detail})

    def check(self, message: dict[str, Any]) -> None:
        assert message["event"] in ("media", "mark", "clear"), message
        assert message.get("stream_id", self.stream_id) == self.stream_id, message
        if message["event"] == "media":
            seconds = len(base64.b64decode(message["media"]["payload"])) / self.rate
            assert 0.02 <= seconds <= 30, f"a media frame of {seconds:.4f} s: Telnyx takes 20 ms to 30 s"


class FakeSignalWire(MediaStreamCarrier):
    """A SignalWire bidirectional stream (cXML ``<Connect><Stream>``), from SignalWire's ``<Stream>``
    page (https://developer.signalwire.com/compatibility-api/cxml/voice/stream; its source is
    signalwire/docs, website/docs/main/compatibility-api/cxml/voice/stream.mdx):

    - ``{"event": "connected", "protocol": "Call", "version": "0.2.0"}``, then ``start``:
      ``sequenceNumber``; ``start.streamSid``, ``accountSid``, ``callSid``, ``tracks``
      (``["inbound"]``), ``customParameters`` (the ``<Parameter>``s: "the url does not support
      query string parameters"), ``mediaFormat``: ``encoding`` ``audio/x-mulaw`` (PCMU, 8000 Hz,
      the default) or ``audio/x-L16`` (``codec="L16@16000h"`` or ``"L16@24000h"``),
      ``sampleRate``, ``channels`` 1; the stream's id is in ``start``, not beside it;
    - ``media`` (``sequenceNumber``; ``media.track`` ``inbound``, ``chunk``, ``timestamp``,
      ``payload``: base64 raw audio, no header) with no ``streamSid``; ``stop``
      (``sequenceNumber``) when the stream ends;
    - back from the application, each with the ``streamSid``: ``media`` (``media.payload``:
      the stream's codec, queued and played in order), ``mark`` (sent back with the ``streamSid``
      once the audio before it has played, "or immediately if no audio is queued") and ``clear``
      (flushes the queue and sends back the pending marks);
    - with ``authBearerToken``, the connection carries ``Authorization: Bearer <token>``.

    L16 is "Linear PCM" on the page, which gives no byte order: this fake sends and reads it
    little-endian (as Plivo's and Exotel's ``audio/x-l16`` streams are).
    """

    carrier = "signalwire"

    def __init__(self, url: str, *, rate: int = 8000, custom: dict[str, str] | None = None, token: str | None = None):
        super().__init__(
            url,
            headers={"Authorization": f"Bearer {token}"} if token else None,
            rate=rate,
            sample_bytes=1 if rate == 8000 else 2,
        )
        self.custom = custom or {}
        self.sid = str(uuid.uuid4())
        self._seq = 0

    def _msg(self, event: str, **body: Any) -> dict[str, Any]:
        self._seq += 1
        return {"event": event, "sequenceNumber": str(self._seq), **body}

    def connected(self) -> dict[str, Any]:
        return {"event": "connected", "protocol": "Call", "version": "0.2.0"}

    def start(self) -> dict[str, Any]:
        encoding = "audio/x-mulaw" if self.rate == 8000 else "audio/x-L16"
        start = {
            "streamSid": self.sid,
            "accountSid": str(uuid.uuid4()),
            "callSid": str(uuid.uuid4()),
            "tracks": ["inbound"],
            "customParameters": self.custom,
            "mediaFormat": {"encoding": encoding, "sampleRate": self.rate, "channels": 1},
        }
        return self._msg("start", start=start)

    def media(self, chunk: int, timestamp_ms: int, payload: str) -> dict[str, Any]:
        media = {"track": "inbound", "chunk": str(chunk), "timestamp": str(timestamp_ms), "payload": payload}
        return self._msg("media", media=media)

    def mark(self, name: str) -> dict[str, Any]:
        return {"event": "mark", "streamSid": self.sid, "mark": {"name": name}}

    def stop(self) -> dict[str, Any]:
        return self._msg("stop")

    def check(self, message: dict[str, Any]) -> None:
        assert message["event"] in ("media", "mark", "clear"), message
        assert message.get("streamSid") == self.sid, message


class FakeExotel(MediaStreamCarrier):
    """An Exotel Voicebot applet's bidirectional stream (AgentStream), from Exotel's "WebSocket
    protocol" page (https://developer.exotel.com/docs/agentstream/websocket-protocol) and "Working
    with the Stream and Voicebot Applet"
    (https://developer.exotel.com/docs/agentstream/stream-voicebot-applet):

    - the applet's URL carries the custom parameters (up to 3, ``?param1=value1&...``) and the
      sample rate (``?sample-rate=16000``; 8000 by default, 16000, 24000);
    - ``{"event": "connected"}``, then ``start``: ``sequence_number``, ``stream_sid``, and
      ``start`` (``stream_sid``, ``call_sid``, ``account_sid``, ``from``, ``to``,
      ``custom_parameters``, ``media_format``: ``encoding`` ``audio/x-raw``, ``sample_rate`` and
      ``bit_rate`` as strings, ``"16"``); the audio is raw/slin, 16-bit mono little-endian PCM;
    - ``media`` every ~100 ms (``media.chunk``, ``timestamp``, ``payload``), with
      ``sequence_number`` and ``stream_sid``; ``stop`` (``stop.call_sid``, ``account_sid``,
      ``reason``) when the stream ends;
    - back from the bot: ``media`` (``media.payload``: base64 PCM of the stream's format, each
      message at least 3.2 KB, at most 100 KB, a multiple of 320 bytes: "non-compliant sizes create
      gaps in audio playback"), ``mark`` (sent back when the audio before it "has finished
      playing") and ``clear``; the pages do not say that ``clear`` sends back the marks it
      dropped: this fake does not.
    """

    carrier = "exotel"
    frame_s = 0.1
    clear_echoes_marks = False
    #: what an outbound media message must be a whole number of, and at least, and at most
    CHUNK_MULTIPLE, CHUNK_MIN, CHUNK_MAX = 320, 3200, 100_000

    def __init__(self, url: str, *, rate: int = 8000, custom: dict[str, str] | None = None) -> None:
        super().__init__(url, rate=rate, sample_bytes=2)
        self.custom = custom or {}
        self.sid = uuid.uuid4().hex
        self.call_sid = uuid.uuid4().hex
        self.account = "translate-tests"
        self._seq = 0

    def _msg(self, event: str, **body: Any) -> dict[str, Any]:
        self._seq += 1
        return {"event": event, "sequence_number": str(self._seq), "stream_sid": self.sid, **body}

    def connected(self) -> dict[str, Any]:
        return {"event": "connected"}

    def start(self) -> dict[str, Any]:
        start = {
            "stream_sid": self.sid,
            "call_sid": self.call_sid,
            "account_sid": self.account,
            "from": "+919876543210",
            "to": "+918047491899",
            "custom_parameters": self.custom,
            "media_format": {"encoding": "audio/x-raw", "sample_rate": str(self.rate), "bit_rate": "16"},
        }
        return self._msg("start", start=start)

    def media(self, chunk: int, timestamp_ms: int, payload: str) -> dict[str, Any]:
        return self._msg("media", media={"chunk": str(chunk), "timestamp": str(timestamp_ms), "payload": payload})

    def mark(self, name: str) -> dict[str, Any]:
        return self._msg("mark", mark={"name": name})

    def stop(self) -> dict[str, Any]:
        return self._msg("stop", stop={"call_sid": self.call_sid, "account_sid": self.account, "reason": "callended"})

    def check(self, message: dict[str, Any]) -> None:
        assert message["event"] in ("media", "mark", "clear"), message
        assert message.get("stream_sid") == self.sid, message
        if message["event"] == "media":
            n = len(base64.b64decode(message["media"]["payload"]))
            assert n % self.CHUNK_MULTIPLE == 0, f"a media message of {n} bytes: Exotel takes multiples of 320"
            assert self.CHUNK_MIN <= n <= self.CHUNK_MAX, f"a media message of {n} bytes: Exotel takes 3.2 to 100 KB"
