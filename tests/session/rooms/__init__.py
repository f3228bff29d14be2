"""Tests of translate_svc/session/rooms/: the rooms' core (the registry, rooms and speakers, listeners and
their bounds, the backlog, the link across processes)."""
