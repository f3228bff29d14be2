"""Tests of translate_svc/settings/: the sections, their environment names and config keys."""
