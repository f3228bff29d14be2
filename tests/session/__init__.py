"""Tests of translate_svc/session/: the stream core, its drivers and rooms."""
