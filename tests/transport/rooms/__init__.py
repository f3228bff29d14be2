"""Tests of the rooms door (translate_svc/transport/rooms/)."""
