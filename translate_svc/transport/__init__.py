"""The doors, one package each (``grpc/``, ``openai/``), and what they share: the door-neutral host
(``host.py``: builds the configured doors, owns start, health and drain) and the token store with
revocation (``tokens.py``). A door only converts its wire format to the stream core's requests and
renders its events (``session.StreamDriver``, ``session.clip.ClipDriver``); the import-linter
contracts in pyproject.toml hold each door to that."""
