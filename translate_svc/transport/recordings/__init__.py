"""The recordings API on the HTTP port (docs/security.md): a route set of the HTTP port's
door (``routes.py``: ``RecordingRoutes``) over ``translate_svc.recordings``' store. A token with
the ``recordings`` permission lists, fetches (decrypted) and deletes its own tenant's recordings."""
