"""Tests of the Riva-compatible door (translate_svc/transport/riva/)."""
