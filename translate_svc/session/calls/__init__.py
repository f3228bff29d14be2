"""The calls of each kind, for every door: a stream's driver and its clock, a clip's, a text's, a
room's listen; their accounting and lifecycle events."""
