"""Tests of translate_svc/serving/: serve --workers N, its counters, collector and allocator."""
