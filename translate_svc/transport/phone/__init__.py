"""The phone door: a carrier's call audio in, its translation played back into the call.

Framings (each sans I/O): ``twilio.py`` (Twilio Media Streams and its cousins), ``asterisk.py``
(Asterisk chan_websocket, plain-text and JSON control), ``audiosocket.py`` (Asterisk AudioSocket
over TCP). The I/O: ``outbox.py`` (the outlet of a WebSocket carrier, which plays what it is sent),
``audiosocket_server.py`` (the TCP port and its paced outlet), and ``door.py`` (``PhoneDoor``: the
routes on the HTTP port, who may call, the AudioSocket port). The call itself (a call's codec and
setup, the call loop, two-party pairs, playout, the mix, the pacing) is the telephony floor's
(``transport/telephony/``), which the SIP door stands on too.
"""
