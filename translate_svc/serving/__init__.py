"""``serve --workers N``: one engine process and N front-end worker processes on one node.

- ``supervisor.py`` (the ``serve`` process): reserves the port, starts the engine process, then the
  workers; restarts a worker that dies; forwards SIGTERM (drain) to every worker, then stops the
  engine; exits non-zero if the engine process dies (the pod restarts). Serves the aggregate
  ``/metrics``.
- ``engine_process.py``: the model, the scheduler and the model thread (``app.build_engine``),
  served to the workers over a Unix socket (``engine/remote/``). The only process that loads torch.
- ``worker.py``: gRPC, decoding, VAD and sessions (``frontend.py``) around a ``RemoteEngine``,
  listening on the shared port (``SO_REUSEPORT``). Never imports torch or the model
  (import-linter checks it).
- ``process.py``: what a child process shares with its supervisor (environment, readiness).
"""
