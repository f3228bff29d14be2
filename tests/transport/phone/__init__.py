"""Tests of the phone door (translate_svc/transport/phone/)."""
