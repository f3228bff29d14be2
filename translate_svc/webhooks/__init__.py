"""Signed webhooks and the usage records they carry: ``events`` (what the sessions
emit), ``signing`` (Standard Webhooks), ``store`` (the queue and records on disk), ``outbox``
(the sink the sessions emit into, and the deliveries)."""
