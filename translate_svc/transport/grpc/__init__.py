"""The gRPC door: the Translator service, health and reflection (``door.py``), its bearer-token
interceptor (``auth.py``), the servicer that converts wire messages to the stream core
(``servicer.py``, ``convert.py``), and the main port's reloading TLS (``tls.py``)."""
