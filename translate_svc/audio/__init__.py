"""The server's audio: codecs and containers (``codec``, ``g711``, ``opus``, ``ogg``, ``wav``), the
limits a call's audio is checked against (``limits``) and resampling (``resample``).

A package of the server distribution alone; what the client shares with it at the wire level (the
PCM16 scale, the rates, the Opus TOC reader) is ``translate_svc.wire``, in the client distribution.
"""
