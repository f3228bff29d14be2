"""Recordings: what a tenant whose tokens-file line says ``record=text|audio`` keeps of
its sessions, encrypted at rest, for its ``retention_days``.

``service`` (``Recordings``: opens a session's recording, owns the writer thread and the sweeper),
``recorder`` (one session's tap, on the loop), ``writer`` (the writer thread, its bounded queue and
each recording's manifest), ``files`` (sealed JSON lines and Ogg Opus), ``sealed`` (AES-256-GCM in
chunks), ``keys`` (the tenants' keys and the wrapping of each recording's data key), ``store`` (on
disk: list, read back, delete, sweep). The stream core taps sessions through
``session.recording``'s Protocols and never imports this package; doors reach it only for the
recordings API (``transport/recordings/routes.py``).
"""
