"""What the client and the server distributions share at the wire level: the PCM16 scale
(``pcm``), the sample rates a call may use and Opus's clock (``rates``), and the length of an Opus
packet read from its TOC byte (``opus_toc``).

Shipped by the client distribution (``translate-svc-client``); the server imports it from there, so
both sides of the wire use one definition instead of two copies that could drift apart. Leaves:
numpy at most, nothing of the SDK or the server. The server's own audio code (codecs, containers,
resampling) is ``translate_svc.audio``.
"""
