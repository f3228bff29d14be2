"""Rooms on the HTTP port (docs/rooms.md): a route set of the HTTP port's door. A room
listener's wire, sans I/O (``protocol.py``), its socket, the listen page and the QR codes
(``door.py``: ``RoomRoutes``; the page's files in ``static/``; the codes' bounds ``qr.py``). A
listen runs through the listen core (``session.ListenDriver``), as the gRPC door's ``Listen`` does;
a speaker is an ordinary stream of any door whose config names a room."""
