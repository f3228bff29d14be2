"""Tests of the generated stubs (the client distribution's translate_svc/api/)."""
