"""The HTTP port's home (``server.http_port``), door-neutral: it imports no door, as ``rpc.py`` is
the gRPC port's. The site and its caps (``site.py``), one error shape and refusal table
(``errors.py``), one ``Caller`` and the checks that let a request in (``caller.py``, with the
WebSocket handshake's subprotocols and key: ``handshake.py``; client secrets and the Origin rule:
``client_secrets.py``), one WebSocket life (``websocket.py``), a small body read with the port's
bounds (``body.py``), the browser pages' shared helpers (``pages.py``), and ``HttpDoor``
(``door.py``): the aiohttp application hosting the route sets, one package each (``openai/``,
``rooms/``, ``phone/``)."""
