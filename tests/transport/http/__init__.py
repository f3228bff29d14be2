"""Tests of the HTTP port's home (translate_svc/transport/http/)."""
