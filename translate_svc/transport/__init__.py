"""The doors, one package each (``grpc/``, ``openai/``, ``riva/``), and what they share: the doors'
one shape (``door.py``: ``DoorContext`` in, ``Door`` out), a call's request id and message bounds
(``calls.py``), the token store with its one decision per call and revocation (``tokens.py``), what
the two gRPC doors share on their port (``rpc.py``), and the door-neutral host (``host.py``: builds
the configured doors, then iterates them for start, health and drain). A door only converts its
wire format to the stream core's requests and renders its events (``session.StreamDriver``,
``session.clip.ClipDriver``); the import-linter contracts in pyproject.toml hold each door to that."""
