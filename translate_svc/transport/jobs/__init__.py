"""The jobs door: background jobs on the HTTP port (``/v1/jobs``: ``routes.py``) and on the gRPC
port (the ``Jobs`` service: ``grpc_door.py``), each wire's request parsed into the jobs wing's
``JobRequest`` (``options.py``) and the results rendered as documents (``render.py``). What both
ports do is the jobs wing's ``JobDesk`` (``translate_svc/jobs/desk.py``; a URL job's audio is
fetched by the worker that claims it: ``jobs/intake.py``). A door like the others: it imports no
other door (the door independence contract); what it shares with the gRPC door is
``transport/proto_options.py``."""
