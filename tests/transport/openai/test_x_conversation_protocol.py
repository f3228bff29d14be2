"""Our extension ``x_conversation`` in the realtime protocol alone (sans I/O): what the stream's
config holds for it, and a drained session's ``x_resume`` keeping it. Over a real server:
``test_x_conversation.py``."""

from __future__ import annotations

import json

import pytest

from translate_svc.errors import ShuttingDown
from translate_svc.session.events import StreamConfig, StreamEnded
from translate_svc.transport.openai.protocol import RealtimeProtocol
from translate_svc.vad.segmenter import SegmenterConfig

pytestmark = pytest.mark.unit


def test_the_config_holds_the_conversation_in_segment_mode_and_a_drained_session_resumes_with_it() -> None:
    p = RealtimeProtocol("m", None, SegmenterConfig())
    sent = json.dumps({"type": "session.update", "session": {"x_conversation": {"languages": ["en", "es"]}}})
    (config,) = [o for o in p.receive(sent) if not isinstance(o, str)]
    assert isinstance(config, StreamConfig)
    assert (config.conversation, config.target_languages, config.simultaneous) == (("eng", "spa"), (), None)
    assert (config.source_language, config.detect) == ("", None)
    ended = StreamEnded(segments_total=3, audio_received_ms=9000, limit=ShuttingDown("bye"), resume_offset_ms=8000)
    (closed,) = [json.loads(o) for o in p.render(ended) if isinstance(o, str)]
    again = RealtimeProtocol("m", None, SegmenterConfig())
    (resumed,) = [o for o in again.resume(closed["x_resume"]) if not isinstance(o, str)]
    assert isinstance(resumed, StreamConfig) and resumed.resume is not None
    assert (resumed.conversation, resumed.target_languages) == (("eng", "spa"), ())
    assert again.session()["x_conversation"] == {"languages": ["en", "es"]}
