"""The phone door (issue 44): a carrier's call audio in, its translation played back into the call.

Framings (each sans I/O): ``twilio.py`` (Twilio Media Streams and its cousins), ``asterisk.py``
(Asterisk chan_websocket, plain-text and JSON control), ``audiosocket.py`` (Asterisk AudioSocket
over TCP). What they share: ``call.py`` (a call's codec, setup and the carriers' events),
``playout.py`` (marks, the ear-voice lag, the backlog, the 20 ms pacer: pure). The I/O:
``loop.py`` (one call through the stream core), ``audiosocket_server.py`` (the TCP port), and
``door.py`` (``PhoneDoor``: the routes on the HTTP port, who may call, the AudioSocket port).
"""
