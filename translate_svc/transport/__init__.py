"""The doors: two ports, each with a home, and one package per door.

- The gRPC port: ``rpc.py`` (what its doors share: message parsing, a unary request read by its
  deadline, responses written, the caller its token interceptor let in, ``PortServices``);
  ``grpc/`` (``GrpcDoor``: the Translator service, health) hosts ``riva/``'s services.
- The HTTP port: ``http/`` (the site and its caps, one refusal table, one caller check, one
  WebSocket life; ``HttpDoor``) hosts the route sets of ``openai/`` (realtime translation and
  transcription over WebSocket and WebRTC, the audio endpoints, the demo page), ``rooms/`` (room
  listeners, the listen page) and ``phone/`` (carriers' WebSockets; its AudioSocket port is a door
  of its own).

What every door shares: the doors' one shape (``door.py``: ``DoorContext`` in, ``Door`` out), a
call's request id and message bounds (``calls.py``), the token store with its one decision per call
and revocation (``tokens/``), refusals logged at a bounded rate (``refusal_log.py``), a call
socket's kernel buffers (``sockets.py``); and the door-neutral host (``host.py``: builds the
configured doors, then iterates them for start, health and drain). A door only converts its wire
format to the session cores' requests and renders their events (``session.StreamDriver``,
``ClipDriver``, ``TextDriver``, ``ListenDriver``); no door imports another, and the import-linter
contracts in pyproject.toml hold each door to that."""
