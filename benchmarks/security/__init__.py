"""Attacks on the service measured on a real ``translate-svc serve`` (docs/security.md cites each
with its command and figures): ``untrusted_media.py``, the jobs' uploads (Hardening 7)."""
