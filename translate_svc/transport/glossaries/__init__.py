"""Stored glossaries on the doors: the gRPC ``Glossaries`` service on the gRPC port
(``grpc_door.py``) and ``/v1/glossaries`` on the HTTP port (``routes.py``), both over the sessions'
``GlossaryBook`` (``translate_svc/glossaries/``), and their wire forms (``convert.py``)."""
