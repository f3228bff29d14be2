"""The OpenAI-compatible door on the HTTP port (``door.py``: routes, who may connect, client-secret
minting, the WebSocket connect), in the gRPC door's shape: OpenAI's realtime protocol sans I/O
(``protocol.py``, ``session_update.py``, ``wire.py``), a session's I/O (``loop.py``), the port and
its bounds (``http_site.py``); its WebRTC flow (``webrtc.py``), client secrets (``client_secrets.py``)
and the demo page (``demo.py``, ``static/``)."""
