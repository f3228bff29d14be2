"""Tests of what both distributions share at the wire level (the client's translate_svc/wire/)."""
