"""Tests of the Python SDK (the client distribution's translate_svc/client/)."""
