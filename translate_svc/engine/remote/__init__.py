"""The engine in its own process: the wire between front-end workers and it (``wire``), its server
side (``server``) and the workers' ``EngineClient`` (``client``)."""
