"""The OpenAI-compatible door on the HTTP port (``door.py``): the realtime translation WebSocket
(``realtime.py``), its WebRTC flow (``webrtc.py``), client secrets (``client_secrets.py``) and the
demo page (``demo.py``, ``static/``)."""
