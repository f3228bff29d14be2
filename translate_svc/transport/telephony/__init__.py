"""The telephony floor: the carrier-neutral call core that the phone door
(``transport/phone/``: the WebSocket carriers and AudioSocket) and the SIP door (``transport/sip/``)
both stand on. It imports neither door.

Sans I/O: ``call.py`` (a call's codec, setup and the carriers' events), ``playout.py`` (marks, the
ear-voice lag, the backlog, the 20 ms pacer), ``mix.py`` (the other leg's voice under its
translation), ``pair_wire.py`` (what two legs of a call send each other). The I/O: ``loop.py``
(``PhoneCall``: one call through the stream core), ``pairs.py`` (two-party legs meeting through
the cluster store), ``pacing.py`` (``SlotClock`` and ``PacedSpeech``: the one 20 ms timer and the
paced speech of the carriers that do not time what they are sent: AudioSocket, RTP).
"""
