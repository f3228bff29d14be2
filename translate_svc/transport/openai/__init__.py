"""The OpenAI-compatible route set on the HTTP port (``door.py``: ``OpenAIRoutes``, its routes, who may
connect, client-secret minting (``mint.py``), the WebSocket connect), in the gRPC door's shape:
OpenAI's realtime protocol sans I/O (``protocol.py``, ``session_update.py``, ``wire.py``), a
session's I/O (``loop.py``); realtime transcription (``transcription*.py``), the audio REST
endpoints (``audio_api.py``, ``audio_form.py``, ``audio_formats.py``), its WebRTC flow
(``webrtc.py``) and the demo page (``demo.py``, ``static/``). What it shares with the port's other
route sets (the site, the caller check, client secrets, the WebSocket life) is ``../http/``."""
