"""Tests of translate_svc/observability/: metrics, the access log, tracing."""
