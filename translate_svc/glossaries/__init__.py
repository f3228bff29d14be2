"""Glossaries kept by the service: a tenant's terms stored once and named by id in a
request. ``model.py`` (a glossary, its checks, CSV), ``tbx.py`` (TBX import), ``store.py`` (the
seam: SQLite on one node, Redis for several pods), ``book.py`` (what the doors and the drivers
call)."""
